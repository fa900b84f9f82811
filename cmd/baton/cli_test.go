package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// batonBin is the binary under test, built once by TestMain.
var batonBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	batonBin = filepath.Join(dir, "baton")
	if out, err := exec.Command("go", "build", "-o", batonBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build baton: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a child's output goroutine and
// the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a baton process running in the background.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

func command(url string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(batonBin, args...)
	cmd.Env = append(os.Environ(), "BATON_URL="+url)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// baton runs the binary to completion and returns its output and status.
func baton(t *testing.T, url string, args ...string) (string, string, int) {
	t.Helper()
	cmd := command(url, nil, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("baton %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// start runs the binary in the background; the test's cleanup kills it.
func start(t *testing.T, url string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: command(url, env, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its status.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("baton %v still running after %v; stderr:\n%s", p.cmd.Args[1:], within, p.stderr)
		return -1
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func fileURL(t *testing.T) (string, string) {
	dir := t.TempDir()
	return "file://" + dir, dir
}

func TestHelpAndUsage(t *testing.T) {
	out, _, code := baton(t, "", "--help")
	if code != 0 || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "elect") {
		t.Fatalf("baton --help: exit %d\n%s", code, out)
	}
	for _, verb := range []string{"ping", "groups", "members", "leader", "holder", "watch", "lock", "elect", "url", "docs", "drivers"} {
		if out, _, code := baton(t, "", verb, "--help"); code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("baton %s --help: exit %d\n%s", verb, code, out)
		}
	}
	if _, _, code := baton(t, "", "nosuchverb"); code != exitUsage {
		t.Errorf("unknown verb: exit %d, want %d", code, exitUsage)
	}
	if _, errOut, code := baton(t, "", "groups"); code != exitUsage || !strings.Contains(errOut, "BATON_URL") {
		t.Errorf("no URL: exit %d, want %d: %s", code, exitUsage, errOut)
	}
	if _, _, code := baton(t, "mem://", "lock", "L", "true"); code != exitUsage {
		t.Errorf("lock without --: exit %d, want %d", code, exitUsage)
	}
}

func TestExplainDocsDrivers(t *testing.T) {
	out, _, code := baton(t, "", "url", "explain", "redis://127.0.0.1:6379/?timeout=5")
	cfg, err := backend.ParseURL("redis://127.0.0.1:6379/?timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != backend.Explain(cfg) {
		t.Fatalf("url explain: exit %d\n%s", code, out)
	}
	if _, _, code := baton(t, "", "url", "explain", "nosuch://x"); code != 2 {
		t.Errorf("url explain of a bad URL: exit %d, want 2 (as Open refuses it)", code)
	}
	var want bytes.Buffer
	if err := backend.WriteDriverDocs(&want); err != nil {
		t.Fatal(err)
	}
	if out, _, code := baton(t, "", "docs"); code != 0 || out != want.String() {
		t.Errorf("docs: exit %d, output differs from WriteDriverDocs", code)
	}
	if out, _, code := baton(t, "", "drivers"); code != 0 || !strings.Contains(out, "file") {
		t.Errorf("drivers: exit %d\n%s", code, out)
	}
}

func TestPingUnreachable(t *testing.T) {
	_, errOut, code := baton(t, "redis://127.0.0.1:1/", "--connect-timeout", "3s", "ping")
	if code != exitError || !strings.Contains(errOut, "unavailable") {
		t.Fatalf("ping of a closed port: exit %d, want %d with the cause:\n%s", code, exitError, errOut)
	}
}

func TestInspectVerbs(t *testing.T) {
	url, _ := fileURL(t)
	out, _, code := baton(t, url, "ping")
	if code != 0 || !strings.Contains(out, "driver:") || !strings.Contains(out, "characteristics:") {
		t.Fatalf("ping: exit %d\n%s", code, out)
	}
	if _, _, code := baton(t, url, "leader", "g"); code != exitNotFound {
		t.Errorf("leader of a missing group: exit %d, want %d", code, exitNotFound)
	}
	el := start(t, url, nil, "--member", "m1", "elect", "--capabilities", `{"zone":"a","slots":4}`, "g", "--", "sleep", "600")
	eventually(t, 20*time.Second, "m1 to lead g", func() bool {
		out, _, code := baton(t, url, "leader", "g")
		return code == 0 && strings.HasPrefix(out, "m1\t")
	})
	out, _, _ = baton(t, url, "groups")
	if strings.TrimSpace(out) != "g" {
		t.Errorf("groups: %q", out)
	}
	out, _, code = baton(t, url, "--json", "members", "g")
	if code != 0 || !strings.Contains(out, `"capabilities":{"slots":4,"zone":"a"}`) || !strings.Contains(out, `"id":"m1"`) {
		t.Errorf("members --json: exit %d\n%s", code, out)
	}
	if out, _, code = baton(t, url, "--json", "leader", "g"); code != 0 || !strings.Contains(out, `"member":"m1"`) {
		t.Errorf("leader --json: exit %d\n%s", code, out)
	}
	if _, _, code = baton(t, url, "holder", "nolock"); code != exitNotFound {
		t.Errorf("holder of a free lock: exit %d, want %d", code, exitNotFound)
	}
	// A second candidate with --try fails at once.
	if _, _, code = baton(t, url, "elect", "--try", "g", "--", "true"); code != exitNotAcquired {
		t.Errorf("elect --try on a led group: exit %d, want %d", code, exitNotAcquired)
	}
	// SIGTERM to baton is forwarded to CMD (sleep dies of it: 128+15), then
	// baton resigns and leaves.
	_ = el.cmd.Process.Signal(syscall.SIGTERM)
	if code := el.wait(t, 30*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("elect after SIGTERM: exit %d, want %d; stderr:\n%s", code, 128+int(syscall.SIGTERM), el.stderr)
	}
	if _, _, code = baton(t, url, "leader", "g"); code != exitNotFound {
		t.Errorf("leader after the elect resigned: exit %d, want %d", code, exitNotFound)
	}
}

func TestLockRunsCommand(t *testing.T) {
	url, _ := fileURL(t)
	out, _, code := baton(t, url, "lock", "L", "--", "sh", "-c", `echo "$BATON_LOCK $BATON_FENCING_TOKEN"; exit 7`)
	var name string
	var token uint64
	if _, err := fmt.Sscanf(out, "%s %d", &name, &token); err != nil || name != "L" || token == 0 || code != 7 {
		t.Fatalf("lock: exit %d, output %q", code, out)
	}
	if _, _, code := baton(t, url, "lock", "L", "--", "/nonexistent/cmd"); code != exitNoCommand {
		t.Errorf("lock with a missing CMD: exit %d, want %d", code, exitNoCommand)
	}
	holder := start(t, url, nil, "--member", "h", "lock", "L", "--", "sleep", "600")
	eventually(t, 20*time.Second, "h to hold L", func() bool {
		out, _, code := baton(t, url, "holder", "L")
		return code == 0 && strings.HasPrefix(out, "h\t")
	})
	if _, errOut, code := baton(t, url, "lock", "--try", "L", "--", "true"); code != exitNotAcquired || !strings.Contains(errOut, "held by h") {
		t.Errorf("lock --try on a held lock: exit %d, want %d: %s", code, exitNotAcquired, errOut)
	}
	if _, _, code := baton(t, url, "lock", "--timeout", "300ms", "L", "--", "true"); code != exitNotAcquired {
		t.Errorf("lock --timeout on a held lock: exit %d, want %d", code, exitNotAcquired)
	}
	_ = holder.cmd.Process.Signal(syscall.SIGINT)
	if code := holder.wait(t, 30*time.Second); code != 128+int(syscall.SIGINT) {
		t.Errorf("lock after SIGINT: exit %d, want %d", code, 128+int(syscall.SIGINT))
	}
	if _, _, code := baton(t, url, "holder", "L"); code != exitNotFound {
		t.Errorf("holder after release: exit %d, want %d", code, exitNotFound)
	}
}

func TestWatchStreams(t *testing.T) {
	url, _ := fileURL(t)
	if _, _, code := baton(t, url, "elect", "g", "--", "true"); code != 0 { // creates g
		t.Fatalf("elect: exit %d", code)
	}
	w := start(t, url, nil, "--json", "watch", "g")
	eventually(t, 20*time.Second, "the watch to report no leader", func() bool {
		return strings.Contains(w.stdout.String(), `"event":"leader","group":"g","member":null`)
	})
	el := start(t, url, nil, "--member", "m9", "elect", "g", "--", "sleep", "600")
	eventually(t, 20*time.Second, "the watch to report m9 joined and leading", func() bool {
		s := w.stdout.String()
		return strings.Contains(s, `"event":"joined"`) && strings.Contains(s, `"event":"leader","group":"g","member":"m9"`)
	})
	_ = el.cmd.Process.Signal(syscall.SIGTERM)
	el.wait(t, 30*time.Second)
	eventually(t, 20*time.Second, "the watch to report m9 left", func() bool {
		return strings.Contains(w.stdout.String(), `"event":"left"`)
	})
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	if code := w.wait(t, 30*time.Second); code != 0 {
		t.Errorf("watch after SIGINT: exit %d; stderr:\n%s", code, w.stderr)
	}
}

// electScript is the CMD of the two-process election tests: it records
// any earlier CMD still alive when it starts ("overlap"), then its own pid
// and start, then sleeps.
const electScript = `for p in $(cat "$PIDS" 2>/dev/null); do
  st=$(grep '^State:' /proc/$p/status 2>/dev/null)
  case "$st" in ""|*Z*) ;; *) echo "overlap $p $st" >> "$LOG" ;; esac
done
echo $$ >> "$PIDS"
echo "start $BATON_MEMBER $BATON_FENCING_TOKEN" >> "$LOG"
exec sleep 600`

// testElectKill9 runs two `baton elect` processes, kills the leader's
// baton with SIGKILL and checks that the other's CMD starts only after the
// first CMD is gone. It returns how long the takeover took.
func testElectKill9(t *testing.T, url string, extra ...string) time.Duration {
	dir := t.TempDir()
	log, pids := filepath.Join(dir, "log"), filepath.Join(dir, "pids")
	env := []string{"LOG=" + log, "PIDS=" + pids}
	args := func(member string) []string {
		a := append([]string{"--member", member, "elect"}, extra...)
		return append(a, "g", "--", "sh", "-c", electScript)
	}
	a := start(t, url, env, args("a")...)
	eventually(t, 30*time.Second, "a's CMD to start", func() bool { return strings.Contains(readFile(log), "start a ") })
	b := start(t, url, env, args("b")...)
	eventually(t, 30*time.Second, "b to join g", func() bool {
		out, _, _ := baton(t, url, "members", "g")
		return strings.Contains(out, "\nb ")
	})
	if strings.Contains(readFile(log), "start b") {
		t.Fatalf("b's CMD started while a leads:\n%s", readFile(log))
	}
	killed := time.Now()
	_ = a.cmd.Process.Kill()
	a.wait(t, 10*time.Second)
	eventually(t, 60*time.Second, "b's CMD to start", func() bool { return strings.Contains(readFile(log), "start b ") })
	took := time.Since(killed)
	if strings.Contains(readFile(log), "overlap") {
		t.Fatalf("b's CMD started while a's CMD still ran:\n%s", readFile(log))
	}
	var ta, tb uint64
	var ma, mb string
	lines := strings.Split(strings.TrimSpace(readFile(log)), "\n")
	fmt.Sscanf(lines[0], "start %s %d", &ma, &ta)
	fmt.Sscanf(lines[1], "start %s %d", &mb, &tb)
	if ma != "a" || mb != "b" || tb <= ta {
		t.Errorf("terms: %q then %q: want a then b with a greater token", lines[0], lines[1])
	}
	t.Logf("leader's baton killed -9: b's CMD started %v later (a's CMD was gone); tokens %d -> %d", took, ta, tb)
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	b.wait(t, 30*time.Second)
	return took
}

func TestElectTwoProcessesKill9File(t *testing.T) {
	url, _ := fileURL(t)
	testElectKill9(t, url)
}

// testLockLostKill holds a lock with a CMD that ignores SIGTERM, makes
// the grant be lost with breakIt, and checks that CMD is killed after the
// grace and baton exits 5.
func testLockLostKill(t *testing.T, url string, breakIt func()) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	const grace = time.Second
	p := start(t, url, []string{"LOG=" + log}, "lock", "--grace", grace.String(), "L", "--",
		"sh", "-c", `trap "" TERM; echo "pid $$" >> "$LOG"; while :; do sleep 0.1; done`)
	eventually(t, 30*time.Second, "CMD to start", func() bool { return strings.Contains(readFile(log), "pid ") })
	var pid int
	fmt.Sscanf(readFile(log), "pid %d", &pid)
	broken := time.Now()
	breakIt()
	code := p.wait(t, 60*time.Second)
	if code != exitLost {
		t.Fatalf("lock after loss: exit %d, want %d; stderr:\n%s", code, exitLost, p.stderr)
	}
	took := time.Since(broken)
	if took < grace {
		t.Errorf("baton exited %v after the loss, before the %v grace", took, grace)
	}
	if !strings.Contains(p.stderr.String(), "SIGKILL") {
		t.Errorf("stderr does not report the SIGKILL:\n%s", p.stderr)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		st := readFile(fmt.Sprintf("/proc/%d/status", pid))
		if !strings.Contains(st, "zombie") && st != "" {
			t.Errorf("CMD %d still runs after baton exited", pid)
		}
	}
	t.Logf("lock lost: CMD ignoring SIGTERM killed, baton exited 5, %v after the loss (grace %v)", took, grace)
}

func TestLockLostGraceKillFile(t *testing.T) {
	url, dir := fileURL(t)
	testLockLostKill(t, url, func() {
		// Removing the session file ends the session (as an administrator
		// would): the connection notices on its next check and loses its
		// grants.
		files, _ := filepath.Glob(filepath.Join(dir, "baton", "sessions", "*"))
		if len(files) == 0 {
			t.Fatal("no session file")
		}
		for _, f := range files {
			_ = os.Remove(f)
		}
	})
}

func redisURL(t *testing.T) string {
	u := os.Getenv("BATON_TEST_REDIS_URL")
	if u == "" {
		t.Skip("BATON_TEST_REDIS_URL not set (scripts/servers.sh start redis)")
	}
	return u
}

// uniq prefixes names so that runs against a shared server never meet.
func uniqURL(t *testing.T, base string) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%snamespace=clitest%d", base, sep, time.Now().UnixNano())
}

func TestElectTwoProcessesKill9Redis(t *testing.T) {
	url := uniqURL(t, redisURL(t))
	took := testElectKill9(t, url, "--ttl", "3s")
	if took > 30*time.Second {
		t.Errorf("takeover took %v", took)
	}
}

func TestLockLostGraceKillRedis(t *testing.T) {
	url := uniqURL(t, redisURL(t))
	testLockLostKill(t, url, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := backend.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		if ok, err := b.BreakLock(ctx, "L"); err != nil || !ok {
			t.Fatalf("BreakLock: %v %v", ok, err)
		}
	})
}

// explain is a dry run of Open's validation, the drivers' own checks
// included: every URL below is refused by Open before it contacts a
// server (the hosts are dead ports, so an Open that got as far as dialing
// would fail differently), and explain refuses it with the same error
// and exit status 2.
func TestExplainRunsDriverChecks(t *testing.T) {
	dead := "127.0.0.1:" + testutil.DeadPort(t)
	urls := []string{
		"nosuch://" + dead,
		"redis://" + dead + "?timeout=nope",
		"rediss://" + dead + "?ssl=false",
		"redis://" + dead + "?encoding=latin1",
		"redis://" + dead + "?ssl=true&ssl_ca_certs=/nonexistent/ca.pem",
		"mem://x?lock_ttl=2s",
		"zookeeper://" + dead + "/path",
		"zookeeper://" + dead + "?timeout=1000000h",
		"etcd3://" + dead + "/path",
		"etcd3://" + dead + "?ca_cert=/nonexistent/ca.pem",
		"etcd3+http://" + dead + "/path",
		"etcd://" + dead + "/path",
		"postgresql://" + dead + "/db?namespace=pg_reserved",
		"mysql://" + dead,
		"consul://user@" + dead,
		"file://host/dir",
		"ipc://host",
		"memcached://" + dead + "?namespace=bad%20name",
	}
	for _, u := range urls {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		b, openErr := backend.Open(ctx, u)
		cancel()
		if openErr == nil {
			_ = b.Close(context.Background())
			t.Errorf("Open(%s) succeeded", u)
			continue
		}
		if !errors.Is(openErr, backend.ErrInvalidArgument) {
			t.Errorf("Open(%s): %v, want ErrInvalidArgument (refused before any round trip)", u, openErr)
			continue
		}
		_, errOut, code := baton(t, "", "url", "explain", u)
		if code != exitUsage {
			t.Errorf("url explain %s: exit %d, want %d (Open refuses it: %v)", u, code, exitUsage, openErr)
			continue
		}
		if want := "baton: " + openErr.Error() + "\n"; errOut != want {
			t.Errorf("url explain %s:\n got %q\nwant %q", u, errOut, want)
		}
	}
}
