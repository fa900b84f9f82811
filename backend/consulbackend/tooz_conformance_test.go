package consulbackend

import (
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/internal/testutil"
)

// toozSessions records the session of every compat=tooz connection the
// tests open, by namespace and member: tooz names a session by its member
// ID alone, so the conformance suite's parallel subtests (which reuse
// member IDs) cannot tell their sessions apart by name.
var toozSessions = struct {
	sync.Mutex
	m map[[2]string][]string
}{m: map[[2]string][]string{}}

func init() {
	sessionHook = func(ns, member, session string) {
		toozSessions.Lock()
		defer toozSessions.Unlock()
		k := [2]string{ns, member}
		toozSessions.m[k] = append(toozSessions.m[k], session)
	}
}

// destroyToozMember destroys the sessions of member in the namespace of
// url (compat=tooz connections), as an expiry would; it returns how many
// it destroyed.
func destroyToozMember(t testing.TB, url, member string) int {
	t.Helper()
	toozSessions.Lock()
	ids := toozSessions.m[[2]string{testutil.NamespaceOf(t, url), member}]
	toozSessions.Unlock()
	cli, done := newAdminClient(t, url)
	defer done()
	n := 0
	for _, id := range ids {
		e, _, err := cli.Session().Info(id, (&api.QueryOptions{}).WithContext(testCtx(t)))
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		if e == nil {
			continue
		}
		if _, err := cli.Session().Destroy(id, (&api.WriteOptions{}).WithContext(testCtx(t))); err != nil {
			t.Fatalf("destroy session %s: %v", id, err)
		}
		n++
	}
	return n
}

// toozHarness runs the conformance suite with compat=tooz in a fresh
// namespace of the agent base returns.
func toozHarness(base func(testing.TB) string) drivertest.Harness {
	return drivertest.Harness{
		NewURL: func(t testing.TB) string { return nsURL(base(t), "compat=tooz") },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			t.Helper()
			if n := destroyToozMember(t, b.Config().Redacted, b.MemberID()); n == 0 {
				t.Fatalf("no session of member %q found to destroy", b.MemberID())
			}
		},
	}
}

func TestConformanceToozSingle(t *testing.T) { drivertest.Run(t, toozHarness(singleURL)) }

func TestConformanceToozCluster(t *testing.T) { drivertest.Run(t, toozHarness(clusterURL)) }
