package redisbackend

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// hub multiplexes every pub/sub channel a connection listens to over one
// pub/sub connection. It tells each listener three things: the channel's
// subscription is confirmed (evReady: changes published from now on will
// arrive, so the listener reads the current state), a message arrived
// (evMessage), and the pub/sub connection broke (evGap: messages may have
// been lost; an evReady follows once the channel is subscribed again). A
// silent pub/sub connection is PINGed and rebuilt when the PONG does not
// come back.
//
// Two goroutines serve it: run owns the pub/sub connection (it builds it
// with every wanted channel, reads it, and rebuilds it after a failure),
// and write sends the SUBSCRIBE and UNSUBSCRIBE that listeners coming and
// going call for, in the order they called for them, so that an
// UNSUBSCRIBE of the last listener never overtakes the SUBSCRIBE of the
// next one; listen and close never wait for the network. A channel's
// subscription is confirmed when every SUBSCRIBE sent for it on the
// current pub/sub connection has been answered, which keeps a late
// confirmation of an earlier subscription from passing for a newer one.
type hub struct {
	c    *conn
	ping time.Duration

	mu    sync.Mutex
	ps    *redis.PubSub // nil while (re)connecting
	chans map[string]*channelState
	ops   []subOp       // writes for write, in order
	opsC  chan struct{} // capacity 1: ops are waiting
	done  bool

	stop chan struct{}  // closed by close
	wg   sync.WaitGroup // run and write
}

type channelState struct {
	listeners map[*listener]struct{}
	pending   int  // SUBSCRIBEs not yet confirmed on the current ps
	ready     bool // subscribed on the current ps
	// linger unsubscribes a channel whose last listener left, unless a
	// listener comes back within lingerFor; gen tells its run apart.
	linger *time.Timer
	gen    int
}

// lingerFor is how long a channel stays subscribed after its last
// listener left: a lock waited for again and again (a contended lock, an
// election) keeps its subscription, so that a new wait neither
// subscribes anew nor reads the state twice.
const lingerFor = 5 * time.Second

// subOp is a SUBSCRIBE (or UNSUBSCRIBE) of channel on ps.
type subOp struct {
	ps        *redis.PubSub
	channel   string
	subscribe bool
}

type eventKind int

const (
	evReady eventKind = iota + 1
	evMessage
	evGap
)

type event struct {
	kind    eventKind
	payload string
}

// maxQueue bounds a listener's backlog; beyond it the backlog is replaced
// by one evGap (the listener then reads the state afresh).
const maxQueue = 4096

// listener receives the events of one channel. Its methods are safe for
// concurrent use with the hub.
type listener struct {
	h       *hub
	channel string
	notify  chan struct{} // capacity 1: events are waiting
	// readyAtOnce: the channel was subscribed when the listener came, so
	// its first event, an evReady, was pushed at once.
	readyAtOnce bool
	// keep, when set, is asked by the hub (under its lock, so it must
	// not block) whether a message is worth waking the listener for; a
	// message it refuses is dropped.
	keep func(payload string) bool

	mu sync.Mutex
	q  []event
}

// hubFor returns the connection's hub, starting it on first use.
func (c *conn) hubFor() (*hub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, driver.Errorf(driver.CodeCanceled, "connection closed")
	}
	if c.hub == nil {
		ping := c.s.healthCheck
		if ping <= 0 {
			ping = 5 * time.Second
		}
		h := &hub{c: c, ping: ping, chans: map[string]*channelState{}, opsC: make(chan struct{}, 1), stop: make(chan struct{})}
		h.wg.Add(2)
		go func() {
			defer h.wg.Done()
			h.run()
		}()
		go func() {
			defer h.wg.Done()
			h.write()
		}()
		c.hub = h
	}
	return c.hub, nil
}

// listen starts listening to channel. The listener's first event is an
// evReady once the channel is subscribed (at once when it already is). It
// does not block.
func (c *conn) listen(channel string) (*listener, error) {
	return c.listenKeep(channel, nil)
}

