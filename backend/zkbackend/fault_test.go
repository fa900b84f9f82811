package zkbackend

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// servers runs the server script (BATON_SERVERS) with args.
func servers(t *testing.T, args ...string) {
	t.Helper()
	script := os.Getenv("BATON_SERVERS")
	if script == "" {
		t.Fatalf("BATON_SERVERS is not set: start the servers with `eval \"$(scripts/servers.sh start zookeeper zookeeper-ensemble)\"` from the repository root")
	}
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
}

// waitCtx waits until ctx is done, failing after d.
func waitCtx(t *testing.T, ctx context.Context, d time.Duration, what string) time.Time {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return time.Now()
	case <-timer.C:
		t.Fatalf("%s: not within %v", what, d)
	}
	return time.Time{}
}

// wantLostGrant waits until g is put in doubt and checks the cause.
func wantLostGrant(t *testing.T, g *backend.Grant, d time.Duration) time.Time {
	t.Helper()
	at := waitCtx(t, g.Context(), d, "grant put in doubt")
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrLost) {
		t.Fatalf("grant cause %v, want ErrLost", cause)
	}
	return at
}

// lockAsync takes lock name through b in a goroutine; the channel
// delivers the grant (or error) and the instant it returned.
type lockResult struct {
	g   *backend.Grant
	err error
	at  time.Time
}

func lockAsync(t *testing.T, ctx context.Context, b *backend.Backend, name string) <-chan lockResult {
	ch := make(chan lockResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g, err := b.Lock(ctx, name, backend.LockOptions{})
		ch <- lockResult{g: g, err: err, at: time.Now()}
	}()
	t.Cleanup(func() { <-done })
	return ch
}

func awaitLock(t *testing.T, ch <-chan lockResult, d time.Duration) lockResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("lock: %v", r.err)
		}
		return r
	case <-time.After(d):
		t.Fatalf("lock not granted within %v", d)
	}
	return lockResult{}
}

// A server restart is a disconnection: the holder's grant is put in
// doubt, both clients reconnect within the session timeout and carry on
// with their sessions (membership kept), and the waiter gets the lock.
func TestFaultServerRestart(t *testing.T) {
	u := isolate(t, standaloneURL(t))
	log := backend.WithLogger(zaptest.NewLogger(t))
	a, b := openBackend(t, u, "holder", log), openBackend(t, u, "waiter", log)
	ctx := testCtx(t, time.Minute)
	if err := a.JoinCreate(ctx, "g", []byte("a")); err != nil {
		t.Fatal(err)
	}
	g, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v, %v", ok, err)
	}
	waiter := lockAsync(t, ctx, b, "l")
	servers(t, "restart", "zookeeper")
	wantLostGrant(t, g, 30*time.Second)
	r := awaitLock(t, waiter, 30*time.Second)
	if r.g.Token() <= g.Token() {
		t.Fatalf("token %d after the restart is not above %d", r.g.Token(), g.Token())
	}
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("sessions ended by a restart: %v, %v", a.Err(), b.Err())
	}
	ms, err := b.Members(ctx, "g")
	if err != nil || len(ms) != 1 || ms[0].ID != "holder" {
		t.Fatalf("members after the restart: %v, %v; want the holder", ms, err)
	}
	g2, ok, err := a.TryLock(ctx, "other", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock after the restart: %v, %v", ok, err)
	}
	if err := g2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Stopping the ensemble member a client is connected to is a
// disconnection too: the client moves to another member and keeps its
// session; only the grant held across the gap is put in doubt.
func TestFaultEnsembleMemberStopped(t *testing.T) {
	raw := ensembleURL(t)
	u := isolate(t, raw)
	a, b := openBackend(t, u, "holder"), openBackend(t, u, "waiter")
	ctx := testCtx(t, time.Minute)
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	g, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v, %v", ok, err)
	}
	ca := connOf(t, a)
	server := ca.zk.Server()
	member := memberIndex(t, raw, server)
	t.Cleanup(func() { servers(t, "start-one", "zookeeper-ensemble:"+member) })
	servers(t, "stop-one", "zookeeper-ensemble:"+member)
	wantLostGrant(t, g, 30*time.Second)
	eventually(t, 30*time.Second, "reconnection to another member", func() bool {
		return ca.sess.connected() && ca.zk.Server() != server
	})
	if a.Err() != nil {
		t.Fatalf("session ended by the loss of one member: %v", a.Err())
	}
	r := awaitLock(t, lockAsync(t, ctx, b, "l"), 30*time.Second)
	if r.g.Token() <= g.Token() {
		t.Fatalf("token %d is not above %d", r.g.Token(), g.Token())
	}
	ms, err := b.Members(ctx, "g")
	if err != nil || len(ms) != 1 || ms[0].ID != "holder" {
		t.Fatalf("members after the loss of one member: %v, %v; want the holder", ms, err)
	}
	if err := r.g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// memberIndex returns the servers.sh member number (1-based position in
