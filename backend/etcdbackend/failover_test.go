package etcdbackend

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
)

// churn is a set of members taking and releasing one lock in a loop, as
// a workload to measure a fault's effect: how long nobody held the lock,
// whether a session was lost, whether a token went backwards.
type churn struct {
	t       *testing.T
	members []*backend.Backend
	stop    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	grants []held

	// lostBeforeRepair counts the sessions already lost when a round's
	// repair began, i.e. lost during the fault itself.
	lostBeforeRepair int
}

// held is one grant of the churn: when it was granted and released.
type held struct {
	token             uint64
	granted, released time.Time
	lostBeforeRelease bool
}

// startChurn opens n members on url looping on lock "churn".
func startChurn(t *testing.T, url string, n int) *churn {
	t.Helper()
	c := &churn{t: t, stop: make(chan struct{})}
	for i := range n {
		c.members = append(c.members, openBackend(t, url, "m"+string(rune('0'+i))))
	}
	for _, m := range c.members {
		c.wg.Add(1)
		go c.loop(m)
	}
	t.Cleanup(c.close)
	return c
}

func (c *churn) loop(m *backend.Backend) {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-m.Done():
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g, err := m.Lock(ctx, "churn", backend.LockOptions{})
		cancel()
		if err != nil {
			c.t.Logf("%s %s lock: %v", time.Now().Format("15:04:05.000"), m.MemberID(), err)
			continue
		}
		h := held{token: g.Token(), granted: time.Now()}
		time.Sleep(5 * time.Millisecond)
		lost := g.Context().Err() != nil
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		err = g.Release(ctx)
		cancel()
		h.released = time.Now()
		if err != nil {
			c.t.Logf("%s %s release: %v", time.Now().Format("15:04:05.000"), m.MemberID(), err)
		}
		h.lostBeforeRelease = lost || errors.Is(err, backend.ErrNotHeld)
		c.mu.Lock()
		c.grants = append(c.grants, h)
		c.mu.Unlock()
	}
}

func (c *churn) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// count returns how many grants were released so far.
func (c *churn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.grants)
}

// await waits for n more grants, failing after d.
func (c *churn) await(n int, d time.Duration, what string) {
	c.t.Helper()
	want := c.count() + n
	eventually(c.t, d, what, func() bool { return c.count() >= want })
}

// idleSince returns the longest time without a holder among grants
// granted after from: the time between a release and the next grant.
func (c *churn) idleSince(from time.Time) time.Duration {
	c.mu.Lock()
	gs := append([]held(nil), c.grants...)
	c.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].granted.Before(gs[j].granted) })
	var idle time.Duration
	for i := 1; i < len(gs); i++ {
		if gs[i].granted.After(from) {
			idle = max(idle, gs[i].granted.Sub(gs[i-1].released))
		}
	}
	return idle
}

// result reports sessions lost, tokens not above the previous grant's,
// and grants lost before their release.
func (c *churn) result() (sessionsLost, backwards, grantsLost int) {
	c.mu.Lock()
	gs := append([]held(nil), c.grants...)
	c.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].granted.Before(gs[j].granted) })
	for i, g := range gs {
		if i > 0 && g.token <= gs[i-1].token {
			backwards++
		}
		if g.lostBeforeRelease {
			grantsLost++
		}
	}
	return c.sessionsLost(), backwards, grantsLost
}

// sessionsLost counts the members whose session is gone.
func (c *churn) sessionsLost() int {
	n := 0
	for _, m := range c.members {
		if m.Err() != nil {
			n++
		}
	}
	return n
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

// faultRounds runs rounds of fault (then repair) under a churn of three
// members on a private 3-member cluster with a 3 s lease, and returns
// the longest time without a holder of each round.
func faultRounds(t *testing.T, rounds int, fault, repair func(srv *privateServer)) ([]time.Duration, *churn) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCD_CLUSTER_URL"), "timeout=3")
	c := startChurn(t, url, 3)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		admin, ks := newAdminClient(t, url), newKeyspace(namespaceOf(t, url))
		defer admin.Close()
		resp, err := admin.Get(context.Background(), ks.lockPrefix("l/churn"), clientv3.WithPrefix())
		if err != nil {
			t.Logf("dump: %v", err)
			return
		}
		for _, kv := range resp.Kvs {
			t.Logf("entry %s create %d mod %d version %d lease %x", kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
		}
	})
	var idles []time.Duration
	for range rounds {
		c.await(10, wait, "grants before the fault")
		at := time.Now()
		fault(srv)
		c.await(10, wait, "grants after the fault")
		idles = append(idles, c.idleSince(at))
		c.lostBeforeRepair = c.sessionsLost()
		repair(srv)
	}
	c.close()
	return idles, c
}

