// Package tooztest runs a tooz member (OpenStack's Python coordination
// library, Debian's python3-tooz) as a child process driven by a Go test,
// so that a driver's compat=tooz mode is proven against what tooz itself
// reads and writes on the same server.
//
// The peer is peer.py in this directory: it reads one JSON request per
// line and answers one JSON line; see Peer.Do. make test installs
// python3-tooz and the client libraries its drivers import.
package tooztest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Python is the interpreter that has python3-tooz: Debian's, not one a
// version manager may put first on PATH.
const Python = "/usr/bin/python3"

// ErrTooz is the error of a request tooz refused or failed; errors.As to
// *Error gives tooz's exception class and message.
var ErrTooz = errors.New("tooz")

// Error is an exception tooz raised for a request.
type Error struct {
	Type    string // the exception's class, e.g. "GroupNotCreated"
	Message string
}

func (e *Error) Error() string { return "tooz " + e.Type + ": " + e.Message }

// Is makes errors.Is(err, ErrTooz) hold.
func (e *Error) Is(target error) bool { return target == ErrTooz }

// Peer is a running tooz member.
type Peer struct {
	t      testing.TB
	Member string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *strings.Builder

	mu     sync.Mutex
	exited chan struct{}
}

// script returns the path of peer.py, next to this file.
func script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "peer.py")
}

// Start runs a tooz member with id member on the tooz connection URL url
// (tooz's syntax, e.g. "redis://127.0.0.1:6379?timeout=3"), waits until
// its coordinator has started, and stops it when the test ends. It fails
// the test when python3-tooz is missing: make test installs it.
func Start(t testing.TB, url, member string) *Peer {
	t.Helper()
	if _, err := os.Stat(Python); err != nil {
		t.Fatalf("tooztest: %s is missing (make test installs python3-tooz): %v", Python, err)
	}
	cmd := exec.Command(Python, script(), url, member)
	stderr := &strings.Builder{}
	cmd.Stderr = &lockedWriter{b: stderr}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tooztest: start %s: %v", Python, err)
	}
	p := &Peer{t: t, Member: member, cmd: cmd, in: in, out: bufio.NewScanner(out), stderr: stderr, exited: make(chan struct{})}
	p.out.Buffer(make([]byte, 1<<20), 16<<20)
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.Kill)
	if _, err := p.read(); err != nil {
		t.Fatalf("tooztest: tooz member %s on %s did not start: %v\n%s", member, url, err, p.Stderr())
	}
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Stderr returns what the peer printed on its standard error so far.
func (p *Peer) Stderr() string { return p.cmd.Stderr.(*lockedWriter).String() }

// answer is one line of the peer.
type answer struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
	Type   string          `json:"type"`
}

func (p *Peer) read() (json.RawMessage, error) {
	if !p.out.Scan() {
		if err := p.out.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("tooz member %s exited: %w", p.Member, io.EOF)
	}
	var a answer
	if err := json.Unmarshal(p.out.Bytes(), &a); err != nil {
		return nil, fmt.Errorf("tooz member %s: bad answer %q: %w", p.Member, p.out.Text(), err)
	}
	if !a.OK {
		return nil, &Error{Type: a.Type, Message: a.Error}
	}
	return a.Result, nil
}

// Do sends request op with args (a JSON object's fields; group and member
// ids, lock names and keys are strings) and returns tooz's result, or an
// *Error when tooz raised. The ops are those of peer.py: create_group,
// delete_group, get_groups, join, join_create, leave, members,
// capabilities, update_capabilities, heartbeat, watch_join, watch_leave,
// events, elect, is_leader, stand_down, leader, lock_acquire,
// lock_release, lock_heartbeat, ring, partitioner_join,
// partitioner_refresh, members_for.
func (p *Peer) Do(op string, args map[string]any) (json.RawMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	req := map[string]any{"op": op}
	for k, v := range args {
		req[k] = v
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("tooz member %s: send %s: %w", p.Member, op, err)
	}
	return p.read()
}

// Must is Do that fails the test on an error and decodes the result into
// out (when out is not nil).
func (p *Peer) Must(op string, args map[string]any, out any) {
	p.t.Helper()
	res, err := p.Do(op, args)
	if err != nil {
		p.t.Fatalf("tooz member %s: %s %v: %v\nstderr:\n%s", p.Member, op, args, err, p.Stderr())
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			p.t.Fatalf("tooz member %s: %s: decode %s: %v", p.Member, op, res, err)
		}
	}
}

// Members returns the members of group as tooz lists them.
func (p *Peer) Members(group string) []string {
	p.t.Helper()
	var ms []string
	p.Must("members", map[string]any{"group": group}, &ms)
	return ms
}

// Acquire tries lock name once without blocking and reports whether tooz
// got it.
func (p *Peer) Acquire(name string) bool {
	p.t.Helper()
	var ok bool
	p.Must("lock_acquire", map[string]any{"name": name, "blocking": false}, &ok)
	return ok
}

// AcquireWithin waits up to d for lock name and reports whether tooz got it.
func (p *Peer) AcquireWithin(name string, d time.Duration) bool {
	p.t.Helper()
	var ok bool
	p.Must("lock_acquire", map[string]any{"name": name, "timeout": d.Seconds()}, &ok)
	return ok
}

// Release releases lock name and reports what tooz answered.
func (p *Peer) Release(name string) bool {
	p.t.Helper()
	var ok bool
	p.Must("lock_release", map[string]any{"name": name}, &ok)
	return ok
}

// Stop stops the coordinator gracefully (leaving its groups as tooz's
// stop does) and waits for the process to exit.
func (p *Peer) Stop() {
	p.t.Helper()
	p.mu.Lock()
	_, err := p.in.Write([]byte(`{"op":"stop"}` + "\n"))
	p.mu.Unlock()
	if err == nil {
		select {
		case <-p.exited:
			return
		case <-time.After(30 * time.Second):
			p.t.Errorf("tooz member %s did not stop within 30s; killing it\nstderr:\n%s", p.Member, p.Stderr())
		}
	}
	p.Kill()
}

// Kill ends the peer with SIGKILL, as a crash would: its heartbeats stop,
// nothing is released. It returns once the process is gone.
func (p *Peer) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}
