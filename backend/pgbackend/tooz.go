package pgbackend

import (
	"context"
	"crypto/md5"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: a user lock NAME is also tooz's session-level advisory lock
// (k1, k2), the first two bytes of md5(NAME) (tooz.drivers.pgsql), held on
// the session connection next to baton's row. See the package's Info.

// userLockPrefix is how the backend prefixes user lock names in
// LockRequest.Key; such a lock's tooz name is the rest.
const userLockPrefix = "l/"

// toozPoll is how often a blocked acquisition tries again in tooz mode:
// tooz's releases notify nobody.
const toozPoll = 50 * time.Millisecond

// toozKey is tooz's advisory key of a lock name: the first two bytes of
// its MD5, each as an int4 from 0 to 255 (psycopg2 passes the two-byte
// digest as a sequence of two integers).
func toozKey(name string) [2]int32 {
	d := md5.Sum([]byte(name))
	return [2]int32{int32(d[0]), int32(d[1])}
}

// toozName returns the tooz lock name of a backend lock key, and whether
// the key is a user lock shared with tooz in this mode.
func (c *conn) toozName(key string) (string, bool) {
	if c.tz == nil {
		return "", false
	}
	return strings.CutPrefix(key, userLockPrefix)
}

// toozState is what a connection in tooz mode keeps: the advisory holds
// it took, one per grant.
type toozState struct {
	mu   sync.Mutex
	held map[toozGrant]bool // value: shared
}

type toozGrant struct {
	key   string
	token uint64
}

// sessJob is a statement run on the session connection by the session's
// goroutine (which owns the connection).
type sessJob struct {
	fn   func(ctx context.Context, pc *pgx.Conn) error
	done chan struct{}
	err  error
}

// exec runs fn on the session connection and waits for it. The job runs
// to its end even if ctx ends (bounded by the session timeout), so that
// an advisory lock it takes is never left unknown; a connection failure
// ends the session.
func (s *session) exec(fn func(ctx context.Context, pc *pgx.Conn) error) error {
	s.mu.Lock()
	if err := s.errLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	j := &sessJob{fn: fn, done: make(chan struct{})}
	s.jobs = append(s.jobs, j)
	if s.waitCancel != nil {
		s.waitCancel()
	}
	s.mu.Unlock()
	<-j.done
	return j.err
}

// nextJobLocked pops the next job; mu is held.
func (s *session) nextJobLocked() *sessJob {
	if len(s.jobs) == 0 {
		return nil
	}
	j := s.jobs[0]
	s.jobs = s.jobs[1:]
	return j
}

// doJob runs j, bounded like a ping by the instant the server may have
// ended the session; its success proves the session alive as a ping.
func (s *session) doJob(j *sessJob) {
	s.mu.Lock()
	deadline := s.lastOK.Add(s.ttl)
	s.mu.Unlock()
	ctx, cancel := context.WithDeadline(s.stopCtx, deadline)
	sent := time.Now()
	err := j.fn(ctx, s.conn)
	cancel()
	if err == nil {
		s.mu.Lock()
		s.lastOK = sent
		s.mu.Unlock()
		j.err = nil
		close(j.done)
		return
	}
	if s.conn.IsClosed() {
		s.lose(fmt.Errorf("session connection: %w", err))
		j.err = s.err()
		close(j.done)
		return
	}
	j.err = classify(err)
	close(j.done)
}

// drainJobs fails the jobs left when run ends.
func (s *session) drainJobs() {
	s.mu.Lock()
	jobs := s.jobs
	s.jobs = nil
	s.mu.Unlock()
	for _, j := range jobs {
		j.err = s.err()
		if j.err == nil {
			j.err = driver.Errorf(driver.CodeCanceled, "postgresql connection closed")
		}
		close(j.done)
	}
}

// advisory runs one advisory-lock function of tooz's key of name on the
// session connection and returns its boolean result.
func (c *conn) advisory(fn, name string) (bool, error) {
	k := toozKey(name)
	var ok bool
	err := c.sess.exec(func(ctx context.Context, pc *pgx.Conn) error {
		return pc.QueryRow(ctx, `SELECT `+fn+`($1, $2)`, k[0], k[1]).Scan(&ok)
	})
	return ok, err
}

// toozTryLock takes tooz's advisory key of name (shared or exclusive) on
// the session connection, then baton's row of the lock; it gives the
// advisory key back when the row is not granted.
func (c *conn) toozTryLock(ctx context.Context, sql, name string, req driver.LockRequest, shared bool) (driver.Lease, bool, error) {
	if err := c.check(); err != nil {
		return driver.Lease{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return driver.Lease{}, false, c.classify(err)
	}
	lockFn, unlockFn := "pg_try_advisory_lock", "pg_advisory_unlock"
	waiting := 0
	if shared {
		lockFn, unlockFn, waiting = "pg_try_advisory_lock_shared", "pg_advisory_unlock_shared", -1
	}
	ok, err := c.advisory(lockFn, name)
	if err != nil || !ok {
		return driver.Lease{}, false, err
	}
	lease, ok, err := c.tryLock(ctx, sql, req, waiting)
	if err != nil || !ok {
		_, _ = c.advisory(unlockFn, name)
		return driver.Lease{}, false, err
	}
	c.tz.mu.Lock()
	c.tz.held[toozGrant{req.Key, lease.Token}] = shared
	c.tz.mu.Unlock()
	return lease, true, nil
}

// toozWaitLock polls toozTryLock: a tooz holder's release notifies nobody.
func (c *conn) toozWaitLock(ctx context.Context, name string, req driver.LockRequest) (driver.Lease, error) {
	for {
		sent := c.clock.Now()
		lease, ok, err := c.toozTryLock(ctx, c.q.tryLock, name, req, false)
		if ctx.Err() != nil {
			if ok {
				_ = c.Unlock(context.WithoutCancel(ctx), req.Key, lease.Token)
			}
			return driver.Lease{}, ctx.Err()
		}
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			lease.Sent = sent
			return lease, nil
		}
		t := c.clock.NewTimer(toozPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return driver.Lease{}, ctx.Err()
		case <-c.ctx.Done():
			t.Stop()
			if err := c.check(); err != nil {
				return driver.Lease{}, err
			}
			return driver.Lease{}, driver.Errorf(driver.CodeCanceled, "postgresql connection closed")
		case <-t.C():
		}
	}
}

// toozUnlock releases the row, then the grant's advisory hold.
func (c *conn) toozUnlock(ctx context.Context, name, key string, token uint64) error {
	err := c.unlockRow(ctx, key, token)
	g := toozGrant{key, token}
	c.tz.mu.Lock()
	shared, held := c.tz.held[g]
	delete(c.tz.held, g)
	c.tz.mu.Unlock()
	if held {
		fn := "pg_advisory_unlock"
		if shared {
			fn = "pg_advisory_unlock_shared"
		}
		if _, uerr := c.advisory(fn, name); err == nil && uerr != nil && c.check() == nil {
			err = uerr
		}
	}
	return err
}

// toozHolder reports baton's holder of key, else a holder of tooz's
// advisory key outside baton's rows (a tooz process, or a baton grant of
// another name with the same two-byte key), with an empty member and
// token 0.
func (c *conn) toozHolder(ctx context.Context, name, key string) (driver.Holder, error) {
	h, err := c.holderRow(ctx, key)
	if code, _ := driver.CodeOf(err); code != driver.CodeNotFound {
		return h, err
	}
	k := toozKey(name)
	var held bool
	qerr := c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2 AND granted)`, k[0], k[1]).Scan(&held)
	if qerr != nil {
		return driver.Holder{}, c.classify(fmt.Errorf("read tooz's advisory lock: %w", qerr))
	}
	if held {
		return driver.Holder{}, nil
	}
	return driver.Holder{}, err
}

// toozCharacteristics are the driver's characteristics with compat=tooz:
// tooz's holders take the advisory key without a token.
func toozCharacteristics(v driver.Values) driver.Characteristics {
	c := Info().Characteristics
	if v.String("compat") == driver.CompatTooz {
		c.Fencing = driver.FencingPartial
	}
	return c
}

const compatDoc = "tooz: a user lock NAME is also tooz's session-level advisory lock on the first two bytes of md5(NAME), on the same database, so baton and tooz (postgresql://) holders exclude each other; " +
	"baton's rows still keep names apart and number grants, but two names with the same two-byte key exclude each other across sessions as in tooz, tooz's holders have no token (fencing partial), " +
	"a blocked acquisition polls every 50ms and BreakLock of a user lock is unimplemented. Groups, members and leaders keep baton's layout (tooz has none on PostgreSQL)."
