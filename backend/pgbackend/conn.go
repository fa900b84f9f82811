package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// conn is one Backend's connection to PostgreSQL: a session connection
// (liveness), a listener connection (notifications), a pool (requests)
// and, while waiters need them, the session watcher's connections.
type conn struct {
	cfg    *driver.Config
	s      *settings
	log    *zap.Logger
	clock  driver.Clock
	q      *queries
	sid    int32
	schema string // quoted
	pool   *pgxpool.Pool
	pin    pinned // the pool's connection kept for lock statements
	sess   *session
	hub    *hub
	watch  *sessWatch
	tz     *toozState // compat=tooz; nil otherwise

	ctx    context.Context // ends with Close or the session's loss
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ driver.Conn         = (*conn)(nil)
	_ driver.LockWaiter   = (*conn)(nil)
	_ driver.SharedLocker = (*conn)(nil)
	_ driver.GroupWatcher = (*conn)(nil)
	_ driver.LockBreaker  = (*conn)(nil)
)

func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	c, err := openConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// openConn connects the session connection, creates the schema when
// needed, takes the session's advisory lock, and starts the listener, the
// pool and the janitor.
func openConn(ctx context.Context, cfg *driver.Config) (*conn, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	c := &conn{cfg: cfg, s: s, log: cfg.Logger, clock: cfg.Clock, schema: pgx.Identifier{s.schema}.Sanitize(), closed: make(chan struct{})}
	if cfg.Options.String("compat") == driver.CompatTooz {
		c.tz = &toozState{held: map[toozGrant]bool{}}
	}
	sc, err := c.connect(ctx)
	if err != nil {
		return nil, c.connectError(err)
	}
	fail := func(err error) (*conn, error) {
		_ = sc.Close(context.Background())
		if c.pool != nil {
			c.pool.Close()
		}
		return nil, c.connectError(err)
	}
	oid, err := ensureSchema(ctx, sc, s.schema)
	if err != nil {
		return fail(err)
	}
	channel := channelName(oid)
	c.q = newQueries(c.schema, oid, channel)
	// The session: a number from the schema's sequence, its advisory
	// lock held by this connection, and the server's idle timeout.
	sent := time.Now()
	var ok bool
	for i := 0; !ok; i++ {
		if i == 10 {
			return fail(errors.New("no free session number"))
		}
		if err := sc.QueryRow(ctx, `SELECT nextval('`+c.schema+`.session_ids')`).Scan(&c.sid); err != nil {
			return fail(err)
		}
		if err := sc.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, int32(oid), c.sid).Scan(&ok); err != nil {
			return fail(err)
		}
	}
	if _, err := sc.Exec(ctx, fmt.Sprintf(`SET idle_session_timeout = %d`, s.ttl.Milliseconds())); err != nil {
		return fail(err)
	}
	if _, err := sc.Exec(ctx, c.q.registerSession, c.sid, cfg.MemberID); err != nil {
		return fail(err)
	}
	pc, err := pgxpool.NewWithConfig(context.Background(), c.poolConfig())
	if err != nil {
		return fail(err)
	}
	c.pool = pc
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.sess = newSession(c, sc, sent)
	c.watch = newSessWatch(c)
	c.hub = newHub(c, channel)
	if err := c.hub.start(ctx); err != nil {
		c.cancel()
		return fail(err)
	}
	c.wg.Add(3)
	go c.sess.run()
	go c.hub.run()
	go c.janitor()
	return c, nil
}

// connect opens one connection with the URL's settings.
func (c *conn) connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, c.s.conn.Copy())
}

func (c *conn) poolConfig() *pgxpool.Config {
	pc, _ := pgxpool.ParseConfig("")
	pc.ConnConfig = c.s.conn.Copy()
	pc.MaxConns = int32(c.s.poolSize)
	pc.MinConns = 0
	pc.MaxConnIdleTime = time.Minute
	pc.HealthCheckPeriod = time.Minute
	return pc
}

// connectError classifies a failure to open.
func (c *conn) connectError(err error) error {
	return classify(err)
}

// Session reports a session whose liveness is the session connection.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessSession, TTL: c.s.ttl}
}

// Renew pings the server on the session connection.
func (c *conn) Renew(ctx context.Context) error { return c.sess.ping(ctx) }

// sessionErr returns the session's loss or closing, nil while it lives.
func (c *conn) sessionErr() error { return c.sess.err() }

// check returns the error an operation fails with before it starts.
func (c *conn) check() error { return c.sess.err() }

// janitor removes what ended sessions left behind, at the renew cadence.
func (c *conn) janitor() {
	defer c.wg.Done()
	every := max(c.s.ttl/3, 10*time.Millisecond)
	for {
		t := c.clock.NewTimer(every)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		ctx, cancel := context.WithTimeout(c.ctx, every)
		if _, err := c.pool.Exec(ctx, c.q.janitor, c.sid); err != nil && c.ctx.Err() == nil {
			c.log.Debug("postgresql janitor", zap.Error(err))
		}
		cancel()
	}
}

// Close removes this session's rows (notifying waiters and watchers),
// ends the session connection (freeing its advisory lock), and stops
// every goroutine.
func (c *conn) Close(ctx context.Context) error {
	var err error
	c.closeOnce.Do(func() {
		err = c.sess.close(ctx)
		c.cancel()
		c.wg.Wait()
		c.watch.stop()
		c.hub.close()
		c.unpin()
		c.pool.Close()
		close(c.closed)
	})
	<-c.closed
	return err
}
