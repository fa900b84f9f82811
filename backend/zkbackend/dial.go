package zkbackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialer connects go-zookeeper to the servers: it paces reconnection
// attempts (connection_retry_*), wraps TCP in TLS when asked, reads the
// server's handshake reply as it passes (go-zookeeper keeps the
// negotiated session timeout and the session password to itself), and
// can cut the live connection so that Close never waits on a silent
// server.
type dialer struct {
	s    *settings
	sess *session
	tls  tlsConfigFunc

	mu       sync.Mutex
	attempts int // dials since the last session was established
	lastErr  error
	cur      net.Conn
	closed   bool
	stop     chan struct{}
}

// tlsConfigFunc wraps a raw connection to host in TLS, or returns nil
// when TLS is off.
type tlsConfigFunc func(raw net.Conn, host string, timeout time.Duration) (net.Conn, error)

func newDialer(s *settings, sess *session, tlsWrap tlsConfigFunc) *dialer {
	return &dialer{s: s, sess: sess, tls: tlsWrap, stop: make(chan struct{})}
}

// dial is go-zookeeper's Dialer. It runs on go-zookeeper's connection
// goroutine.
func (d *dialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("connection closed")
	}
	n := d.attempts
	d.attempts++
	d.mu.Unlock()
	if d.sess.refuseDial() {
		return nil, errors.New("session lost; not reconnecting")
	}
	if n > 0 {
		if !d.s.conn.allows(n) {
			d.sess.giveUp(fmt.Errorf("%w: gave up after %d connection attempts (connection_retry_attempts=%d)", ErrConnectionAttempts, n, d.s.conn.attempts))
			return nil, errors.New("connection attempts exhausted")
		}
		wait := d.s.conn.wait(n)
		wait += time.Duration(rand.Float64() * 0.25 * float64(wait))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.stop:
			t.Stop()
			return nil, errors.New("connection closed")
		}
	}
	raw, err := (&net.Dialer{Timeout: min(timeout, d.handshakeTimeout())}).Dial(network, address)
	if err != nil {
		d.failed(err)
		return nil, err
	}
	conn := raw
	if d.tls != nil {
		host, _, _ := net.SplitHostPort(address)
		if conn, err = d.tls(raw, host, timeout); err != nil {
			_ = raw.Close()
			d.failed(err)
			return nil, err
		}
	}
	w := &sniffConn{Conn: conn, d: d, limit: d.handshakeTimeout()}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		_ = w.Close()
		return nil, errors.New("connection closed")
	}
	d.cur = w
	return w, nil
}

// handshakeTimeout bounds connecting to one server, handshake included: a
// third of the session timeout (at least 100 ms). go-zookeeper allows
// the handshake ten times its receive timeout (here 6.7 times the session
// timeout), so a frozen server that still accepts TCP connections would
// hold the client past its session's expiry; a third of it leaves time
// to try the next server and resume the session there.
func (d *dialer) handshakeTimeout() time.Duration {
	return max(d.s.timeout/3, 100*time.Millisecond)
}

// failed records why the last connection attempt failed.
func (d *dialer) failed(err error) {
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
}

// lastError returns why the last connection attempt failed, or nil.
func (d *dialer) lastError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// handshake is called with the server's reply to a connect request.
func (d *dialer) handshake(sid int64, timeout time.Duration, passwd []byte) {
	if sid != 0 {
		d.mu.Lock()
		d.attempts = 0
		d.mu.Unlock()
	}
	d.sess.handshake(sid, timeout, passwd)
}

// shutdown stops dialing and closes the live connection, which unblocks
// go-zookeeper's goroutines however silent the server is.
func (d *dialer) shutdown() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.stop)
	}
	if d.cur != nil {
		_ = d.cur.Close()
		d.cur = nil
	}
}

// refuse reports whether go-zookeeper must stop trying servers.
func (d *dialer) refuse() bool {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	return closed || d.sess.refuseDial()
}

// sniffConn passes bytes through and parses the first frame the server
// sends, the reply to the connect request: protocol version (int32),
// negotiated timeout in ms (int32), session ID (int64), password (int32
// length + bytes).
type sniffConn struct {
	net.Conn
	d     *dialer
	limit time.Duration // the longest deadline before the handshake is read
	done  atomic.Bool   // the handshake reply was read
	buf   []byte
}

// SetReadDeadline caps go-zookeeper's deadlines to the handshake timeout
// until the handshake is read; then they pass unchanged (its receive
// timeout, two thirds of the session timeout).
func (c *sniffConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.capped(t)) }

// SetWriteDeadline caps deadlines as SetReadDeadline does.
func (c *sniffConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.capped(t)) }

func (c *sniffConn) capped(t time.Time) time.Time {
	if c.done.Load() || t.IsZero() {
		return t
	}
	if limit := time.Now().Add(c.limit); t.After(limit) {
		return limit
	}
	return t
}

// Read is only ever called by one goroutine at a time (go-zookeeper reads
// the handshake, then starts its receive loop).
func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done.Load() && n > 0 {
		c.feed(p[:n])
	}
	return n, err
}

func (c *sniffConn) feed(b []byte) {
	c.buf = append(c.buf, b...)
	if len(c.buf) < 4 {
		return
	}
	size := int(binary.BigEndian.Uint32(c.buf))
	if len(c.buf) < 4+size {
		return
	}
	c.done.Store(true)
	f := c.buf[4 : 4+size]
	c.buf = nil
	if len(f) < 20 {
		return
	}
	timeout := time.Duration(int32(binary.BigEndian.Uint32(f[4:]))) * time.Millisecond
	sid := int64(binary.BigEndian.Uint64(f[8:]))
	plen := int(int32(binary.BigEndian.Uint32(f[16:])))
	var passwd []byte
	if plen > 0 && 20+plen <= len(f) {
		passwd = f[20 : 20+plen]
	}
	c.d.handshake(sid, timeout, passwd)
}

// hostProvider is go-zookeeper's HostProvider: it keeps the servers in
// the order given (go-zookeeper's own shuffles them unconditionally and
// resolves them once, at start), reshuffles per round when
// randomize_hosts is on, and never asks go-zookeeper to pause between
// rounds (the dialer paces attempts) until the connection is closed or
// lost, when it makes go-zookeeper stop.
type hostProvider struct {
	refuse    func() bool
	randomize bool

	mu    sync.Mutex
	hosts []string
	next  int
}

func newHostProvider(hosts []string, randomize bool, refuse func() bool) *hostProvider {
	return &hostProvider{hosts: append([]string(nil), hosts...), randomize: randomize, refuse: refuse}
}

// Init ignores go-zookeeper's (shuffled) copy of the list.
func (h *hostProvider) Init([]string) error { return nil }

// Len returns the number of servers.
func (h *hostProvider) Len() int { return len(h.hosts) }

// Next returns the server to try next; retryStart asks go-zookeeper to
// pause and check whether it was closed, which matters only then.
func (h *hostProvider) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.next == 0 && h.randomize {
		rand.Shuffle(len(h.hosts), func(i, j int) { h.hosts[i], h.hosts[j] = h.hosts[j], h.hosts[i] })
	}
	s := h.hosts[h.next]
	h.next = (h.next + 1) % len(h.hosts)
	return s, h.refuse()
}

// Connected is called after a successful connection.
func (h *hostProvider) Connected() {}
