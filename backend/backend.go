// Package backend is the portable API of baton: one connection to one
// coordination service, acting as one member, chosen by a URL.
//
// A *Backend keeps its member alive by itself (a session loop), tracks
// every grant it hands out (locks and leadership) and cancels a grant's
// context the moment ownership is lost or in doubt. Drivers register
// themselves by blank import (see package backend/all for every driver).
// The feature packages lock, membership, election and partitioner build on
// this API; most programs use those.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// Backend is one connection to a coordination service acting as one
// member. It is safe for concurrent use by many goroutines.
type Backend struct {
	conn    driver.Conn
	cfg     *Config
	o       options
	session driver.SessionInfo
	chars   Characteristics
	log     *zap.Logger

	ctx    context.Context // lifetime: cancelled with a cause on loss or close
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	closed    bool
	grants    map[*Grant]struct{}
	joined    map[string]struct{}
	watches   map[int]context.CancelCauseFunc
	nextWatch int
	liveUntil time.Time
	suspended bool          // the driver reported its connection lost
	unheard   bool          // nothing heard from the server for the whole TTL
	liveCh    chan struct{} // closed and replaced whenever liveness changes
	// lastRenewErr is the last renewal's error while they fail.
	lastRenewErr error
	// watchMargin is the largest margin among grants bound to the session.
	watchMargin time.Duration

	timing      Timing
	ref         refresher // own leases' refresh scheduler
	listeners   listeners
	deliverMu   sync.Mutex
	deliverDone chan struct{}

	wg sync.WaitGroup // every goroutine the Backend starts
}

// Open parses rawURL and connects. It blocks until the session is
// established or ctx is done. See ParseURL for the URL form.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Backend, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg, opts...)
}

// OpenConfig connects with an already parsed configuration.
func OpenConfig(ctx context.Context, cfg *Config, opts ...Option) (*Backend, error) {
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	chars := cfg.Driver.CharacteristicsOf(cfg.Options)
	if chars.Watch == driver.WatchPoll {
		chars.PollInterval = o.pollInterval
	}
	var missing []string
	for _, c := range o.require {
		if !chars.Has(c) {
			missing = append(missing, c.String())
		}
	}
	if len(missing) > 0 {
		return nil, newError(driver.CodeUnimplemented, "open "+cfg.Redacted,
			fmt.Errorf("driver %s lacks required characteristics: %s", cfg.Driver.Name, strings.Join(missing, ", ")))
	}
	b := &Backend{
		cfg:     cfg,
		o:       o,
		chars:   chars,
		log:     o.logger.With(zap.String("backend", cfg.Scheme), zap.String("member", o.memberID)),
		grants:  map[*Grant]struct{}{},
		joined:  map[string]struct{}{},
		watches: map[int]context.CancelCauseFunc{},
		liveCh:  make(chan struct{}),

		deliverDone: make(chan struct{}),
	}
	b.ref.wake = make(chan struct{}, 1)
	b.ref.work = make(chan struct{}, maxRefreshWorkers)
	b.listeners.subs = map[int]*subscriber{}
	b.listeners.wake = make(chan struct{}, 1)
	b.ctx, b.cancel = context.WithCancelCause(context.Background())
	dcfg := cfg.driverConfig()
	dcfg.MemberID, dcfg.Logger, dcfg.Observer, dcfg.Clock = o.memberID, b.log, observer{b}, o.clock
	sent := o.clock.Now()
	conn, err := cfg.Driver.Open(ctx, dcfg)
	if err != nil {
		b.cancel(ErrClosed)
		return nil, wrap("open "+cfg.Redacted, err)
	}
	b.conn = conn
	b.ref.batch, _ = conn.(driver.BatchRefresher)
	if err := b.checkDriver(); err != nil {
		_ = conn.Close(ctx)
		b.cancel(ErrClosed)
		return nil, err
	}
	b.session = conn.Session()
	b.liveUntil = sent.Add(b.session.TTL)
	timing, err := NewTiming(b.session.TTL, b.session.RenewInterval, o.margin, o.rtt)
	if err != nil {
		_ = conn.Close(ctx)
		b.cancel(ErrClosed)
		return nil, wrap("open "+cfg.Redacted, err)
	}
	b.timing = timing
	if b.session.RenewInterval == 0 {
		b.session.RenewInterval = timing.Interval
	}
	b.wg.Add(1)
	go b.deliverLoop()
	b.emit(SessionConnected, nil)
	if timing.TTL > 0 || b.session.RenewInterval > 0 {
		b.wg.Add(1)
		go b.renewLoop()
	}
	if timing.TTL > 0 {
		b.wg.Add(1)
		go b.watchdog()
	}
	b.log.Debug("opened", zap.String("url", cfg.Redacted), zap.Stringer("liveness", b.session.Liveness),
		zap.Stringer("timing", b.timing))
	return b, nil
}

