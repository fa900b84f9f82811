package memcachedbackend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// gomemcache speaks memcached's classic text protocol, which has no
// compare-and-delete, no add that returns the stored item's CAS value and
// no arithmetic that creates its counter. The driver therefore keeps a
// small pool of connections of its own per server for memcached 1.6's
// meta commands (ms, mg, md, ma) and stats.

// runID identifies one run of a memcached server: its process id and
// start time (stats "pid" and "time" minus "uptime"). CAS values are
// unique within one run only; a restarted server numbers items anew.
type runID struct{ pid, start int64 }

// serverError is an error reply of the server (SERVER_ERROR, CLIENT_ERROR
// or ERROR).
type serverError struct{ line string }

func (e *serverError) Error() string { return "memcached: " + e.line }

// errPoolClosed is returned once the pool is closed.
var errPoolClosed = errors.New("memcached: connection pool closed")

// metaConn is one connection of the pool.
type metaConn struct {
	nc  net.Conn
	rw  *bufio.ReadWriter
	run runID
	// serverTime is the server's clock (stats "time") when the connection
	// was dialled, at the local instant dialled.
	serverTime int64
	dialled    time.Time
}

// serverNow estimates the server's clock in whole seconds (never ahead of
// it by more than the rounding of stats "time").
func (mc *metaConn) serverNow() int64 {
	return mc.serverTime + int64(time.Since(mc.dialled)/time.Second)
}

type metaServer struct {
	idle []*metaConn
	sem  chan struct{} // nil: no limit
}

// metaPool holds the meta connections of one driver connection.
type metaPool struct {
	timeout time.Duration
	maxIdle int
	maxOpen int

	mu      sync.Mutex
	servers map[string]*metaServer
	closed  bool
}

func newMetaPool(timeout time.Duration, maxPool int) *metaPool {
	idle := maxPool
	if idle == 0 {
		idle = defaultIdle
	}
	return &metaPool{timeout: timeout, maxIdle: idle, maxOpen: maxPool, servers: map[string]*metaServer{}}
}

func (p *metaPool) server(addr string) *metaServer {
	s := p.servers[addr]
	if s == nil {
		s = &metaServer{}
		if p.maxOpen > 0 {
			s.sem = make(chan struct{}, p.maxOpen)
		}
		p.servers[addr] = s
	}
	return s
}

// get takes an idle connection to addr or dials one; reused reports an
// idle one (which may have been broken by a server restart meanwhile).
func (p *metaPool) get(ctx context.Context, addr string) (mc *metaConn, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errPoolClosed
	}
	s := p.server(addr)
	p.mu.Unlock()
	if s.sem != nil {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	p.mu.Lock()
	if n := len(s.idle); n > 0 {
		mc = s.idle[n-1]
		s.idle = s.idle[:n-1]
		p.mu.Unlock()
		return mc, true, nil
	}
	p.mu.Unlock()
	mc, err = p.dial(ctx, addr)
	if err != nil {
		p.release(s)
		return nil, false, err
	}
	return mc, false, nil
}

func (p *metaPool) release(s *metaServer) {
	if s.sem != nil {
		<-s.sem
	}
}

// put returns mc to the pool, or closes it when it broke (ok false) or the
// pool is full or closed.
func (p *metaPool) put(addr string, mc *metaConn, ok bool) {
	p.mu.Lock()
	s := p.server(addr)
	if ok && !p.closed && len(s.idle) < p.maxIdle {
		s.idle = append(s.idle, mc)
		mc = nil
	}
	p.mu.Unlock()
	if mc != nil {
		_ = mc.nc.Close()
	}
	p.release(s)
}

// close closes every idle connection; connections in use are closed when
// they are put back.
func (p *metaPool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*metaConn
	for _, s := range p.servers {
		all = append(all, s.idle...)
		s.idle = nil
	}
	p.mu.Unlock()
	for _, mc := range all {
		_ = mc.nc.Close()
	}
}

// dial connects to addr and reads the server's run and clock.
func (p *metaPool) dial(ctx context.Context, addr string) (*metaConn, error) {
	d := net.Dialer{Timeout: p.timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	mc := &metaConn{nc: nc, rw: bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))}
	stats, err := p.stats(ctx, mc)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	mc.dialled = time.Now()
	mc.serverTime = stats["time"]
	mc.run = runID{pid: stats["pid"], start: stats["time"] - stats["uptime"]}
	return mc, nil
}

