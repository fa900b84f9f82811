package pgbackend

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier is what lock statements run on: the pinned connection or the
// pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pinned is one connection of the pool kept out of it for the lock
// statements, so that an uncontended acquire or release is a statement on
// a connection already in hand: no pool acquire and release around each
// statement (with their locks, semaphores and connection checks). A
// statement that finds it busy (concurrent lock operations of one
// Backend) runs on the pool instead, so nothing waits for it. It is
// taken only when the pool has room for at least one more connection.
type pinned struct {
	mu     sync.Mutex
	conn   *pgxpool.Conn
	used   time.Time // when its last statement ended
	closed bool
}

// pinIdlePing is how long the pinned connection may stay idle before its
// next use pings it first, as the pool does with a connection idle for
// over a second: a connection dropped meanwhile (by a middlebox, or the
// server) is then replaced instead of failing a lock statement.
const pinIdlePing = time.Second

// withConn runs f on the pinned connection if it is free, on the pool
// otherwise. f must finish with the connection (Scan its row) before it
// returns.
func (c *conn) withConn(ctx context.Context, f func(q querier) error) error {
	if c.s.poolSize < 2 || !c.pin.mu.TryLock() {
		return f(c.pool)
	}
	defer c.pin.mu.Unlock()
	if c.pin.closed {
		return f(c.pool)
	}
	if c.pin.conn != nil && time.Since(c.pin.used) > pinIdlePing {
		if err := c.pin.conn.Ping(ctx); err != nil {
			// A broken connection is destroyed by the pool on release.
			c.pin.conn.Release()
			c.pin.conn = nil
		}
	}
	if c.pin.conn == nil {
		pc, err := c.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		c.pin.conn = pc
	}
	err := f(c.pin.conn)
	c.pin.used = time.Now()
	if pc := c.pin.conn.Conn().PgConn(); err != nil && (pc.IsClosed() || pc.IsBusy() || pc.TxStatus() != 'I') {
		// Broken, or left mid-statement or mid-transaction by a failed
		// statement: the pool destroys it on release; the next
		// statement takes another.
		c.pin.conn.Release()
		c.pin.conn = nil
	}
	return err
}

// queryRow runs a one-row statement and scans it (withConn).
func (c *conn) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	return c.withConn(ctx, func(q querier) error { return q.QueryRow(ctx, sql, args...).Scan(dest...) })
}

// exec runs a statement (withConn).
func (c *conn) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := c.withConn(ctx, func(q querier) error {
		var err error
		tag, err = q.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// unpin gives the pinned connection back to the pool (before it closes)
// once its statement, if any, is over.
func (c *conn) unpin() {
	c.pin.mu.Lock()
	defer c.pin.mu.Unlock()
	c.pin.closed = true
	if c.pin.conn != nil {
		c.pin.conn.Release()
		c.pin.conn = nil
	}
}