// checkDriver verifies that the driver's declared characteristics agree
// with the optional interfaces its connection implements.
func (b *Backend) checkDriver() error {
	_, gw := b.conn.(driver.GroupWatcher)
	_, sl := b.conn.(driver.SharedLocker)
	switch {
	case gw != (b.chars.Watch == driver.WatchPush):
		return newError(driver.CodeInternal, "open", fmt.Errorf("driver %s: declared watch kind %v disagrees with its GroupWatcher", b.cfg.Driver.Name, b.chars.Watch))
	case sl != b.chars.SharedLocks:
		return newError(driver.CodeInternal, "open", fmt.Errorf("driver %s: declared shared locks %v disagree with its SharedLocker", b.cfg.Driver.Name, b.chars.SharedLocks))
	}
	return nil
}

// MemberID returns this Backend's member identity.
func (b *Backend) MemberID() string { return b.o.memberID }

// Config returns the parsed connection string this Backend was opened with.
func (b *Backend) Config() *Config { return b.cfg }

// Characteristics reports the facts of this backend.
func (b *Backend) Characteristics() Characteristics { return b.chars }

// Session reports how this member is kept alive (kind, TTL, renewal
// interval as the timing model set it).
func (b *Backend) Session() driver.SessionInfo { return b.session }

// Logger returns the Backend's logger, for the feature packages.
func (b *Backend) Logger() *zap.Logger { return b.log }

// Clock returns the Backend's clock, for the feature packages.
func (b *Backend) Clock() Clock { return b.o.clock }

// PollInterval returns the polling period of emulated watches.
func (b *Backend) PollInterval() time.Duration { return b.o.pollInterval }

// Done is closed when the session is lost for good or the Backend is
// closed; Err then says which.
func (b *Backend) Done() <-chan struct{} { return b.ctx.Done() }

// Err returns nil while the Backend is usable, ErrClosed after Close, and
// an error matching ErrLost (with the cause) after the session was lost.
func (b *Backend) Err() error {
	if b.ctx.Err() == nil {
		return nil
	}
	return context.Cause(b.ctx)
}

// Context returns a context that is cancelled, with Err as its cause, when
// the Backend is closed or its session is lost.
func (b *Backend) Context() context.Context { return b.ctx }

// check returns the error an operation must fail with, if any.
func (b *Backend) check() error { return b.Err() }

// Close leaves every group joined through this Backend, releases every
// grant, stops every watch and ends the session. It blocks until all of
// that is done or ctx is done, and returns the first error met; the
// Backend is unusable afterwards either way. Closing twice returns nil.
//
// Local resources (goroutines, watches, grant contexts, the connection)
// are always released. When ctx is already done on entry — a shutdown
// path that reuses a cancelled context — the releases and leaves on the
// server are still made, best-effort, under Close's own deadline of
// CloseGrace (or the renew interval when shorter), so nothing stays held
// until a TTL runs out.
func (b *Backend) Close(ctx context.Context) error {
	if ctx.Err() != nil {
		grace := CloseGrace
		if b.timing.Interval > 0 && b.timing.Interval < grace {
			grace = b.timing.Interval
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	grants := make([]*Grant, 0, len(b.grants))
	for g := range b.grants {
		grants = append(grants, g)
	}
	groups := make([]string, 0, len(b.joined))
	for g := range b.joined {
		groups = append(groups, g)
	}
	watches := make([]context.CancelCauseFunc, 0, len(b.watches))
	for _, c := range b.watches {
		watches = append(watches, c)
	}
	b.mu.Unlock()

	var errs []error
	alive := b.ctx.Err() == nil
	// A session lost while closing is not Close's failure: the store
	// dropped the grants and memberships with it.
	for _, g := range grants {
		if err := g.release(ctx, ErrClosed); err != nil && alive && !errors.Is(err, ErrNotHeld) && !errors.Is(err, ErrLost) {
			errs = append(errs, err)
		}
	}
	if alive {
		for _, g := range groups {
			err := b.conn.Leave(ctx, g)
			if c := CodeOf(err); err != nil && c != driver.CodeNotMember && c != driver.CodeGroupNotFound && c != driver.CodeLost {
				errs = append(errs, wrap(fmt.Sprintf("leave group %q", g), err))
			}
		}
	}
	for _, c := range watches {
		c(ErrClosed)
	}
	if alive {
		b.emit(SessionClosed, ErrClosed)
		b.cancel(ErrClosed)
	}
	b.wg.Wait()
	if err := b.conn.Close(ctx); err != nil && alive && CodeOf(err) != driver.CodeLost {
		errs = append(errs, wrap("close", err))
	}
	b.log.Debug("closed")
	return errors.Join(errs...)
}

// CloseGrace bounds the best-effort releases on the server that Close makes
// when its context is already done on entry.
const CloseGrace = 2 * time.Second

// startWatch registers a watch goroutine's cancel function so Close can
// stop it; the returned func unregisters it.
func (b *Backend) startWatch(cancel context.CancelCauseFunc) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	id := b.nextWatch
	b.nextWatch++
	b.watches[id] = cancel
	b.wg.Add(1)
	return func() {
		b.mu.Lock()
		delete(b.watches, id)
		b.mu.Unlock()
		b.wg.Done()
	}, nil
}