// stats runs "stats" and returns its numeric fields.
func (p *metaPool) stats(ctx context.Context, mc *metaConn) (map[string]int64, error) {
	if err := p.deadline(ctx, mc); err != nil {
		return nil, err
	}
	if _, err := mc.rw.WriteString("stats\r\n"); err != nil {
		return nil, err
	}
	if err := mc.rw.Flush(); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for {
		line, err := readLine(mc.rw.Reader)
		if err != nil {
			return nil, err
		}
		if line == "END" {
			return out, nil
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			return nil, protocolError(line)
		}
		if n, err := strconv.ParseInt(f[2], 10, 64); err == nil {
			out[f[1]] = n
		}
	}
}

func (p *metaPool) deadline(ctx context.Context, mc *metaConn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	return mc.nc.SetDeadline(dl)
}

// reply is a meta command's response: its status ("HD", "VA", "EN", "NS",
// "EX", "NF"), its flags and, for "VA", its value.
type reply struct {
	status string
	flags  []string
	value  []byte
}

// flag returns the value of the return flag f ("c" for the CAS value).
func (r reply) flag(f byte) (string, bool) {
	for _, s := range r.flags {
		if len(s) > 0 && s[0] == f {
			return s[1:], true
		}
	}
	return "", false
}

// uintFlag returns a numeric return flag.
func (r reply) uintFlag(f byte) (uint64, error) {
	s, ok := r.flag(f)
	if !ok {
		return 0, protocolError(fmt.Sprintf("%s without %c flag", r.status, f))
	}
	return strconv.ParseUint(s, 10, 64)
}

// command is one meta command: its line (without CRLF) and, for a
// command that stores a value, the value.
type command struct {
	line string
	data []byte
}

// do sends one meta command to addr and reads its reply; check builds the
// command from the connection it goes over (its run), or refuses.
func (p *metaPool) do(ctx context.Context, addr string, check func(mc *metaConn) (line string, data []byte, err error)) (reply, error) {
	rs, err := p.pipeline(ctx, addr, func(mc *metaConn) ([]command, error) {
		line, data, err := check(mc)
		return []command{{line: line, data: data}}, err
	})
	if err != nil {
		return reply{}, err
	}
	return rs[0], nil
}

// pipeline sends the commands check builds in one write to addr and reads
// their replies in order: one round trip. A connection taken idle from
// the pool that turns out broken is replaced once by a fresh one (its run
// read anew), which is how a server restart is noticed.
func (p *metaPool) pipeline(ctx context.Context, addr string, check func(mc *metaConn) ([]command, error)) ([]reply, error) {
	for attempt := 0; ; attempt++ {
		mc, reused, err := p.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		cmds, err := check(mc)
		if err != nil {
			p.put(addr, mc, true)
			return nil, err
		}
		rs, err := p.roundTrip(ctx, mc, cmds)
		var se *serverError
		broken := err != nil && !errors.As(err, &se)
		p.put(addr, mc, !broken)
		if broken && reused && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return rs, err
	}
}

func (p *metaPool) roundTrip(ctx context.Context, mc *metaConn, cmds []command) ([]reply, error) {
	if err := p.deadline(ctx, mc); err != nil {
		return nil, err
	}
	w := mc.rw.Writer
	for _, c := range cmds {
		_, _ = w.WriteString(c.line)
		_, _ = w.WriteString("\r\n")
		if c.data != nil {
			_, _ = w.Write(c.data)
			_, _ = w.WriteString("\r\n")
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	out := make([]reply, 0, len(cmds))
	var firstErr error
	for range cmds {
		r, err := readReply(mc.rw.Reader)
		var se *serverError
		if err != nil && !errors.As(err, &se) {
			return nil, err
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, r)
	}
	return out, firstErr
}

func readReply(rd *bufio.Reader) (reply, error) {
	resp, err := readLine(rd)
	if err != nil {
		return reply{}, err
	}
	f := strings.Fields(resp)
	if len(f) == 0 {
		return reply{}, protocolError(resp)
	}
	switch f[0] {
	case "HD", "EN", "NS", "EX", "NF":
		return reply{status: f[0], flags: f[1:]}, nil
	case "VA":
		if len(f) < 2 {
			return reply{}, protocolError(resp)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			return reply{}, protocolError(resp)
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(rd, buf); err != nil {
			return reply{}, err
		}
		return reply{status: "VA", flags: f[2:], value: buf[:n]}, nil
	case "SERVER_ERROR", "CLIENT_ERROR", "ERROR":
		return reply{}, &serverError{line: resp}
	}
	return reply{}, protocolError(resp)
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// protocolError is an unexpected reply: the connection is then dropped.
func protocolError(line string) error {
	return fmt.Errorf("memcached: unexpected reply %q", line)
}
