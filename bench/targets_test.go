package bench

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/etcd2backend"
	_ "github.com/baton-go/baton/backend/etcdbackend"
	_ "github.com/baton-go/baton/backend/filebackend"
	_ "github.com/baton-go/baton/backend/membackend"
	_ "github.com/baton-go/baton/backend/redisbackend"
	_ "github.com/baton-go/baton/backend/zkbackend"
	"github.com/baton-go/baton/internal/testutil"
)

// crashTTL is the lease or session timeout of the crash takeover rounds.
const crashTTL = 2 * time.Second

// zkPinned makes baton and tooz connect to the first server of an
// ensemble, as the go-zookeeper peer does (see zkConn): every client of a
// comparison talks to the same member.
const zkPinned = "randomize_hosts=false"

// target is one driver on one kind of server, with its peers.
type target struct {
	name   string // sub-benchmark name
	env    string // variable holding the server's URL; "" for mem and file
	server string // servers.sh name of the server, for the hint
	// batonOpts are URL options of every baton connection string.
	batonOpts string
	// crashOpts are the URL options giving the crash rounds' TTL.
	crashOpts string
	// memFault: crash by membackend fault injection, not by SIGKILL of a
	// child process.
	memFault bool

	lockPeer     string // the lock peer's name, as reported
	newLockPeer  func(tb testing.TB, s *site) lockOp
	electPeer    string // the takeover peer's name, as reported
	newElectPeer func(tb testing.TB, s *site, crash bool, name string) elector
	// crashPeer: the peer takes part in the crash rounds too.
	crashPeer bool
	// toozURL returns tooz's URL for the same server; nil: no tooz.
	toozURL func(s *site) string
}

// targets are every driver and server the benchmarks cover, in report
// order.
var targets = []*target{
	{
		name: "mem", memFault: true,
		lockPeer: "sync.Mutex (floor)", newLockPeer: newMutexLocker,
		electPeer: "sync.Mutex (floor)", newElectPeer: newMutexElector,
	},
	{
		name:     "file",
		lockPeer: "flock(2) + pwrite of a token", newLockPeer: newFlockLocker,
		electPeer: "flock(2) (floor)", newElectPeer: newFlockElector, crashPeer: true,
		toozURL: func(s *site) string { return "file://" + filepath.Join(s.dir, "tooz") },
	},
	{
		name: "redis", env: "BATON_TEST_REDIS_URL", server: "redis",
		crashOpts: "lock_timeout=2&membership_timeout=2",
		lockPeer:  "bsm/redislock", newLockPeer: newRedislockLocker,
		electPeer: "bsm/redislock, 10ms retry", newElectPeer: newRedislockElector, crashPeer: true,
		toozURL: func(s *site) string { return "redis://" + s.hosts[0] },
	},
	{
		name: "zookeeper", env: "BATON_TEST_ZOOKEEPER_URL", server: "zookeeper",
		batonOpts: zkPinned, crashOpts: "timeout=2",
		lockPeer: "go-zookeeper zk.Lock", newLockPeer: newZKLocker,
		electPeer: "go-zookeeper zk.Lock", newElectPeer: newZKElector, crashPeer: true,
		toozURL: func(s *site) string { return "zookeeper://" + strings.Join(s.hosts, ",") + "?" + zkPinned },
	},
	{
		name: "zookeeper-ensemble", env: "BATON_TEST_ZOOKEEPER_ENSEMBLE_URL", server: "zookeeper-ensemble",
		batonOpts: zkPinned, crashOpts: "timeout=2",
		lockPeer: "go-zookeeper zk.Lock", newLockPeer: newZKLocker,
		electPeer: "go-zookeeper zk.Lock", newElectPeer: newZKElector, crashPeer: true,
		toozURL: func(s *site) string { return "zookeeper://" + strings.Join(s.hosts, ",") + "?" + zkPinned },
	},
	{
		name: "etcd", env: "BATON_TEST_ETCD_URL", server: "etcd",
		crashOpts: "lock_timeout=2&membership_timeout=2",
		lockPeer:  "etcd concurrency.Mutex", newLockPeer: newEtcdLocker,
		electPeer: "etcd concurrency.Election", newElectPeer: newEtcdElector, crashPeer: true,
		toozURL: func(s *site) string { return "etcd3://" + s.hosts[0] },
	},
	{
		name: "etcd-cluster", env: "BATON_TEST_ETCD_CLUSTER_URL", server: "etcd-cluster",
		crashOpts: "lock_timeout=2&membership_timeout=2",
		lockPeer:  "etcd concurrency.Mutex", newLockPeer: newEtcdLocker,
		electPeer: "etcd concurrency.Election", newElectPeer: newEtcdElector, crashPeer: true,
		// tooz's etcd3 driver takes one endpoint.
		toozURL: func(s *site) string { return "etcd3://" + s.hosts[0] },
	},
	{
		name: "etcd2", env: "BATON_TEST_ETCD2_URL", server: "etcd",
		crashOpts: "lock_timeout=2&membership_timeout=2",
		lockPeer:  "raw v2 CAS (net/http)", newLockPeer: newV2Locker,
		electPeer: "raw v2 CAS + waitIndex", newElectPeer: newV2Elector,
		toozURL: func(s *site) string { return "etcd://" + s.hosts[0] },
	},
	{
		name: "etcd2-cluster", env: "BATON_TEST_ETCD2_CLUSTER_URL", server: "etcd-cluster",
		crashOpts: "lock_timeout=2&membership_timeout=2",
		lockPeer:  "raw v2 CAS (net/http)", newLockPeer: newV2Locker,
		electPeer: "raw v2 CAS + waitIndex", newElectPeer: newV2Elector,
		// tooz's etcd driver takes one endpoint; so does the raw recipe.
		toozURL: func(s *site) string { return "etcd://" + s.hosts[0] },
	},
}

