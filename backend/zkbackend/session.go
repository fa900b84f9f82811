package zkbackend

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// sessState is the state of this connection's ZooKeeper session.
type sessState int

const (
	stConnecting sessState = iota // before the first session
	stConnected                   // session established, connection up
	stSuspended                   // connection down, session maybe alive
	stLost                        // session gone for good
	stClosed                      // closed by the user
)

// sessEvent is one item of the session goroutine's queue.
type sessEvent struct {
	state  zk.State
	server string
	giveUp error // set when the dialer exhausted connection_retry_attempts
}

// session tracks the ZooKeeper session and reports its changes to the
// backend's observer, in order, from one goroutine (run). go-zookeeper
// reconnects by itself and, when the server says the session expired,
// silently starts a new one: session reports that as Lost, and the
// connection then refuses every operation, because the old session's
// ephemeral nodes (members, locks) are gone. Only the server decides
// that a session expired (it keeps sessions alive through its own
// restarts and leader elections), unless connection_retry_deadline or
// connection_retry_attempts give up earlier.
type session struct {
	obs      driver.SessionObserver
	log      *zap.Logger
	deadline time.Duration // connection_retry_deadline; 0: none
	onLost   func()        // stops the client; called once, from run

	mu       sync.Mutex
	q        []sessEvent
	state    sessState
	sid      int64 // the session's ID (0 before it exists)
	ttl      time.Duration
	passwd   []byte
	expired  bool // the server refused the session on a reconnect
	lostErr  error
	endCh    chan struct{} // closed when lost or closed
	readyCh  chan struct{} // closed when the first session is established
	genCh    chan struct{} // closed (and replaced) when the connection resumes
	wake     chan struct{}
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func newSession(obs driver.SessionObserver, log *zap.Logger, requested, deadline time.Duration) *session {
	return &session{
		obs: obs, log: log, ttl: requested, deadline: deadline,
		endCh: make(chan struct{}), readyCh: make(chan struct{}), genCh: make(chan struct{}),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// onEvent is go-zookeeper's event callback: it must not block, so it
// only queues session events for run.
func (s *session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.push(sessEvent{state: ev.State, server: ev.Server})
}

func (s *session) push(ev sessEvent) {
	s.mu.Lock()
	s.q = append(s.q, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// giveUp reports that the connection cannot be re-established.
// Causes of a session given up by the connection retry policy, wrapped
// by the Backend's Err (errors.Is).
var (
	// ErrConnectionAttempts: connection_retry_attempts ran out.
	ErrConnectionAttempts = errors.New("zookeeper connection attempts exhausted")
	// ErrConnectionDeadline: the connection stayed down longer than
	// connection_retry_deadline.
	ErrConnectionDeadline = errors.New("zookeeper connection down past its retry deadline")
)

func (s *session) giveUp(cause error) { s.push(sessEvent{giveUp: cause}) }

// handshake records what the server answered to a connect request (read
// from the wire by the dialer, before go-zookeeper reports the state).
func (s *session) handshake(sid int64, timeout time.Duration, passwd []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sid == 0 {
		s.expired = s.state != stConnecting
		return
	}
	if s.sid == 0 {
		s.sid = sid
	}
	if sid == s.sid {
		s.ttl, s.passwd = timeout, append([]byte(nil), passwd...)
	} else {
		s.expired = true
	}
}

// refuseDial reports whether no further connection may be made: the
// session is lost or expired, or the connection is closed.
func (s *session) refuseDial() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expired || s.state == stLost || s.state == stClosed
}

// run processes session events until stop is closed.
func (s *session) run() {
	defer close(s.done)
	var timer *time.Timer
	var timerC <-chan time.Time
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	defer stopTimer()
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-timerC:
			timer, timerC = nil, nil
			s.lose(fmt.Errorf("%w: disconnected for longer than connection_retry_deadline=%v", ErrConnectionDeadline, s.deadline))
		}
		s.mu.Lock()
		q := s.q
		s.q = nil
		s.mu.Unlock()
		for _, ev := range q {
			switch {
			case ev.giveUp != nil:
				s.lose(ev.giveUp)
			case ev.state == zk.StateHasSession:
				if s.established() {
					stopTimer()
				}
			case ev.state == zk.StateDisconnected:
				if s.suspend() && s.deadline > 0 {
					stopTimer()
					timer = time.NewTimer(s.deadline)
					timerC = timer.C
				}
			case ev.state == zk.StateExpired:
				s.lose(zk.ErrSessionExpired)
			case ev.state == zk.StateAuthFailed:
				s.lose(zk.ErrAuthFailed)
			}
		}
	}
}

// established handles StateHasSession; it reports whether the session
// is up (first connection, or resumed after a suspension).
func (s *session) established() bool {
	s.mu.Lock()
	switch {
	case s.state == stLost || s.state == stClosed:
		s.mu.Unlock()
		return false
	case s.expired:
		s.mu.Unlock()
		s.lose(zk.ErrSessionExpired)
		return false
	case s.state == stConnecting:
		s.state = stConnected
		close(s.readyCh)
		s.mu.Unlock()
		s.log.Debug("zookeeper session established", zap.String("session", s.id()), zap.Duration("timeout", s.sessionTTL()))
		return true
	case s.state == stSuspended:
		s.state = stConnected
		close(s.genCh)
		s.genCh = make(chan struct{})
		s.mu.Unlock()
		s.obs.Resumed()
		return true
	}
	s.mu.Unlock()
	return true
}

// suspend handles StateDisconnected; it reports whether the session
// became suspended.
func (s *session) suspend() bool {
	s.mu.Lock()
	if s.state != stConnected {
		s.mu.Unlock()
		return false
	}
	s.state = stSuspended
	ttl := s.ttl
	s.mu.Unlock()
	s.obs.Suspended(driver.Errorf(driver.CodeUnavailable, "connection to ZooKeeper lost; the server expires the session %v after it last heard from this client", ttl))
	return true
}

// lose ends the session for good and stops the client.
func (s *session) lose(cause error) {
	s.mu.Lock()
	if s.state == stLost || s.state == stClosed {
		s.mu.Unlock()
		return
	}
	up := s.state != stConnecting
	s.state = stLost
	s.lostErr = driver.Wrap(driver.CodeLost, fmt.Errorf("zookeeper session %s: %w", s.idLocked(), cause))
	close(s.endCh)
	s.mu.Unlock()
	if up {
		s.obs.Lost(cause)
	}
	s.onLost()
}

// close marks the session closed by the user (so that the disconnection
// that follows is not reported) and stops run.
func (s *session) close() {
	s.mu.Lock()
	if s.state != stLost && s.state != stClosed {
		s.state = stClosed
		close(s.endCh)
	}
	s.mu.Unlock()
}

// shutdown stops run and waits for it.
func (s *session) shutdown() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// err returns the error every operation fails with once the session
// ended: CodeLost after a loss, CodeCanceled after Close; nil while usable.
func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state == stLost:
		return s.lostErr
	case s.state == stClosed:
		return driver.Errorf(driver.CodeCanceled, "zookeeper connection closed")
	case s.expired: // seen on the wire; run reports it in a moment
		return driver.Wrap(driver.CodeLost, fmt.Errorf("zookeeper session %s: %w", s.idLocked(), zk.ErrSessionExpired))
	}
	return nil
}

// ready is closed once the first session is established.
func (s *session) ready() <-chan struct{} { return s.readyCh }

// end is closed when the session is lost or the connection closed.
func (s *session) end() <-chan struct{} { return s.endCh }

// generation returns a channel closed when the connection next resumes
// after a suspension; watches then re-read what they watch.
func (s *session) generation() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.genCh
}

// connected reports whether the connection is up.
func (s *session) connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stConnected
}

// sessionID returns the session's ID (0 before it exists).
func (s *session) sessionID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sid
}

// credentials returns the session's ID and password.
func (s *session) credentials() (int64, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sid, append([]byte(nil), s.passwd...)
}

// sessionTTL returns the negotiated session timeout (the requested one
// before the first handshake).
func (s *session) sessionTTL() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttl
}

func (s *session) id() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idLocked()
}

func (s *session) idLocked() string { return fmt.Sprintf("0x%x", s.sid) }

// errNotConnected is the cause of a failed initial connection.
var errNotConnected = errors.New("no ZooKeeper session established")
