package drivertest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
)

// Harness connects the suite to one driver and its real server.
type Harness struct {
	// NewURL returns a connection string for a fresh, isolated namespace:
	// nothing another call's URL writes is visible through it. The suite
	// opens several Backends (distinct member IDs) on one URL within a
	// subtest. It is called once per subtest, from the subtest's
	// goroutine, possibly from many subtests in parallel.
	NewURL func(t testing.TB) string
	// ExpireSession makes the session of the member b lost on the server,
	// as if it had expired (mem: fault injection; ZooKeeper: expire the
	// session; etcd: revoke the lease; Redis: delete the member's liveness
	// key and its locks). It must not close b. The suite then checks that
	// b's grants are cancelled with a cause matching backend.ErrLost, that
	// b.Done() closes once the Backend notices, that another member can
	// take b's locks and that b leaves its groups.
	ExpireSession func(t testing.TB, b *backend.Backend)
	// Options are appended to every backend.Open of the suite (e.g. a
	// short poll interval), before the suite's own options, so a subtest
	// that needs a particular poll interval or member ID overrides them.
	Options []backend.Option
	// LeakOptions are passed to goleak.VerifyNone in the
	// Close/NoGoroutineLeak subtest, for goroutines a native client keeps
	// for the whole process (not per connection).
	LeakOptions []goleak.Option
	// MemberURL, when set, gives the connection string of each member the
	// suite opens on the subtest's namespace (url, from NewURL), so that
	// one run can mix two drivers of one store (etcd3:// and etcd3+http://
	// members of one cluster). Nil means url for every member.
	MemberURL func(url, member string) string
	// GroupListBytes, when positive, says the store keeps every group name
	// in one record of this many bytes (tooz's ipc layout: one msgpack
	// list in a 1 KiB segment). Names/Groups then creates the awkward
	// names in batches that fit, and checks that a group that cannot fit
	// is refused with ErrInvalidArgument; 0 means no such bound.
	GroupListBytes int
}

// test is one named behaviour.
type test struct {
	name string
	fn   func(t *testing.T, e *env)
}

// category is a named group of subtests.
type category struct {
	name  string
	tests []test
}

// categories lists every subtest except Close/NoGoroutineLeak, in the
// order the package documentation describes them.
func categories() []category {
	return []category{
		{"Groups", groupTests},
		{"Capabilities", capabilityTests},
		{"MemberInfo", memberInfoTests},
		{"Watch", watchTests},
		{"Leader", leaderTests},
		{"Locks", lockTests},
		{"SharedLocks", sharedLockTests},
		{"Fencing", fencingTests},
		{"Session", sessionTests},
		{"Names", nameTests},
		{"Open", openTests},
		{"Characteristics", characteristicTests},
	}
}

// Run runs the conformance suite against the driver h connects to. Every
// behaviour is a named subtest ("Groups/CreateTwice",
// "Locks/ReleaseByNonHolder", ...) that can be run alone with -run; none
// is ever skipped: a behaviour the driver lacks (shared locks, breaking
// locks, a characteristic) is asserted to fail with
// backend.ErrUnimplemented. Each subtest works in its own namespace
// (h.NewURL) and closes every Backend it opens.
//
// Run first runs the Close category, whose NoGoroutineLeak subtest must
// not overlap with any other test that opens Backends; then every other
// subtest runs in parallel (bounded by go test's -parallel flag). Run must
// therefore not be called from a parallel test.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewURL == nil || h.ExpireSession == nil {
		t.Fatal("drivertest: Harness.NewURL and Harness.ExpireSession are required")
	}
	t.Run("Close", func(t *testing.T) {
		t.Run("NoGoroutineLeak", func(t *testing.T) { testNoGoroutineLeak(t, newEnv(t, h)) })
		runTests(t, h, closeTests)
	})
	for _, c := range categories() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runTests(t, h, c.tests)
		})
	}
}

// runTests runs tests as parallel subtests of t.
func runTests(t *testing.T, h Harness, tests []test) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newEnv(t, h))
		})
	}
}
