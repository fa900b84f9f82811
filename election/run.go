package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
)

// Run is the elected singleton runner. It campaigns in group and, while
// this member leads, runs fn under the term's context. When leadership is
// lost or in doubt that context is cancelled (context.Cause says why), Run
// waits for fn to return, and campaigns again. When fn returns by itself,
// Run resigns and returns fn's error. When ctx ends, Run cancels fn, waits
// for it, resigns (so a successor takes over at once) and returns nil: a
// clean shutdown is not an error, so `if err := election.Run(...); err !=
// nil { log.Fatal(err) }` is right on SIGTERM. When the backend's session
// is lost for good, Run returns an error matching backend.ErrLost. Run
// blocks throughout.
func Run(ctx context.Context, b *backend.Backend, group string, fn func(ctx context.Context) error, opts ...Option) error {
	e, err := New(b, group, opts...)
	if err != nil {
		return err
	}
	return e.Run(ctx, fn)
}

// Run is the runner of an existing Election; see the package function Run.
func (e *Election) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	if e.o.onNewLeader != nil {
		obs, err := e.Observe(obsCtx)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range obs.Changes() {
				e.o.onNewLeader(c)
			}
		}()
	}
	for {
		if err := e.b.Err(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		term, err := e.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if berr := e.b.Err(); berr != nil {
				return berr
			}
			e.b.Logger().Warn("campaign failed; retrying", zap.String("group", e.group), zap.Error(err))
			t := e.b.Clock().NewTimer(e.o.retryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C():
			}
			continue
		}
		if done, ferr := e.lead(ctx, term, fn); done {
			return ferr
		}
	}
}

// lead runs fn for one term. It reports whether Run must return (and
// with what), or that the term was lost and Run must campaign again.
func (e *Election) lead(ctx context.Context, term Term, fn func(context.Context) error) (done bool, err error) {
	if e.o.onElected != nil {
		e.o.onElected(term)
	}
	runCtx, cancel := context.WithCancelCause(term.Context)
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	result := make(chan error, 1)
	go func() { result <- fn(runCtx) }()
	var ferr error
	select {
	case ferr = <-result:
		// fn returned by itself while leading (or right as the term ended).
	case <-runCtx.Done():
		ferr = <-result
	}
	stop()
	cancel(ErrResigned)
	lost := term.Context.Err() != nil && !errors.Is(context.Cause(term.Context), backend.ErrReleased)
	switch {
	case lost && ctx.Err() == nil:
		cause := context.Cause(term.Context)
		e.b.Logger().Warn("leadership lost; campaigning again")
		e.dropLost()
		if e.o.onDemoted != nil {
			e.o.onDemoted(cause)
		}
		if berr := e.b.Err(); berr != nil {
			return true, berr
		}
		return false, nil
	default:
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		rerr := e.Resign(rctx)
		rcancel()
		if e.o.onDemoted != nil {
			e.o.onDemoted(ErrResigned)
		}
		if ctx.Err() != nil {
			return true, nil
		}
		if ferr == nil && rerr != nil && !errors.Is(rerr, ErrNotLeader) {
			ferr = fmt.Errorf("resign after the work returned: %w", rerr)
		}
		return true, ferr
	}
}

// dropLost forgets a lost term (the backend releases it in the
// background).
func (e *Election) dropLost() {
	e.mu.Lock()
	g := e.g
	e.g = nil
	e.mu.Unlock()
	if g != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = g.Release(ctx)
	}
}
