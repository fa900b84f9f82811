//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/proctest"
	"github.com/baton-go/baton/internal/testutil"
)

// toozScript drives tooz's ipc driver: "hold NAME" takes the lock, says
// "held", waits for a line on stdin, releases (tooz removes the
// semaphore) and says "released"; "try NAME" tries once without blocking
// and says "acquired" (once it released again) or "busy".
const toozScript = `
import sys
from tooz import coordination
mode, name = sys.argv[1], sys.argv[2].encode()
coord = coordination.get_coordinator("ipc://", b"tooz-" + str(id(sys)).encode())
coord.start()
lock = coord.get_lock(name)
if mode == "hold":
    lock.acquire(blocking=True)
    print("held", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
else:
    ok = lock.acquire(blocking=False)
    if ok:
        lock.release()
    print("acquired" if ok else "busy", flush=True)
coord.stop()
`

// toozAvailable reports whether the system interpreter has tooz.
func toozAvailable() bool {
	return exec.Command("/usr/bin/python3", "-c", "import tooz.drivers.ipc").Run() == nil
}

// toozProc is a running tooz script.
type toozProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startTooz(t *testing.T, mode, name string) *toozProc {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c", toozScript, mode, name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &toozProc{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("tooz %s: %s", mode, stderr.String())
		}
	})
	return p
}

func (p *toozProc) expect(want string) {
	p.t.Helper()
	if !p.out.Scan() {
		p.t.Fatalf("tooz said nothing, want %q: %v", want, p.out.Err())
	}
	if got := p.out.Text(); got != want {
		p.t.Fatalf("tooz said %q, want %q", got, want)
	}
}

// toozTry runs "try" and returns what tooz said.
func toozTry(t *testing.T, name string) string {
	t.Helper()
	p := startTooz(t, "try", name)
	if !p.out.Scan() {
		t.Fatalf("tooz try said nothing: %v", p.out.Err())
	}
	return p.out.Text()
}

// In the default namespace a user lock's semaphore is tooz's: a lock held
// by tooz (python3-tooz, ipc://) is busy for baton and the reverse; a
// baton waiter survives tooz's release removing the semaphore; and baton
// takes the lock again after tooz removed it.
func TestToozInterop(t *testing.T) {
	if !toozAvailable() {
		t.Skip("python3-tooz is not installed (scripts/install.sh tooz)")
	}
	name := "interop-" + testutil.Unique()
	b := proctest.Open(t, "ipc://", "baton")
	ctx := t.Context()

	tz := startTooz(t, "hold", name)
	tz.expect("held")
	if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
		t.Fatalf("baton try lock while tooz holds it: acquired=%v, %v", ok, err)
	}
	type res struct {
		g   *backend.Grant
		err error
	}
	ch := make(chan res, 1)
	go func() {
		g, err := b.Lock(ctx, name, backend.LockOptions{})
		ch <- res{g, err}
	}()
	select {
	case r := <-ch:
		t.Fatalf("baton lock returned while tooz holds it: %v %v", r.g, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := io.WriteString(tz.stdin, "release\n"); err != nil {
		t.Fatal(err)
	}
	tz.expect("released")
	var g *backend.Grant
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("baton lock after tooz released (and removed the semaphore): %v", r.err)
		}
		g = r.g
	case <-time.After(20 * time.Second):
		t.Fatal("baton's waiter did not get the lock within 20s of tooz's release")
	}
	if got := toozTry(t, name); got != "busy" {
		t.Fatalf("tooz try while baton holds the lock: %q, want busy", got)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := toozTry(t, name); got != "acquired" {
		t.Fatalf("tooz try after baton released: %q, want acquired", got)
	}
	// tooz's release removed the semaphore baton had created.
	g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("baton try lock after tooz removed the semaphore: acquired=%v, %v", ok, err)
	}
	if got := toozTry(t, name); got != "busy" {
		t.Fatalf("tooz try while baton holds the lock again: %q, want busy", got)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