// report logs and checks a fault's figures: no session lost, no token
// backwards, and (when bound > 0) every round's longest time without a
// holder within bound.
func report(t *testing.T, fault string, idles []time.Duration, c *churn, bound time.Duration) {
	t.Helper()
	lost, back, grantsLost := c.result()
	t.Logf("%s: %d rounds, no holder p50 %v max %v; sessions lost %d; tokens backwards %d; grants lost %d; grants %d",
		fault, len(idles), percentile(idles, 50).Round(time.Millisecond), percentile(idles, 100).Round(time.Millisecond), lost, back, grantsLost, c.count())
	if lost != 0 {
		t.Errorf("%s: %d sessions lost", fault, lost)
	}
	if back != 0 {
		t.Errorf("%s: %d tokens not above the previous grant's", fault, back)
	}
	if bound > 0 && percentile(idles, 100) > bound {
		t.Errorf("%s: the lock had no holder for %v (bound %v)", fault, percentile(idles, 100), bound)
	}
}

// Killing the leader of a 3-member cluster under a churn of lock holders:
// the lock is usable again within the election time (500 ms here) plus
// two round trips (bound 1.5 s), no session is lost, tokens keep growing.
func TestFaultLeaderKillAvailability(t *testing.T) {
	idles, c := faultRounds(t, 2,
		func(srv *privateServer) { srv.run("kill", "etcd-cluster:leader") },
		func(srv *privateServer) { srv.run("start-one", "etcd-cluster:all") })
	report(t, "leader kill", idles, c, 1500*time.Millisecond)
}

// Killing a follower is invisible to the lock's availability.
func TestFaultFollowerKillAvailability(t *testing.T) {
	idles, c := faultRounds(t, 2,
		func(srv *privateServer) { srv.run("kill", "etcd-cluster:follower") },
		func(srv *privateServer) { srv.run("start-one", "etcd-cluster:all") })
	report(t, "follower kill", idles, c, 1500*time.Millisecond)
}

// Freezing the leader (SIGSTOP) for longer than the lease TTL: the other
// two members elect a new leader, renewals and releases sent to the
// frozen member are abandoned after one attempt and sent to the others,
// so no session is lost while a quorum is reachable.
//
// When the frozen member resumes, an etcd server without the fix of
// etcd-io/etcd#15247 (3.4.28, 3.5.11 and later have it) still believes
// for a moment that it leads, finds every lease expired by its own clock,
// and forwards their revocation to the new leader, which commits it: the
// sessions end although every renewal succeeded. That is the server's
// defect, outside the driver's reach (and the reason to run a fixed
// etcd); on such a server the test checks the driver's promise up to the
// resume and logs what the resume did.
func TestFaultLeaderFreezeKeepsSessions(t *testing.T) {
	var version string
	idles, c := faultRounds(t, 1,
		func(srv *privateServer) {
			version = serverVersion(t, srv.URL("BATON_TEST_ETCD_CLUSTER_URL"))
			srv.run("pause", "etcd-cluster:leader")
			time.Sleep(4 * time.Second) // the fault: frozen past the 3 s TTL
		},
		// SIGCONT to every member: the frozen one is no longer the leader.
		func(srv *privateServer) { srv.run("resume", "etcd-cluster:all") })
	if c.lostBeforeRepair != 0 {
		t.Errorf("leader freeze 4 s: %d sessions lost while the leader was frozen", c.lostBeforeRepair)
	}
	if !revokesOnResume(version) {
		report(t, "leader freeze 4 s", idles, c, 0)
		return
	}
	lost, back, _ := c.result()
	t.Logf("leader freeze 4 s: %d rounds, no holder max %v; sessions lost during the freeze 0, after the resume %d (etcd %s revokes leases when a frozen leader resumes: etcd-io/etcd#15247); tokens backwards %d; grants %d",
		len(idles), percentile(idles, 100).Round(time.Millisecond), lost, version, back, c.count())
	if back != 0 {
		t.Errorf("leader freeze 4 s: %d tokens not above the previous grant's", back)
	}
}

// serverVersion returns the etcd server version of the cluster at url.
func serverVersion(t *testing.T, url string) string {
	t.Helper()
	admin := newAdminClient(t, url)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, ep := range admin.Endpoints() {
		if st, err := admin.Status(ctx, ep); err == nil {
			return st.Version
		}
	}
	t.Fatal("no member of the cluster reported its version")
	return ""
}

// revokesOnResume reports whether etcd version v has the defect of
// etcd-io/etcd#15247: fixed in 3.4.28, 3.5.11 and 3.6.
func revokesOnResume(v string) bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return true // unknown: assume the defect, the freeze itself is still checked
	}
	switch {
	case major != 3:
		return major < 3
	case minor == 4:
		return patch < 28
	case minor == 5:
		return patch < 11
	default:
		return minor < 4
	}
}
