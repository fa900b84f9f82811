package pgbackend

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend/driver"
)

// session owns the session connection, whose advisory lock is this
// member's liveness. Its goroutine (run) waits on the connection between
// pings, so that a session the server ends (termination, idle timeout,
// shutdown) is seen at once; it pings when Renew asks and on its own when
// idle for a third of the timeout. A ping not answered by the time the
// server may have ended the session (timeout after the last answered
// ping was sent) ends the session for good: an ended PostgreSQL session
// cannot come back, its advisory lock is gone.
type session struct {
	c    *conn
	conn *pgx.Conn
	ttl  time.Duration

	mu         sync.Mutex
	lastOK     time.Time // when the last answered ping (or the lock) was sent
	state      int
	lostErr    error
	round      *pingRound // the ping asked for and not yet answered
	jobs       []*sessJob // statements to run on the session connection (compat=tooz)
	waitCancel context.CancelFunc
	stopCtx    context.Context
	stop       context.CancelFunc
	done       chan struct{}
}

const (
	sessLive = iota
	sessLost
	sessClosed
)

// pingRound is one ping's outcome, shared by every Renew waiting on it.
type pingRound struct {
	once sync.Once
	done chan struct{}
	err  error
}

// finish answers the round once; later answers are dropped.
func (r *pingRound) finish(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.done)
	})
}

func newSession(c *conn, pc *pgx.Conn, locked time.Time) *session {
	s := &session{c: c, conn: pc, ttl: c.s.ttl, lastOK: locked, done: make(chan struct{})}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	return s
}

// ping asks run for a ping and waits for its answer or ctx.
func (s *session) ping(ctx context.Context) error {
	s.mu.Lock()
	if err := s.errLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	r := s.askLocked()
	s.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("ping the session connection: %w", ctx.Err()))
	}
}

// askLocked returns the pending ping round, creating it and waking run.
func (s *session) askLocked() *pingRound {
	if s.round == nil {
		s.round = &pingRound{done: make(chan struct{})}
		if s.waitCancel != nil {
			s.waitCancel()
		}
	}
	return s.round
}

func (s *session) run() {
	defer s.c.wg.Done()
	defer close(s.done)
	defer s.drainJobs()
	idle := max(s.ttl/3, time.Millisecond)
	for {
		s.mu.Lock()
		if s.state != sessLive {
			s.mu.Unlock()
			return
		}
		if r := s.round; r != nil {
			s.mu.Unlock()
			s.doPing(r)
			continue
		}
		if j := s.nextJobLocked(); j != nil {
			s.mu.Unlock()
			s.doJob(j)
			continue
		}
		wctx, cancel := context.WithTimeout(s.stopCtx, idle)
		s.waitCancel = cancel
		s.mu.Unlock()
		err := s.conn.PgConn().WaitForNotification(wctx)
		interrupted := wctx.Err() != nil
		cancel()
		s.mu.Lock()
		s.waitCancel = nil
		if interrupted && s.state == sessLive && s.round == nil && len(s.jobs) == 0 {
			s.askLocked() // idle for a while: ping on our own
		}
		s.mu.Unlock()
		if interrupted || err == nil {
			continue
		}
		s.lose(fmt.Errorf("session connection: %w", err))
		return
	}
}

// doPing sends one ping, bounded by the instant the server may have
// ended the session, and answers round r.
func (s *session) doPing(r *pingRound) {
	s.mu.Lock()
	deadline := s.lastOK.Add(s.ttl)
	s.mu.Unlock()
	ctx, cancel := context.WithDeadline(s.stopCtx, deadline)
	sent := time.Now()
	_, err := s.conn.Exec(ctx, "SELECT 1")
	cancel()
	s.mu.Lock()
	if s.round == r {
		s.round = nil
	}
	if err == nil {
		s.lastOK = sent
		s.mu.Unlock()
		r.finish(nil)
		return
	}
	stopped := s.state != sessLive
	s.mu.Unlock()
	if stopped {
		r.finish(s.err())
		return
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer to a ping within the session timeout %v: %w", s.ttl, err)
	}
	s.lose(fmt.Errorf("session connection: %w", err))
	r.finish(s.err())
}

// lose ends the session for good: the connection is closed (freeing the
// advisory lock if the server still holds it), the observer told, and the
// connection's goroutines stopped.
func (s *session) lose(cause error) {
	s.mu.Lock()
	if s.state != sessLive {
		s.mu.Unlock()
		return
	}
	s.state = sessLost
	s.lostErr = driver.Wrap(driver.CodeLost, fmt.Errorf("postgresql session %d: %w", s.c.sid, cause))
	r := s.round
	s.round = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = s.conn.Close(ctx)
	cancel()
	if r != nil {
		r.finish(s.err())
	}
	s.c.cfg.Observer.Lost(cause)
	s.c.cancel()
}

// close ends the session on purpose: it stops run, removes the session's
// rows (waking waiters and watchers) and closes the connection.
func (s *session) close(ctx context.Context) error {
	s.mu.Lock()
	live := s.state == sessLive
	if live {
		s.state = sessClosed
	}
	r := s.round
	s.round = nil
	s.mu.Unlock()
	s.stop()
	<-s.done
	if r != nil {
		r.finish(s.err())
	}
	if !live {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, max(s.ttl, 5*time.Second))
	defer cancel()
	if !s.conn.IsClosed() {
		_, _ = s.conn.Exec(cctx, s.c.q.closeSession, s.c.sid)
	}
	_ = s.conn.Close(cctx)
	return nil
}

// err returns the error every operation fails with once the session
// ended: CodeLost after a loss, CodeCanceled after Close; nil while live.
func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errLocked()
}

func (s *session) errLocked() error {
	switch s.state {
	case sessLost:
		return s.lostErr
	case sessClosed:
		return driver.Errorf(driver.CodeCanceled, "postgresql connection closed")
	}
	return nil
}
