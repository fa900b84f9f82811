package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// Campaign makes this member the leader of group, waiting until it is (or
// ctx is done). Leadership is a lock of its own key space, so no lock
// name and no group member can collide with it. The returned Grant's
// Token is the term's fencing token and its Context ends when leadership
// is lost or in doubt; Release resigns. The group need not exist.
func (b *Backend) Campaign(ctx context.Context, group string, o LockOptions) (*Grant, error) {
	if err := checkName("group ID", group); err != nil {
		return nil, err
	}
	o.Shared = false
	return b.observedWait(ctx, leaderLockPrefix+group, group, opName{"campaign in", group}, o)
}

// TryCampaign tries once to become the leader of group; ok is false when
// another member leads.
func (b *Backend) TryCampaign(ctx context.Context, group string, o LockOptions) (*Grant, bool, error) {
	if err := checkName("group ID", group); err != nil {
		return nil, false, err
	}
	o.Shared = false
	return b.tryGrant(ctx, leaderLockPrefix+group, group, opName{"campaign in", group}, o)
}

// Leader reports the current leader of group; ok is false when there is
// none.
func (b *Backend) Leader(ctx context.Context, group string) (h Holder, ok bool, err error) {
	if err := checkName("group ID", group); err != nil {
		return Holder{}, false, err
	}
	return b.holder(ctx, leaderLockPrefix+group, fmt.Sprintf("leader of %q", group))
}

// LeaderChange is one observed state of a group's leadership.
type LeaderChange struct {
	// Held is false when the group has no leader.
	Held bool
	// Leader is the leader and its term's token when Held.
	Leader Holder
}

// LeaderWatch is a stream of leadership changes of one group, starting
// with the current state. Consecutive duplicates are suppressed. Safe for
// concurrent use.
type LeaderWatch struct {
	group  string
	ch     chan LeaderChange
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// Changes returns the stream; it is closed when the watch ends, and Err
// then says why.
func (w *LeaderWatch) Changes() <-chan LeaderChange { return w.ch }

// Done is closed when the watch has ended and its goroutine exited; Err
// then says why.
func (w *LeaderWatch) Done() <-chan struct{} { return w.done }

// Err returns why the stream ended (nil while running).
func (w *LeaderWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the watch and waits for its goroutine.
func (w *LeaderWatch) Close() {
	w.cancel(newError(driver.CodeCanceled, "observe leader of "+w.group, errors.New("closed")))
	<-w.done
}

// ObserveLeader streams the leadership of group: pushed where the driver
// can (HolderWatcher), otherwise polled every PollInterval. The latest
// state always wins: a slow consumer sees the newest change, not a
// backlog.
func (b *Backend) ObserveLeader(ctx context.Context, group string) (*LeaderWatch, error) {
	if err := b.pre("group ID", group); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancelCause(ctx)
	stopB := context.AfterFunc(b.ctx, func() { cancel(context.Cause(b.ctx)) })
	done, err := b.startWatch(cancel)
	if err != nil {
		stopB()
		cancel(err)
		return nil, err
	}
	w := &LeaderWatch{group: group, ch: make(chan LeaderChange, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer done()
		defer stopB()
		defer close(w.done)
		defer close(w.ch)
		err := w.run(wctx, b)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}()
	return w, nil
}

func (w *LeaderWatch) run(ctx context.Context, b *Backend) error {
	key := leaderLockPrefix + w.group
	s := leaderStream{ch: w.ch}
	emit := s.emit
	endErr := func() error { return endedBy(ctx, "observe leader of "+w.group) }
	op := "observe leader of " + w.group
	budget := retryBudget{b: b}
	if hw, ok := b.conn.(driver.HolderWatcher); ok {
		for attempt := 0; ; attempt++ {
			delivered := false
			err := hw.WatchHolder(ctx, key, func(h driver.Holder, held bool) {
				if !held {
					h = driver.Holder{}
				}
				delivered = true
				emit(LeaderChange{Held: held, Leader: h})
			})
			if ctx.Err() != nil {
				return endErr()
			}
			if delivered {
				budget.succeeded()
			}
			if end := budget.failed(op, err); err != nil && end != nil {
				return end
			}
			b.log.Debug("leader watch interrupted; restarting", zap.String("group", w.group), zap.Error(err))
			t := b.o.clock.NewTimer(b.o.pollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return endErr()
			case <-t.C():
			}
		}
	}
	for {
		h, err := b.conn.Holder(ctx, key)
		switch {
		case ctx.Err() != nil:
			return endErr()
		case err == nil:
			budget.succeeded()
			emit(LeaderChange{Held: true, Leader: h})
		case CodeOf(err) == driver.CodeNotFound:
			budget.succeeded()
			emit(LeaderChange{})
		default:
			if end := budget.failed(op, err); end != nil {
				return end
			}
			b.log.Debug("leader poll failed", zap.String("group", w.group), zap.Error(err))
		}
		t := b.o.clock.NewTimer(b.o.pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return endErr()
		case <-t.C():
		}
	}
}

// leaderStream feeds a LeaderWatch's channel (capacity 1) from one
// goroutine: a state the consumer has not taken yet is replaced by a newer
// one, and the consumer never receives the state it took last again.
type leaderStream struct {
	ch   chan LeaderChange
	last *LeaderChange // the newest state emitted
	seen *LeaderChange // the newest state the consumer took
}

func (s *leaderStream) emit(c LeaderChange) {
	if s.last != nil && *s.last == c {
		return
	}
	select {
	case <-s.ch: // not taken: replaced; the consumer still has seen
	default:
		s.seen = s.last // taken (or nothing was emitted yet)
	}
	s.last = &c
	if s.seen != nil && *s.seen == c {
		return // back to what the consumer has
	}
	s.ch <- c
}
