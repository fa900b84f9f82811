package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/testutil"
)

// python is the interpreter that sees Debian's tooz (a python3 earlier on
// PATH may not).
const python = "/usr/bin/python3"

// toozHint says how to get tooz.
const toozHint = "the comparison with tooz needs Debian's tooz and its client libraries: " +
	"scripts/install.sh tooz (python3-tooz python3-kazoo python3-redis python3-etcd3 ...)"

// toozLocker is tooz's lock acquire+release loop, run by
// testdata/tooz_lock.py in a Python process of its own, which connects
// once and then runs the loop for as long as each run asks.
type toozLocker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
}

// newToozLocker starts tooz on url, ready to run; it is stopped when tb
// ends.
func newToozLocker(tb testing.TB, url string) *toozLocker {
	tb.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "tooz_lock.py"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(python, "-W", "ignore", script, url, "bench-"+testutil.Unique())
	t := &toozLocker{cmd: cmd, lines: make(chan string, 4), stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = t.stderr
	if t.stdin, err = cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v (%s)", python, err, toozHint)
	}
	go func() {
		defer close(t.done)
		defer close(t.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.lines <- sc.Text()
		}
		_ = cmd.Wait()
	}()
	tb.Cleanup(t.stop)
	line, err := t.next(60 * time.Second)
	if err != nil || line != "ready" {
		tb.Fatalf("tooz on %s did not start: %q %v\n%s", redact(url), line, err, toozHint)
	}
	return t
}

// next returns the next line the script prints, waiting up to d.
func (t *toozLocker) next(d time.Duration) (string, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case line, ok := <-t.lines:
		if !ok {
			return "", fmt.Errorf("tooz exited: %s", strings.TrimSpace(t.stderr.String()))
		}
		if msg, isErr := strings.CutPrefix(line, "error "); isErr {
			return "", fmt.Errorf("tooz: %s", msg)
		}
		return line, nil
	case <-timer.C:
		return "", fmt.Errorf("tooz did not answer within %v", d)
	}
}

// run has the script acquire and release the lock repeatedly for about
// d, and reports how many times and how long it took (measured by the
// script).
func (t *toozLocker) run(d time.Duration) (int, time.Duration, error) {
	if _, err := fmt.Fprintf(t.stdin, "run %.6f\n", d.Seconds()); err != nil {
		return 0, 0, fmt.Errorf("tooz: %w", err)
	}
	line, err := t.next(d + 60*time.Second)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("tooz: unexpected answer %q", line)
	}
	ops, err1 := strconv.Atoi(f[0])
	secs, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("tooz: unexpected answer %q", line)
	}
	return ops, time.Duration(secs * float64(time.Second)), nil
}

// stop asks the script to quit (stopping its coordinator), and kills it
// if it has not exited within 10s.
func (t *toozLocker) stop() {
	_, _ = io.WriteString(t.stdin, "quit\n")
	_ = t.stdin.Close()
	kill := time.AfterFunc(10*time.Second, func() { _ = t.cmd.Process.Kill() })
	defer kill.Stop()
	for range t.lines { // drain, so the reader reaches the end
	}
	<-t.done
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
