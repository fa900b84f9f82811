package mysqlbackend

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// conn is one Backend's connection: a dedicated session connection that
// holds the member's liveness lock and every exclusive lock, a pool for
// group and member queries, and a pool on which blocked acquires wait.
type conn struct {
	s      *settings
	t      tables
	ns     string
	dbName string
	obs    driver.SessionObserver
	clock  driver.Clock
	log    *zap.Logger

	db     *sql.DB // group, member and shared-lock queries
	waitDB *sql.DB // blocked acquires wait here (one connection each)
	sessDB *sql.DB // holds the session connection only

	// sessName is the GET_LOCK name the session connection holds for the
	// Backend's whole life: a row whose sess lock is free is dead.
	sessName string
	memberID string

	// mu serializes the session connection and guards held.
	mu   sync.Mutex
	sess *sql.Conn
	sid  int64 // the session connection's CONNECTION_ID()
	held map[string]*hold
	// The uncontended acquire's and release's statements, prepared on
	// the session connection at first use: the server then neither
	// parses nor plans them again.
	grantStmt, releaseStmt *sql.Stmt

	tooz    bool      // compat=tooz
	mariaDB bool      // the server is MariaDB (GET_LOCK name limits)
	names   lockNames // GET_LOCK names by key

	stateMu sync.Mutex
	lostErr error // set once the session connection is gone
	closed  bool
}

// hold is what this connection holds of one lock key.
type hold struct {
	excl   uint64 // token of the exclusive grant; 0 when none
	shared map[uint64]bool
}

var (
	_ driver.Conn         = (*conn)(nil)
	_ driver.LockWaiter   = (*conn)(nil)
	_ driver.SharedLocker = (*conn)(nil)
)

func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	c, err := openConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c.outer(), nil
}

func openConn(ctx context.Context, cfg *driver.Config) (*conn, error) {
	s, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	c := &conn{
		s: s, t: newTables(s.tablePrefix), ns: s.namespace, dbName: s.mysql.DBName,
		obs: cfg.Observer, clock: cfg.Clock, log: cfg.Logger, memberID: cfg.MemberID,
		held: map[string]*hold{}, tooz: cfg.Options.String("compat") == driver.CompatTooz,
	}
	if c.clock == nil {
		c.clock = driver.RealClock{}
	}
	newDB := func(mc *mysql.Config, n int) (*sql.DB, error) {
		connector, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, driver.Wrap(driver.CodeInvalidArgument, err)
		}
		db := sql.OpenDB(connector)
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return db, nil
	}
	if c.db, err = newDB(s.mysql, s.poolSize); err != nil {
		return nil, err
	}
	if c.waitDB, err = newDB(s.mysql, s.poolSize); err != nil {
		c.db.Close()
		return nil, err
	}
	// Statements on the session connection are bounded by the
	// connection's own read and write deadlines (a third of the session
	// timeout), not by a context: a cancellable context costs two
	// goroutine handoffs per statement in database/sql and the client
	// (the Rows' watcher and the connection's cancel watcher), which is
	// most of an uncontended lock's client time. None of its statements
	// waits on the server.
	sc := s.mysql.Clone()
	sc.ReadTimeout = sessionStmtLimit(s)
	sc.WriteTimeout = sc.ReadTimeout
	if c.sessDB, err = newDB(sc, 1); err != nil {
		c.db.Close()
		c.waitDB.Close()
		return nil, err
	}
	if c.tooz {
		if err := c.probeLockNames(ctx); err != nil {
			c.closeDBs()
			return nil, err
		}
	}
	if err := c.start(ctx); err != nil {
		c.closeDBs()
		return nil, err
	}
	return c, nil
}

// start creates the schema and establishes the session connection.
func (c *conn) start(ctx context.Context) error {
	if err := c.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect: %w", classify(err))
	}
	if err := ensureSchema(ctx, c.db, c.s.mysql.Net+":"+c.s.mysql.Addr, c.dbName, c.t, c.s.tablePrefix); err != nil {
		return err
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	c.sessName = "baton:s:" + strings.ToLower(b32.EncodeToString(r[:]))
	sess, err := c.sessDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("session connection: %w", classify(err))
	}
	var got sql.NullInt64
	err = sess.QueryRowContext(ctx, "SELECT CONNECTION_ID(), GET_LOCK(?, 0)", c.sessName).Scan(&c.sid, &got)
	if err == nil && (!got.Valid || got.Int64 != 1) {
		err = errors.New("the session lock was refused")
	}
	if err == nil {
		// The server drops the session (and with it every lock and
		// membership) once it heard nothing for the session timeout.
		_, err = sess.ExecContext(ctx, fmt.Sprintf("SET SESSION wait_timeout = %d", c.s.waitTimeout))
	}
	if err != nil {
		sess.Close()
		return fmt.Errorf("session connection: %w", classify(err))
	}
	c.sess = sess
	return nil
}

// Session reports session liveness with the session timeout.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessSession, TTL: c.s.sessionTTL}
}

// ping is one round trip on the session connection.
func (c *conn) ping(ctx context.Context) error {
	ctx = context.WithValue(ctx, pingKey{}, true)
	return c.onSession(ctx, func(ctx context.Context, s *sql.Conn) error { return s.PingContext(ctx) })
}

// pingKey marks the ping's context: only the ping honours its caller's
// deadline on the session connection.
type pingKey struct{}

func pingDeadline(ctx context.Context) bool { v, _ := ctx.Value(pingKey{}).(bool); return v }

// Renew pings the session connection: one round trip, which also resets
// the server's wait_timeout. The backend calls it every renew interval
// (a third of the session timeout by default). A failed ping closes the
// connection (its outcome is unknown), so the session is reported lost:
// the server frees its locks once it notices the closed connection, or
// wait_timeout after the last command it heard, which is after the
// backend's loss deadline (last successful ping sent + timeout - margin).
func (c *conn) Renew(ctx context.Context) error { return c.ping(ctx) }

// lost returns the session's loss, if any, as a CodeLost error.
func (c *conn) lost() error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.lostErr != nil {
		return c.lostErr
	}
	if c.closed {
		return driver.Errorf(driver.CodeLost, "connection closed")
	}
	return nil
}

// fail ends the session after the session connection failed.
func (c *conn) fail(cause error) error {
	c.stateMu.Lock()
	first := c.lostErr == nil && !c.closed
	if first {
		c.lostErr = driver.Errorf(driver.CodeLost, "session connection lost: %w", cause)
	}
	err := c.lostErr
	if err == nil {
		err = driver.Errorf(driver.CodeLost, "connection closed")
	}
	c.stateMu.Unlock()
	if first {
		c.log.Warn("mysql session connection lost", zap.Error(cause))
		c.obs.Lost(err)
	}
	return err
}

// onSession runs f on the session connection, serialized with every other
// use of it. A failure of the connection ends the session. The caller
// must not hold mu.
func (c *conn) onSession(ctx context.Context, f func(context.Context, *sql.Conn) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.onSessionLocked(ctx, f)
}

// onSessionLocked is onSession for callers that hold mu.
func (c *conn) onSessionLocked(ctx context.Context, f func(context.Context, *sql.Conn) error) error {
	if err := c.lost(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return classify(err)
	}
	// A statement cut by its context would close the connection (the
	// client cannot tell how far the server got), ending the session: so
	// the caller's context does not cut statements on it (a caller's short
	// deadline must not end the session). They are bounded by a third of
	// the session timeout, or, for the ping, by Renew's deadline if
	// earlier; none blocks on the server.
	// Each read and write of a statement is bounded by the connection's
	// deadline (sessionStmtLimit); only a ping whose caller's deadline
	// is earlier gets a context deadline (rare: one per renewal).
	octx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok && pingDeadline(ctx) && time.Until(d) < sessionStmtLimit(c.s) {
		var cancel context.CancelFunc
		octx, cancel = context.WithDeadline(octx, d)
		defer cancel()
	}
	err := f(octx, c.sess)
	if err == nil {
		return nil
	}
	if _, ok := driver.CodeOf(err); ok {
		return err
	}
	// A statement cut by its timeout closed the connection: the session
	// is gone.
	if connectionError(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return c.fail(err)
	}
	return classify(err)
}

// sessStmt returns query prepared on the session connection s, preparing
// it into *p at first use. mu is held.
func (c *conn) sessStmt(ctx context.Context, s *sql.Conn, p **sql.Stmt, query string) (*sql.Stmt, error) {
	if *p == nil {
		st, err := s.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		*p = st
	}
	return *p, nil
}

// releaseLock runs RELEASE_LOCK(name) on the session connection s (its
// prepared statement). mu is held.
func (c *conn) releaseLock(ctx context.Context, s *sql.Conn, name string) (sql.NullInt64, error) {
	var rel sql.NullInt64
	st, err := c.sessStmt(ctx, s, &c.releaseStmt, "SELECT RELEASE_LOCK(?)")
	if err == nil {
		err = st.QueryRowContext(ctx, name).Scan(&rel)
	}
	return rel, err
}

// sessionStmtLimit bounds each read and write of a statement on the
// session connection: a third of the session timeout.
func sessionStmtLimit(s *settings) time.Duration { return max(s.sessionTTL/3, time.Millisecond) }

// Close leaves the member's groups, drops its shared holds, and closes
// the session connection (the server then frees every GET_LOCK it held)
// and both pools. The driver starts no goroutine of its own.
func (c *conn) Close(ctx context.Context) error {
	c.stateMu.Lock()
	if c.closed {
		c.stateMu.Unlock()
		return nil
	}
	alive := c.lostErr == nil
	c.closed = true
	c.stateMu.Unlock()
	var errs []error
	if alive {
		for _, tbl := range []string{c.t.members, c.t.shared} {
			if _, err := c.db.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE sess = ?", c.sessName); err != nil {
				errs = append(errs, classify(err))
			}
		}
	}
	c.mu.Lock()
	for _, st := range []*sql.Stmt{c.grantStmt, c.releaseStmt} {
		if st != nil {
			_ = st.Close()
		}
	}
	c.grantStmt, c.releaseStmt = nil, nil
	if c.sess != nil {
		if alive {
			// A session connection that dropped already freed its locks.
			if _, err := c.sess.ExecContext(ctx, "DO RELEASE_ALL_LOCKS()"); err != nil && !connectionError(err) {
				errs = append(errs, classify(err))
			}
		}
		c.sess.Close()
	}
	c.held = map[string]*hold{}
	c.mu.Unlock()
	c.closeDBs()
	return errors.Join(errs...)
}

func (c *conn) closeDBs() {
	c.db.Close()
	c.waitDB.Close()
	c.sessDB.Close()
}
