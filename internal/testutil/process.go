package testutil

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HelperEnv names the environment variable that turns a re-executed test
// binary into a helper process.
const HelperEnv = "BATON_TEST_HELPER"

// Event is one line a helper process prints: what happened, where and
// when (unix nanoseconds of the helper's clock; same host as the test).
type Event struct {
	T     int64  `json:"t"`
	Proc  string `json:"p"`
	Kind  string `json:"ev"`
	Token uint64 `json:"token,omitempty"`
	Parts []int  `json:"parts,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Emitter prints Events as JSON lines on stdout; safe for concurrent use.
type Emitter struct {
	mu   sync.Mutex
	proc string
	enc  *json.Encoder
}

// NewEmitter returns an Emitter for helper process proc.
func NewEmitter(proc string) *Emitter {
	return &Emitter{proc: proc, enc: json.NewEncoder(os.Stdout)}
}

// Emit prints e stamped with the time and the process name.
func (e *Emitter) Emit(ev Event) {
	ev.T, ev.Proc = time.Now().UnixNano(), e.proc
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev)
}

// Child is a running helper process.
type Child struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartChild re-executes the test binary as helper process name, running
// the test named by run with env added, and forwards its Events to out.
// The child is killed when the test ends.
func StartChild(t testing.TB, name, run string, env []string, out chan<- Event) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), HelperEnv+"="+name), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind != "" {
				out <- ev
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() { c.Kill() })
	return c
}

// Kill sends SIGKILL and waits for the child to exit; it returns the
// instant the signal was sent.
func (c *Child) Kill() time.Time {
	at := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	return at
}

// Stop sends SIGTERM and waits up to d for a graceful exit, then kills.
func (c *Child) Stop(d time.Duration) time.Time {
	at := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(d):
		c.Kill()
	}
	return at
}

// Pid returns the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }
