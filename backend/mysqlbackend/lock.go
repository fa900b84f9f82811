package mysqlbackend

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// busy says why a lock was not granted.
type busy int

const (
	notBusy    busy = iota
	busyExcl        // another connection holds the GET_LOCK
	busyShared      // live shared holders
)

// TryLock takes the exclusive lock req.Key: one statement on the session
// connection takes the key's GET_LOCK (without waiting) and, only if it
// got it and no live shared holder exists, bumps the key's fencing
// counter and records the holder, atomically.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	lease, why, err := c.tryLock(ctx, req)
	return lease, why == notBusy && err == nil, err
}

func (c *conn) tryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, busy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.held[req.Key]; h != nil {
		// Not reentrant; a shared hold of this member excludes it too.
		if h.excl != 0 {
			return driver.Lease{}, busyExcl, c.lost()
		}
		return driver.Lease{}, busyShared, c.lost()
	}
	name := c.lockName(req.Key)
	lid := hash(req.Key)
	var token uint64
	var why busy
	err := c.onSessionLocked(ctx, func(ctx context.Context, s *sql.Conn) error {
		full := false
		var err error
		for attempt := 0; ; attempt++ {
			// One statement: take the GET_LOCK without waiting and, only
			// if taken and no live shared holder exists, bump the
			// counter and record the holder. The first try is the form
			// without the shared-holder subquery, for a row that counts
			// no shared hold: the server parses and plans a statement
			// with a subquery at every execution, which costs as much
			// as the rest of the grant. Only if that form took the
			// GET_LOCK and still did not grant (the row counts shared
			// holds, live or not) does the full form run.
			q := `UPDATE ` + c.t.locks + ` SET token = LAST_INSERT_ID(token + 1), holder_sess = ?, holder_member = ?
WHERE ns = ? AND lid = ? AND GET_LOCK(?, 0) = 1 AND shared_n <= 0`
			if full {
				q = `UPDATE ` + c.t.locks + ` l SET token = LAST_INSERT_ID(token + 1), holder_sess = ?, holder_member = ?
WHERE ns = ? AND lid = ? AND GET_LOCK(?, 0) = 1
  AND (shared_n <= 0 OR NOT EXISTS (SELECT 1 FROM ` + c.t.shared + ` s WHERE s.ns = l.ns AND s.lid = l.lid AND IS_USED_LOCK(s.sess) IS NOT NULL))`
			}
			var res sql.Result
			if full {
				res, err = s.ExecContext(ctx, q, c.sessName, []byte(req.Member), c.ns, lid, name)
			} else {
				var st *sql.Stmt
				if st, err = c.sessStmt(ctx, s, &c.grantStmt, q); err == nil {
					res, err = st.ExecContext(ctx, c.sessName, []byte(req.Member), c.ns, lid, name)
				}
			}
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n > 0 {
				id, err := res.LastInsertId()
				token = uint64(id)
				return err
			}
			// Not granted: give back the GET_LOCK if the statement took
			// it (live shared holders), and learn why.
			rel, err := c.releaseLock(ctx, s, name)
			if err != nil {
				return err
			}
			switch {
			case rel.Valid && rel.Int64 == 1 && !full:
				// Shared holds counted: are they live?
				full = true
				continue
			case rel.Valid && rel.Int64 == 1:
				why = busyShared
				return nil
			case rel.Valid:
				why = busyExcl
				return nil
			case attempt >= 10:
				// Taken and released by others between our two
				// statements, again and again: report it taken.
				why = busyExcl
				return nil
			}
			// The GET_LOCK is free: either the name has no row yet (the
			// statement never evaluated GET_LOCK), or another connection
			// held it and released it since. Insert the row holding the
			// lock, or update it as above if it exists by now.
			res, err = s.ExecContext(ctx, `INSERT INTO `+c.t.locks+` (ns, lid, name, token, holder_sess, holder_member, shared_n)
SELECT ?, ?, ?, LAST_INSERT_ID(1), ?, ?, 0 FROM DUAL
WHERE GET_LOCK(?, 0) = 1
  AND NOT EXISTS (SELECT 1 FROM `+c.t.shared+` s WHERE s.ns = ? AND s.lid = ? AND IS_USED_LOCK(s.sess) IS NOT NULL)
ON DUPLICATE KEY UPDATE token = LAST_INSERT_ID(token + 1), holder_sess = VALUES(holder_sess), holder_member = VALUES(holder_member)`,
				c.ns, lid, []byte(req.Key), c.sessName, []byte(req.Member), name, c.ns, lid)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
			if n > 0 {
				id, err := res.LastInsertId()
				token = uint64(id)
				return err
			}
			if err := s.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&rel); err != nil {
				return err
			}
			if rel.Valid {
				why = busyExcl
				if rel.Int64 == 1 {
					why = busyShared
				}
				return nil
			}
		}
	})
	if err != nil || why != notBusy {
		return driver.Lease{}, why, err
	}
	if token == 0 {
		return driver.Lease{}, notBusy, driver.Errorf(driver.CodeInternal, "lock %q granted without a fencing token", req.Key)
	}
	c.held[req.Key] = &hold{excl: token}
	return driver.Lease{Token: token}, notBusy, nil
}

