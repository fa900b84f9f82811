package pgbackend

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// hub owns the listener connection: it LISTENs on the schema's channel
// and hands each notification to the subscribers it concerns (group
// watches by group name, lock waiters by the md5 of the lock key). When
// the connection breaks it reconnects, listens again, and then tells every
// subscriber to resync (watches re-read their group, waiters try again),
// so nothing committed while it was away is missed.
type hub struct {
	c       *conn
	channel string
	ln      *pgx.Conn // owned by run after start

	mu   sync.Mutex
	subs map[*sub]struct{}
}

// sub is one subscriber's queue.
type sub struct {
	group     string // watched group, or ""
	groupHash string // md5 of group
	lockHash  string // md5 of the awaited lock key, or ""

	mu   sync.Mutex
	q    []note
	wake chan struct{}
}

// note is one delivery: a member event, or a resync request.
type note struct {
	resync bool
	ev     *memberEvent
}

// memberEvent is the JSON payload of a members or groups trigger.
type memberEvent struct {
	Kind     string  `json:"k"`
	Xid      string  `json:"x"`
	Group    string  `json:"g"`
	Member   string  `json:"m"`
	Inc      int64   `json:"i"`
	Caps     *string `json:"c"`
	BigCaps  bool    `json:"C"`
	Joined   int64   `json:"tj"`
	Updated  int64   `json:"tu"`
	NameHash string  `json:"h"`
}

func newHub(c *conn, channel string) *hub {
	return &hub{c: c, channel: channel, subs: map[*sub]struct{}{}}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// start connects the listener; Open fails when it cannot.
func (h *hub) start(ctx context.Context) error {
	ln, err := h.listen(ctx)
	if err != nil {
		return err
	}
	h.ln = ln
	return nil
}

func (h *hub) listen(ctx context.Context) (*pgx.Conn, error) {
	ln, err := h.c.connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := ln.Exec(ctx, "LISTEN "+pgx.Identifier{h.channel}.Sanitize()); err != nil {
		_ = ln.Close(context.Background())
		return nil, err
	}
	return ln, nil
}

func (h *hub) run() {
	defer h.c.wg.Done()
	ctx := h.c.ctx
	for {
		for {
			n, err := h.ln.WaitForNotification(ctx)
			if err != nil {
				break
			}
			h.dispatch(n.Payload)
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = h.ln.Close(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.c.log.Warn("postgresql listener connection lost; reconnecting")
		wait := 10 * time.Millisecond
		for {
			actx, cancel := context.WithTimeout(ctx, max(h.c.s.ttl, time.Second))
			ln, err := h.listen(actx)
			cancel()
			if err == nil {
				h.ln = ln
				break
			}
			h.c.log.Debug("postgresql listener reconnect", zap.Error(err))
			t := h.c.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
			wait = min(2*wait, time.Second)
		}
		h.broadcast(note{resync: true})
	}
}

// close ends the listener connection (run has returned).
func (h *hub) close() {
	if h.ln != nil && !h.ln.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = h.ln.Close(ctx)
		cancel()
	}
}

// dispatch routes one payload: 'L' + md5 of a lock key for a release,
// JSON for member and group events.
func (h *hub) dispatch(payload string) {
	if len(payload) > 0 && payload[0] == 'L' {
		hash := payload[1:]
		h.mu.Lock()
		for s := range h.subs {
			if s.lockHash == hash {
				s.push(note{})
			}
		}
		h.mu.Unlock()
		return
	}
	var ev memberEvent
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		h.c.log.Warn("postgresql: malformed notification", zap.Error(err))
		h.broadcast(note{resync: true})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		switch {
		case s.group == "":
		case ev.Kind == "r" && s.groupHash == ev.NameHash:
			s.push(note{resync: true})
		case ev.Kind != "r" && s.group == ev.Group:
			s.push(note{ev: &ev})
		}
	}
}

func (h *hub) broadcast(n note) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.push(n)
	}
}

// subscribeGroup registers a group watch.
func (h *hub) subscribeGroup(group string) *sub {
	return h.add(&sub{group: group, groupHash: md5hex(group), wake: make(chan struct{}, 1)})
}

// subscribeLock registers a waiter of lock key.
func (h *hub) subscribeLock(key string) *sub {
	return h.add(&sub{lockHash: md5hex(key), wake: make(chan struct{}, 1)})
}

func (h *hub) add(s *sub) *sub {
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) remove(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (s *sub) push(n note) {
	s.mu.Lock()
	s.q = append(s.q, n)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drain returns and clears the queued notes.
func (s *sub) drain() []note {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.q
	s.q = nil
	return q
}
