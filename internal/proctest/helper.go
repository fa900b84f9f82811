package proctest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// Cross-process tests re-execute the test binary with the helper
// variable set to a mode; TestMain then runs RunHelper instead of the
// tests. The helper reads its parameters from the environment and talks
// to the test over stdin and stdout, one line per message.

func (c Config) helperEnv() string    { return c.EnvPrefix + "_HELPER" }
func (c Config) helperURL() string    { return c.EnvPrefix + "_URL" }
func (c Config) helperMember() string { return c.EnvPrefix + "_MEMBER" }
func (c Config) helperArg() string    { return c.EnvPrefix + "_ARG" }

// RunHelper reports whether this process was started as a helper by
// StartHelper and, if so, runs that helper to its end and returns its
// exit code. Call it first thing in TestMain:
//
//	if code, ok := procs.RunHelper(); ok {
//		os.Exit(code)
//	}
func (c Config) RunHelper() (code int, ok bool) {
	mode := os.Getenv(c.helperEnv())
	if mode == "" {
		return 0, false
	}
	return c.runHelper(mode), true
}

// runHelper runs one helper mode and returns the exit code.
func (c Config) runHelper(mode string) int {
	ctx := context.Background()
	b, err := backend.Open(ctx, os.Getenv(c.helperURL()), backend.WithMemberID(os.Getenv(c.helperMember())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	defer b.Close(ctx)
	in := bufio.NewScanner(os.Stdin)
	arg := os.Getenv(c.helperArg())
	switch mode {
	case "hold":
		err = helperHold(ctx, b, in)
	case "hold-shared":
		err = helperHoldShared(ctx, b, in)
	case "count":
		err = helperCount(ctx, b, arg)
	case "pingpong":
		err = helperPingPong(ctx, b, in)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, mode+":", err)
		return 3
	}
	return 0
}

// helperHold joins group "g" (creating it), takes lock "l" and campaigns
// in "e", prints "ready TOKEN", then waits for stdin to close.
func helperHold(ctx context.Context, b *backend.Backend, in *bufio.Scanner) error {
	if err := b.JoinCreate(ctx, "g", []byte("child")); err != nil {
		return err
	}
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		return fmt.Errorf("try lock: acquired=%v: %v", ok, err)
	}
	if _, ok, err := b.TryCampaign(ctx, "e", backend.LockOptions{}); err != nil || !ok {
		return fmt.Errorf("campaign: elected=%v: %v", ok, err)
	}
	fmt.Printf("ready %d\n", g.Token())
	for in.Scan() {
	}
	return nil
}

// helperHoldShared takes lock "l" shared, prints "ready TOKEN", then waits
// for stdin to close.
func helperHoldShared(ctx context.Context, b *backend.Backend, in *bufio.Scanner) error {
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{Shared: true})
	if err != nil || !ok {
		return fmt.Errorf("try lock shared: acquired=%v: %v", ok, err)
	}
	fmt.Printf("ready %d\n", g.Token())
	for in.Scan() {
	}
	return nil
}

// helperCount increments the counter in the file named by arg ("PATH N":
// N times) under lock "l". The file holds "COUNT TOKEN": every increment
// checks that its fencing token is above the last one written, by any
// process.
func helperCount(ctx context.Context, b *backend.Backend, arg string) error {
	path, nStr, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(nStr)
	if err != nil {
		return err
	}
	for range n {
		g, err := b.Lock(ctx, "l", backend.LockOptions{})
		if err != nil {
			return err
		}
		var count int
		var last uint64
		if data, err := os.ReadFile(path); err == nil {
			if _, err := fmt.Sscanf(string(data), "%d %d", &count, &last); err != nil {
				return fmt.Errorf("counter file %q: %w", data, err)
			}
		}
		if g.Token() <= last {
			return fmt.Errorf("token %d is not above the last token %d", g.Token(), last)
		}
		if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d", count+1, g.Token()), 0o600); err != nil {
			return err
		}
		if err := g.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

// helperPingPong repeatedly waits for a "go" line, prints "waiting",
// blocks in Lock("l"), prints "acquired UNIXNANO" at once and releases.
func helperPingPong(ctx context.Context, b *backend.Backend, in *bufio.Scanner) error {
	for in.Scan() {
		fmt.Println("waiting")
		g, err := b.Lock(ctx, "l", backend.LockOptions{})
		if err != nil {
			return err
		}
		fmt.Printf("acquired %d\n", time.Now().UnixNano())
		if err := g.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Helper is a running helper process. Its methods are for the test's
// goroutine only; they fail the test through the TB it was started with.
type Helper struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	done  chan struct{}
	err   error // Wait's result, once done is closed
}

// StartHelper starts the test binary as a helper in mode ("hold",
// "hold-shared", "count" with arg "PATH N", or "pingpong"), member member
// of url. It does not wait for the helper to be ready (Expect "ready"
// does). When the test ends, a helper still running is stopped as
// c.StopGrace says.
func (c Config) StartHelper(t testing.TB, mode, url, member, arg string) *Helper {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), c.helperEnv()+"="+mode, c.helperURL()+"="+url, c.helperMember()+"="+member, c.helperArg()+"="+arg)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &Helper{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout), done: make(chan struct{})}
	if c.StopGrace <= 0 {
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = stdin.Close()
			h.Wait()
		})
		return h
	}
	grace := c.StopGrace
	t.Cleanup(func() {
		// A helper still running is asked to finish (stdin closes) and
		// given time to Close its Backend (so that, on ipc://, the
		// namespace's last connection removes its IPC objects); then it
		// is killed.
		_ = stdin.Close()
		exited := make(chan struct{})
		go func() {
			_ = h.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return h
}

// Wait waits for the helper to exit (once) and returns its exit error.
func (h *Helper) Wait() error {
	select {
	case <-h.done:
	default:
		h.err = h.cmd.Wait()
		close(h.done)
	}
	return h.err
}

// Line reads the helper's next output line, blocking until it comes; it
// fails the test when the helper ended instead.
func (h *Helper) Line() string {
	h.t.Helper()
	if !h.out.Scan() {
		h.t.Fatalf("helper %s ended without output: %v", h.cmd.Env[len(h.cmd.Env)-4], errors.Join(h.out.Err(), h.Wait()))
	}
	return h.out.Text()
}

// Expect reads a line and checks its first field; it returns the line's
// fields.
func (h *Helper) Expect(word string) []string {
	h.t.Helper()
	l := h.Line()
	f := strings.Fields(l)
	if len(f) == 0 || f[0] != word {
		h.t.Fatalf("helper said %q, want %q", l, word)
	}
	return f
}

// Send writes one line to the helper.
func (h *Helper) Send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		h.t.Fatal(err)
	}
}

// CloseStdin closes the helper's stdin, which asks a holding or
// ping-ponging helper to finish. Closing it twice is not an error.
func (h *Helper) CloseStdin() error {
	if err := h.stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (h *Helper) Kill() {
	h.t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		h.t.Fatal(err)
	}
	_ = h.Wait()
}