// targetNamed returns the target called name, or nil.
func targetNamed(name string) *target {
	for _, t := range targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// ttl is the crash rounds' lease or session timeout; 0 when a crash ends
// the session at once.
func (t *target) ttl() time.Duration {
	if t.crashOpts == "" {
		return 0
	}
	return crashTTL
}

// site is a target resolved for one benchmark: where its server is, or
// its directory or store.
type site struct {
	t     *target
	url   string     // the server's URL from the environment
	hosts []string   // the server's host:port list
	dir   string     // a directory of the benchmark's own (file://)
	floor sync.Mutex // the lock of the sync.Mutex peer (mem://)
}

// newSite resolves target t, failing tb with the way to start the server
// when its variable is unset.
func newSite(tb testing.TB, t *target) *site {
	tb.Helper()
	s := &site{t: t, dir: tb.TempDir()}
	if t.env == "" {
		return s
	}
	s.url = os.Getenv(t.env)
	if s.url == "" {
		tb.Fatalf("%s is unset: start the server with\n\teval \"$(scripts/servers.sh start %s)\"\nor run everything with `make bench`", t.env, t.server)
	}
	cfg, err := backend.ParseURL(s.url)
	if err != nil {
		tb.Fatalf("%s: %v", t.env, err)
	}
	s.hosts = cfg.Hosts
	return s
}

// batonURL returns a connection string for a namespace (or directory, or
// store) of its own; crash selects the short TTL of the crash rounds.
func (s *site) batonURL(crash bool) string {
	id := "bench-" + testutil.Unique()
	switch {
	case s.t.name == "mem":
		return "mem://" + id
	case s.t.name == "file":
		return withQuery("file://"+filepath.Join(s.dir, "baton"), "namespace="+id)
	case crash:
		return withQuery(s.url, "namespace="+id, s.t.batonOpts, s.t.crashOpts)
	default:
		return withQuery(s.url, "namespace="+id, s.t.batonOpts)
	}
}

// withQuery appends the query parts qs to raw.
func withQuery(raw string, qs ...string) string {
	for _, q := range qs {
		if q == "" {
			continue
		}
		if strings.Contains(raw, "?") {
			raw += "&" + q
		} else {
			raw += "?" + q
		}
	}
	return raw
}

// openBackend opens a Backend on raw as member, closed when tb ends.
func openBackend(tb testing.TB, raw, member string) *backend.Backend {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := backend.Open(ctx, raw, backend.WithMemberID(member))
	if err != nil {
		tb.Fatalf("open %s: %v", redact(raw), err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// redact drops the user information of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