// listenKeep is listen with a filter of the messages (listener.keep).
func (c *conn) listenKeep(channel string, keep func(payload string) bool) (*listener, error) {
	h, err := c.hubFor()
	if err != nil {
		return nil, err
	}
	l := &listener{h: h, channel: channel, notify: make(chan struct{}, 1), keep: keep}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return nil, driver.Errorf(driver.CodeCanceled, "connection closed")
	}
	st := h.chans[channel]
	if st == nil {
		st = &channelState{listeners: map[*listener]struct{}{}}
		h.chans[channel] = st
	}
	first := len(st.listeners) == 0
	st.listeners[l] = struct{}{}
	st.gen++
	switch {
	case st.ready:
		l.readyAtOnce = true
		l.push(event{kind: evReady})
	case first && h.ps != nil:
		// Otherwise the subscription is on its way, or the next pub/sub
		// connection makes it.
		st.pending++
		h.enqueueLocked(subOp{ps: h.ps, channel: channel, subscribe: true})
	}
	return l, nil
}

// C is signalled when events are waiting.
func (l *listener) C() <-chan struct{} { return l.notify }

// drain returns the waiting events, oldest first.
func (l *listener) drain() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.q
	l.q = nil
	return q
}

func (l *listener) push(ev event) {
	l.mu.Lock()
	if len(l.q) >= maxQueue {
		l.q = append(l.q[:0], event{kind: evGap})
	}
	l.q = append(l.q, ev)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// close stops listening; the channel is unsubscribed when no listener is
// left. It does not block.
func (l *listener) close() {
	h := l.h
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.chans[l.channel]
	if st == nil {
		return
	}
	delete(st.listeners, l)
	if len(st.listeners) > 0 {
		return
	}
	if st.ready && !h.done {
		st.gen++
		gen, channel := st.gen, l.channel
		if st.linger != nil {
			st.linger.Stop()
		}
		st.linger = time.AfterFunc(lingerFor, func() { h.expire(channel, st, gen) })
		return
	}
	h.unsubscribeLocked(l.channel, st)
}

// expire unsubscribes a channel that lingered without listeners, unless
// a listener came meanwhile or the channel's state was replaced.
func (h *hub) expire(channel string, st *channelState, gen int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.chans[channel] != st || len(st.listeners) > 0 || st.gen != gen {
		return
	}
	h.unsubscribeLocked(channel, st)
}

// unsubscribeLocked unsubscribes a channel left without listeners.
func (h *hub) unsubscribeLocked(channel string, st *channelState) {
	st.ready = false
	if st.pending == 0 {
		delete(h.chans, channel)
	}
	if h.ps != nil {
		h.enqueueLocked(subOp{ps: h.ps, channel: channel})
	}
}

func (h *hub) enqueueLocked(op subOp) {
	h.ops = append(h.ops, op)
	select {
	case h.opsC <- struct{}{}:
	default:
	}
}

// write sends the queued SUBSCRIBEs and UNSUBSCRIBEs in order. A write
// meant for a pub/sub connection that has been replaced is dropped: the
// new connection subscribes every channel that has listeners.
func (h *hub) write() {
	for {
		select {
		case <-h.stop:
			return
		case <-h.opsC:
		}
		h.mu.Lock()
		ops := h.ops
		h.ops = nil
		h.mu.Unlock()
		for _, op := range ops {
			h.mu.Lock()
			current := h.ps == op.ps
			h.mu.Unlock()
			if !current {
				continue
			}
			ctx, cancel := context.WithTimeout(h.c.ctx, h.c.s.connectTimeout+h.c.s.socketTimeout)
			var err error
			if op.subscribe {
				err = op.ps.Subscribe(ctx, op.channel)
			} else {
				err = op.ps.Unsubscribe(ctx, op.channel)
			}
			cancel()
			if err != nil && h.c.ctx.Err() == nil {
				h.c.log.Debug("pub/sub (un)subscribe failed; reconnecting", zap.String("channel", op.channel), zap.Error(err))
				h.broken(op.ps)
			}
		}
	}
}

// broken closes ps if it is still the current pub/sub connection, which
// makes run rebuild it.
func (h *hub) broken(ps *redis.PubSub) {
	h.mu.Lock()
	cur := h.ps == ps
	h.mu.Unlock()
	if cur {
		_ = ps.Close()
	}
}

// close stops the hub and waits for its goroutines. The connection's
// context must be cancelled first, which aborts a dial in progress.
func (h *hub) close() {
	h.mu.Lock()
	if !h.done {
		h.done = true
		close(h.stop)
	}
	for _, st := range h.chans {
		if st.linger != nil {
			st.linger.Stop()
		}
	}
	ps := h.ps
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
	h.wg.Wait()
}

// run owns the pub/sub connection: it (re)builds it with every wanted
// channel, reads it, and rebuilds it after any failure with a growing
// pause.
func (h *hub) run() {
	pause := 50 * time.Millisecond
	for {
		ps := h.c.rdb.Subscribe(h.c.ctx)
		h.mu.Lock()
		if h.done {
			h.mu.Unlock()
			_ = ps.Close()
			return
		}
		h.ps = ps
		var chans []string
		for ch, st := range h.chans {
			if len(st.listeners) == 0 {
				delete(h.chans, ch)
				continue
			}
			st.pending, st.ready = 1, false
			chans = append(chans, ch)
		}
		h.mu.Unlock()
		start := time.Now()
		err := h.subscribe(ps, chans)
		if err == nil {
			err = h.receive(ps)
		}
		h.mu.Lock()
		h.ps = nil
		for _, st := range h.chans {
			st.pending, st.ready = 0, false
			for l := range st.listeners {
				l.push(event{kind: evGap})
			}
		}
		done := h.done
		h.mu.Unlock()
		_ = ps.Close()
		if done {
			return
		}
		h.c.log.Debug("pub/sub connection lost; reconnecting", zap.Error(err))
		if time.Since(start) > 5*time.Second {
			pause = 50 * time.Millisecond
		}
		t := time.NewTimer(pause)
		select {
		case <-h.stop:
			t.Stop()
			return
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// subscribe subscribes chans on a new pub/sub connection (or, with none,
// PINGs to establish it). A listener leaving or arriving meanwhile has its
// write queued after this one or not at all, and whatever the order of the
// two writes on the server, a channel with listeners ends up subscribed.
func (h *hub) subscribe(ps *redis.PubSub, chans []string) error {
	ctx, cancel := context.WithTimeout(h.c.ctx, h.c.s.connectTimeout+h.c.s.socketTimeout)
	defer cancel()
	if len(chans) > 0 {
		return ps.Subscribe(ctx, chans...)
	}
	return ps.Ping(ctx)
}

// receive dispatches what arrives on ps until ps fails or is closed.
func (h *hub) receive(ps *redis.PubSub) error {
	ctx := h.c.ctx
	awaitingPong := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, h.ping)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if isTimeout(err) && !awaitingPong {
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				awaitingPong = true
				continue
			}
			if isTimeout(err) {
				return errors.New("no reply to PING on the pub/sub connection")
			}
			return err
		}
		awaitingPong = false
		switch m := msg.(type) {
		case *redis.Subscription:
			h.confirmed(ps, m)
		case *redis.Message:
			h.deliver(m.Channel, m.Payload)
		}
	}
}

func (h *hub) confirmed(ps *redis.PubSub, m *redis.Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.chans[m.Channel]
	if st == nil {
		return
	}
	switch m.Kind {
	case "subscribe":
		if st.pending > 0 {
			st.pending--
		}
		switch {
		case st.pending > 0:
		case len(st.listeners) == 0:
			// Subscribed by a new connection after its last listener
			// left: unsubscribe, so that its messages stop coming.
			h.enqueueLocked(subOp{ps: ps, channel: m.Channel})
		default:
			// Also on an unexpected confirmation (go-redis resubscribed
			// after a reconnect of its own): listeners read the state
			// again.
			st.ready = true
			for l := range st.listeners {
				l.push(event{kind: evReady})
			}
		}
	case "unsubscribe":
		if len(st.listeners) == 0 && st.pending == 0 {
			delete(h.chans, m.Channel)
		}
	}
}

func (h *hub) deliver(channel, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.chans[channel]
	if st == nil || !st.ready {
		return
	}
	for l := range st.listeners {
		if l.keep == nil || l.keep(payload) {
			l.push(event{kind: evMessage, payload: payload})
		}
	}
}
