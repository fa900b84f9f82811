// Package election elects one member of a group to run a singleton worker,
// on any baton backend.
//
// Run is the elected singleton runner: it campaigns, runs the work
// function only while this member leads, under the term's context, and
// campaigns again after losing. The term's context is cancelled the moment
// leadership is lost or in doubt — on a TTL backend a safety margin before
// the lease could expire, measured from when the acquiring request was
// sent; on a session backend when the connection drops — so the old leader
// stops before a successor can start. When Run's context ends it resigns,
// so a successor takes over within a round trip instead of a TTL.
//
// Candidates are not served in order: a waiting candidate keeps nothing
// on the server, and when the leader resigns or its lease ends every live
// candidate tries at once and one wins. A candidate that dies while
// waiting therefore delays nobody (on stores whose locks queue, such as
// etcd and ZooKeeper, a dead queued waiter would hold the next ones back
// until its session expired); locks keep their first-come order.
package election

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/baton-go/baton/backend"
)

// ErrNotLeader is returned by Resign when this member does not lead.
var ErrNotLeader = errors.New("not the leader")

// ErrResigned is the context cause of a term that ended by resignation.
var ErrResigned = errors.New("resigned")

// Term is one period of leadership.
type Term struct {
	// Token is the term's fencing token: it grows with every term.
	Token uint64
	// Context is cancelled when the term ends (lost, in doubt, resigned).
	Context context.Context
	// Leader is this member's ID.
	Leader string
}

// Valid reports whether the term is still held and its lease cannot have
// expired: Context().Err() compares the clock with the term's loss
// deadline, so a leader resumed after a pause past it sees false on its
// first check. Check it right before a write to the outside world, and
// make the write carry Token. It does not block.
func (t Term) Valid() bool { return t.Context != nil && t.Context.Err() == nil }

// LeaderChange is one observed state of the group's leadership.
type LeaderChange struct {
	// Held is false when the group has no leader.
	Held bool
	// Leader and Token identify the leader and its term when Held.
	Leader string
	Token  uint64
}

// Election is this member's candidacy in one group. It is safe for
// concurrent use.
type Election struct {
	b     *backend.Backend
	group string
	o     options

	mu sync.Mutex
	g  *backend.Grant
}

// New returns an Election of group for backend b. It validates the
// options and does no I/O.
func New(b *backend.Backend, group string, opts ...Option) (*Election, error) {
	if b == nil {
		return nil, fmt.Errorf("election %q: nil backend: %w", group, backend.ErrInvalidArgument)
	}
	if group == "" {
		return nil, fmt.Errorf("election: empty group: %w", backend.ErrInvalidArgument)
	}
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("election %q: %w", group, err)
	}
	if err := b.CheckLockOptions(o.lockOptions()); err != nil {
		return nil, fmt.Errorf("election %q: %w", group, err)
	}
	return &Election{b: b, group: group, o: o}, nil
}

// Group returns the group the election is held in.
func (e *Election) Group() string { return e.group }

// Campaign blocks until this member leads the group or ctx is done. It
// returns the term. Campaigning while leading returns the current term.
func (e *Election) Campaign(ctx context.Context) (Term, error) {
	e.mu.Lock()
	if e.g != nil && !e.g.Lost() {
		t := e.termLocked()
		e.mu.Unlock()
		return t, nil
	}
	e.mu.Unlock()
	g, err := e.b.Campaign(ctx, e.group, e.o.lockOptions())
	if err != nil {
		return Term{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.g = g
	return e.termLocked(), nil
}

// TryCampaign tries once to lead; ok is false when another member leads.
func (e *Election) TryCampaign(ctx context.Context) (Term, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.g != nil && !e.g.Lost() {
		return e.termLocked(), true, nil
	}
	g, ok, err := e.b.TryCampaign(ctx, e.group, e.o.lockOptions())
	if err != nil || !ok {
		return Term{}, false, err
	}
	e.g = g
	return e.termLocked(), true, nil
}

func (e *Election) termLocked() Term {
	return Term{Token: e.g.Token(), Context: e.g.Context(), Leader: e.b.MemberID()}
}

// Resign gives leadership up so another candidate can take over at once.
// It returns an error matching ErrNotLeader when this member does not
// lead (or its term was already lost).
func (e *Election) Resign(ctx context.Context) error {
	e.mu.Lock()
	g := e.g
	e.g = nil
	e.mu.Unlock()
	if g == nil {
		return fmt.Errorf("resign %q: %w", e.group, ErrNotLeader)
	}
	if err := g.Release(ctx); err != nil {
		if errors.Is(err, backend.ErrNotHeld) {
			return fmt.Errorf("resign %q: %w: %w", e.group, ErrNotLeader, err)
		}
		return err
	}
	return nil
}

// IsLeader reports whether this member leads and its term is not lost or
// in doubt.
func (e *Election) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g != nil && !e.g.Lost()
}

// Token returns the fencing token of the current term, or 0 when not
// leading.
func (e *Election) Token() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.g == nil || e.g.Lost() {
		return 0
	}
	return e.g.Token()
}

// Leader reports the group's current leader; ok is false when there is
// none.
func (e *Election) Leader(ctx context.Context) (LeaderChange, error) {
	h, ok, err := e.b.Leader(ctx, e.group)
	if err != nil || !ok {
		return LeaderChange{}, err
	}
	return LeaderChange{Held: true, Leader: h.Member, Token: h.Token}, nil
}

// Observation is a stream of leadership changes, starting with the
// current state. A slow reader sees the newest state, not a backlog.
type Observation struct {
	lw   *backend.LeaderWatch
	ch   chan LeaderChange
	done chan struct{}
}

// Observe streams the group's leadership until ctx is done or Close.
func (e *Election) Observe(ctx context.Context) (*Observation, error) {
	lw, err := e.b.ObserveLeader(ctx, e.group)
	if err != nil {
		return nil, err
	}
	o := &Observation{lw: lw, ch: make(chan LeaderChange, 1), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer close(o.ch)
		// The newest state replaces one the consumer has not taken, and
		// the consumer is never handed the state it took last again.
		var last, seen *LeaderChange
		for c := range lw.Changes() {
			lc := LeaderChange{Held: c.Held, Leader: c.Leader.Member, Token: c.Leader.Token}
			select {
			case <-o.ch: // not taken: replaced; the consumer still has seen
			default:
				seen = last
			}
			last = &lc
			if seen != nil && *seen == lc {
				continue
			}
			o.ch <- lc
		}
	}()
	return o, nil
}

// Changes returns the stream; Err says why it closed.
func (o *Observation) Changes() <-chan LeaderChange { return o.ch }

// Done is closed when the observation has ended and its goroutine has
// exited: after Close, when ctx ends or when the Backend ends. Err then
// says why.
func (o *Observation) Done() <-chan struct{} { return o.done }

// Err returns why the stream ended (nil while running).
func (o *Observation) Err() error { return o.lw.Err() }

// Close stops the observation and waits for it.
func (o *Observation) Close() {
	o.lw.Close()
	for range o.ch { //nolint:revive // wait for the forwarder to finish
	}
}