// the ensemble URL) of server.
func memberIndex(t *testing.T, rawURL, server string) string {
	t.Helper()
	hosts, _, _ := strings.Cut(strings.TrimPrefix(rawURL, "zookeeper://"), "?")
	for i, h := range strings.Split(strings.TrimSuffix(hosts, "/"), ",") {
		if h == server {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("server %s is not in %s", server, rawURL)
	return ""
}

// The holder is cut off from the server (a black hole: no reset, no
// error, just silence). Its grant must be put in doubt before the server
// can expire its session and hand the lock to the waiter.
func TestFaultPartitionedHolder(t *testing.T) {
	raw := standaloneURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(raw, "zookeeper://"))
	ns := randomName(t)
	opts := url2("namespace", "baton-test/"+ns, "timeout", "2")
	a := openBackend(t, testScheme+"://"+p.Addr()+"?"+opts, "holder")
	b := openBackend(t, testScheme+"://"+strings.TrimPrefix(raw, "zookeeper://")+"?"+opts, "waiter")
	ctx := testCtx(t, time.Minute)
	g, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v, %v", ok, err)
	}
	waiter := lockAsync(t, ctx, b, "l")
	cancelled := make(chan time.Time, 1)
	go func() {
		<-g.Context().Done()
		cancelled <- time.Now()
	}()
	cutAt := time.Now()
	p.Blackhole(true)
	r := awaitLock(t, waiter, 30*time.Second)
	var cancelAt time.Time
	select {
	case cancelAt = <-cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the partitioned holder's grant was never put in doubt")
	}
	if !cancelAt.Before(r.at) {
		t.Fatalf("holder's grant cancelled at +%v, waiter granted at +%v: two holders", cancelAt.Sub(cutAt), r.at.Sub(cutAt))
	}
	t.Logf("cut at 0, holder's grant cancelled at +%v, waiter granted at +%v (session timeout %v)",
		cancelAt.Sub(cutAt), r.at.Sub(cutAt), a.Session().TTL)
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrLost) {
		t.Fatalf("grant cause %v, want ErrLost", cause)
	}
	if a.Err() != nil {
		t.Fatalf("partitioned member ended before it could learn its fate: %v", a.Err())
	}
	p.Heal() // the member reconnects and learns that its session expired
	waitCtx(t, a.Context(), 30*time.Second, "the partitioned member's session reported lost")
	if !errors.Is(a.Err(), backend.ErrLost) {
		t.Fatalf("partitioned member: Err %v, want ErrLost", a.Err())
	}
	if err := r.g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A partition shorter than the session timeout suspends the session (the
// grant is put in doubt) and resumes it: the member carries on, and its
// group watch re-lists the group (a resync).
func TestFaultBriefPartitionResumes(t *testing.T) {
	raw := standaloneURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(raw, "zookeeper://"))
	a := openBackend(t, testScheme+"://"+p.Addr()+"?"+url2("namespace", "baton-test/"+randomName(t), "timeout", "4"), "m")
	ctx := testCtx(t, time.Minute)
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	g, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v, %v", ok, err)
	}
	w, err := a.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := connOf(t, a)
	sid := c.sess.sessionID()
	p.Blackhole(true)
	wantLostGrant(t, g, 10*time.Second)
	p.Heal()
	eventually(t, 10*time.Second, "session resumed", c.sess.connected)
	if a.Err() != nil || c.sess.sessionID() != sid {
		t.Fatalf("session after a brief partition: err %v, id %x (was %x)", a.Err(), c.sess.sessionID(), sid)
	}
	select {
	case ev := <-w.Events():
		if ev.Type != backend.EventResync || len(ev.Members) != 1 {
			t.Fatalf("watch event after the reconnection: %v (members %v), want a resync listing the member", ev, ev.Members)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no resync from the watch after the reconnection: %v", w.Err())
	}
	ms, err := a.Members(ctx, "g")
	if err != nil || len(ms) != 1 {
		t.Fatalf("members after a brief partition: %v, %v", ms, err)
	}
	g2, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock after a brief partition (the doubted grant is released in the background): %v, %v", ok, err)
	}
	if g2.Token() <= g.Token() {
		t.Fatalf("token %d is not above %d", g2.Token(), g.Token())
	}
}

// Open fails with ErrUnavailable, within the timeout, when no server
// answers.
func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	start := time.Now()
	_, err = backend.Open(context.Background(), "zookeeper://"+addr+"?timeout=0.5")
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("open of a closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("open of a closed port took %v", d)
	}
}

// url2 encodes key, value pairs as a query.
func url2(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[i] + "=" + kv[i+1])
	}
	return b.String()
}