// TryLockShared takes a shared hold of req.Key: under the key's GET_LOCK
// (taken for one round trip, as a mutex against exclusive acquirers) it
// bumps the fencing counter and inserts a row owned by the session.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.held[req.Key]; h != nil && h.excl != 0 {
		return driver.Lease{}, false, c.lost()
	}
	name := c.lockName(req.Key)
	lid := hash(req.Key)
	var token uint64
	err := c.onSessionLocked(ctx, func(ctx context.Context, s *sql.Conn) error {
		// Another shared acquirer holds the GET_LOCK only for a round
		// trip: try again while the holder is not an exclusive one.
		for attempt := 0; ; attempt++ {
			res, err := s.ExecContext(ctx, `UPDATE `+c.t.locks+` SET token = LAST_INSERT_ID(token + 1), holder_sess = '', holder_member = '', shared_n = shared_n + 1
WHERE ns = ? AND lid = ? AND GET_LOCK(?, 0) = 1`, c.ns, lid, name)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n > 0 {
				id, err := res.LastInsertId()
				if err != nil {
					return err
				}
				_, err = s.ExecContext(ctx, `INSERT INTO `+c.t.shared+` (ns, lid, token, sess, member) VALUES (?, ?, ?, ?, ?)`,
					c.ns, lid, uint64(id), c.sessName, []byte(req.Member))
				var rel sql.NullInt64
				if rerr := s.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&rel); err == nil {
					err = rerr
				}
				if err == nil {
					token = uint64(id)
				}
				return err
			}
			var excl sql.NullBool
			err = s.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?) = IS_USED_LOCK(NULLIF(holder_sess, '')) FROM `+c.t.locks+` WHERE ns = ? AND lid = ?`,
				name, c.ns, lid).Scan(&excl)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if err := c.ensureLockRow(ctx, s, lid, req.Key); err != nil {
					return err
				}
				continue
			case err != nil:
				return err
			}
			if (excl.Valid && excl.Bool) || attempt >= 100 {
				return nil
			}
		}
	})
	if err != nil || token == 0 {
		return driver.Lease{}, false, err
	}
	h := c.held[req.Key]
	if h == nil {
		h = &hold{}
		c.held[req.Key] = h
	}
	if h.shared == nil {
		h.shared = map[uint64]bool{}
	}
	h.shared[token] = true
	return driver.Lease{Token: token}, true, nil
}

// Unlock releases the grant of key with token: RELEASE_LOCK for an
// exclusive grant, deleting the row for a shared one.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.held[key]
	notHeld := driver.Errorf(driver.CodeNotHeld, "lock %q with token %d is not held", key, token)
	if h == nil || (h.excl != token && !h.shared[token]) {
		return notHeld
	}
	if c.lost() != nil {
		delete(c.held, key)
		return notHeld
	}
	if h.excl == token {
		name := c.lockName(key)
		var rel sql.NullInt64
		err := c.onSessionLocked(ctx, func(ctx context.Context, s *sql.Conn) error {
			var err error
			rel, err = c.releaseLock(ctx, s, name)
			return err
		})
		if err != nil {
			if code, _ := driver.CodeOf(err); code == driver.CodeLost {
				delete(c.held, key)
				return notHeld
			}
			return err
		}
		h.excl = 0
		c.forget(key, h)
		if !rel.Valid || rel.Int64 != 1 {
			return notHeld
		}
		return nil
	}
	var n int64
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = c.dropShared(ctx, tx, hash(key), `token = ? AND sess = ?`, token, c.sessName)
		return err
	})
	if err != nil {
		return err
	}
	delete(h.shared, token)
	c.forget(key, h)
	if n == 0 {
		return notHeld
	}
	return nil
}

// dropShared deletes the shared rows of lid matching cond and takes them
// off the row's count of shared holds, in tx.
func (c *conn) dropShared(ctx context.Context, tx *sql.Tx, lid []byte, cond string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM `+c.t.shared+` WHERE ns = ? AND lid = ? AND `+cond, append([]any{c.ns, lid}, args...)...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE `+c.t.locks+` SET shared_n = shared_n - ? WHERE ns = ? AND lid = ?`, n, c.ns, lid)
	return n, err
}

// ensureLockRow creates the row of a lock name (counter 0) unless it
// exists.
func (c *conn) ensureLockRow(ctx context.Context, s *sql.Conn, lid []byte, key string) error {
	_, err := s.ExecContext(ctx, `INSERT IGNORE INTO `+c.t.locks+` (ns, lid, name, token, holder_sess, holder_member, shared_n) VALUES (?, ?, ?, 0, '', '', 0)`,
		c.ns, lid, []byte(key))
	return err
}

// forget drops key from held once nothing of it is held. mu is held.
func (c *conn) forget(key string, h *hold) {
	if h.excl == 0 && len(h.shared) == 0 {
		delete(c.held, key)
	}
}

// RefreshLock is never called: leases live as long as the session.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	return driver.Errorf(driver.CodeUnimplemented, "locks are bound to the session and need no refresh")
}

// Holder reports the exclusive holder (the key's GET_LOCK is held by the
// connection holding the recorded holder's session lock), else one live
// shared holder. Dead shared rows met on the way are removed.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	name := c.lockName(key)
	lid := hash(key)
	var member []byte
	var token uint64
	var excl sql.NullBool
	err := c.db.QueryRowContext(ctx, `SELECT holder_member, token, IS_USED_LOCK(?) = IS_USED_LOCK(NULLIF(holder_sess, '')) FROM `+c.t.locks+` WHERE ns = ? AND lid = ?`,
		name, c.ns, lid).Scan(&member, &token, &excl)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return c.toozHolder(ctx, name, key)
	case err != nil:
		return driver.Holder{}, classify(err)
	case excl.Valid && excl.Bool:
		return driver.Holder{Member: string(member), Token: token}, nil
	}
	rows, err := c.db.QueryContext(ctx, `SELECT member, token, IS_USED_LOCK(sess) IS NOT NULL FROM `+c.t.shared+` WHERE ns = ? AND lid = ? ORDER BY token`, c.ns, lid)
	if err != nil {
		return driver.Holder{}, classify(err)
	}
	defer rows.Close()
	var found *driver.Holder
	dead := false
	for rows.Next() {
		var live bool
		if err := rows.Scan(&member, &token, &live); err != nil {
			return driver.Holder{}, classify(err)
		}
		if !live {
			dead = true
		} else if found == nil {
			found = &driver.Holder{Member: string(member), Token: token}
		}
	}
	if err := rows.Err(); err != nil {
		return driver.Holder{}, classify(err)
	}
	rows.Close()
	if dead {
		err := c.tx(ctx, func(tx *sql.Tx) error {
			_, err := c.dropShared(ctx, tx, lid, `IS_FREE_LOCK(sess) = 1`)
			return err
		})
		if err != nil {
			return driver.Holder{}, err
		}
	}
	if found == nil {
		return c.toozHolder(ctx, name, key)
	}
	return *found, nil
}

// WaitLock blocks until req.Key is granted, waiting on the server. A
// waiter takes a connection of the wait pool and first queues on the
// key's queue lock (GET_LOCK on "baton:q:..."), so waiters of all
// Backends line up in the server's FIFO and only the head waits for the
// lock itself: one statement, GET_LOCK(name, t) then RELEASE_LOCK(name),
// returns the moment the holder releases (or its connection drops), and
// the session connection then takes the lock. The queue lock is released
// once the lock is granted, or with the connection when ctx ends. Only a
// wait on shared holders (rows, which the server cannot signal) is
// polled.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	sent := c.clock.Now()
	lease, why, err := c.tryLock(ctx, req)
	if err != nil {
		return driver.Lease{}, err
	}
	if why == notBusy {
		lease.Sent = sent
		return lease, nil
	}
	w, err := c.waitDB.Conn(ctx)
	if err != nil {
		return driver.Lease{}, classify(err)
	}
	var id int64 // w's connection ID, once known
	lease, err = c.waitOn(ctx, w, req, &id)
	if err != nil {
		// The connection may hold the queue lock or be mid-statement:
		// discard it; the server frees its locks. A statement cut by ctx
		// is not stopped on the server by closing its socket (the driver
		// sends no KILL): a GET_LOCK it was blocked in would take the lock
		// the moment the holder releases it, for nobody (it releases it
		// again in the same statement, but another member's try could
		// find it busy meanwhile, and Holder would report it). Stop it.
		if ctx.Err() != nil && id != 0 {
			c.killQuery(id)
		}
		_ = w.Raw(func(any) error { return sqldriver.ErrBadConn })
		_ = w.Close()
		if ctx.Err() != nil {
			return driver.Lease{}, classify(ctx.Err())
		}
		return driver.Lease{}, err
	}
	_ = w.Close()
	return lease, nil
}

// killQuery stops the statement running on connection id (a wait whose
// caller gave up), from a pooled connection, and returns once the server
// shows that connection no longer waiting for a user lock, or after 2 s:
// when WaitLock returns, nothing on the server still waits on its behalf.
func (c *conn) killQuery(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.db.ExecContext(ctx, "KILL QUERY "+strconv.FormatInt(id, 10)); err != nil {
		// 1094: unknown thread, the statement ended meanwhile.
		c.log.Debug("stopping an abandoned lock wait failed", zap.Int64("connection", id), zap.Error(err))
		return
	}
	for {
		var n int
		err := c.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'User lock'", id).Scan(&n)
		if err != nil || n == 0 {
			return
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// waitOn queues on the key's queue lock through w and waits until the
// lock is granted.
// id receives w's connection ID with the first answer.
func (c *conn) waitOn(ctx context.Context, w *sql.Conn, req driver.LockRequest, id *int64) (driver.Lease, error) {
	name := c.lockName(req.Key)
	queue := "baton:q:" + lockName(c.dbName, c.s.tablePrefix, c.ns, req.Key)[len("baton:l:"):]
	var got sql.NullInt64
	for !got.Valid || got.Int64 != 1 {
		if err := w.QueryRowContext(ctx, "SELECT GET_LOCK(?, 3600), CONNECTION_ID()", queue).Scan(&got, id); err != nil {
			return driver.Lease{}, classify(err)
		}
	}
	poll := 5 * time.Millisecond
	for {
		sent := c.clock.Now()
		lease, why, err := c.tryLock(ctx, req)
		if err != nil {
			return driver.Lease{}, err
		}
		if why == notBusy {
			lease.Sent = sent
			var rel sql.NullInt64
			if err := w.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", queue).Scan(&rel); err != nil {
				// Granted, but w may still hold the queue lock: discard
				// it, and the server frees the queue lock.
				_ = w.Raw(func(any) error { return sqldriver.ErrBadConn })
			}
			return lease, nil
		}
		if why == busyShared {
			t := c.clock.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return driver.Lease{}, classify(ctx.Err())
			case <-t.C():
			}
			poll = min(2*poll, 250*time.Millisecond)
			continue
		}
		poll = 5 * time.Millisecond
		var rel sql.NullInt64
		if err := w.QueryRowContext(ctx, "SELECT GET_LOCK(?, 3600), RELEASE_LOCK(?)", name, name).Scan(&got, &rel); err != nil {
			return driver.Lease{}, classify(err)
		}
	}
}
