package etcdgwbackend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperCandidate is the body of a candidate process of
// TestHandoverPastKilledCandidate (it does nothing in a normal run).
func TestHelperCandidate(t *testing.T) { testutil.CandidateHelper(t) }

// A leader resigns while one of the two candidates waiting for it was
// killed with SIGKILL (its session lease is still alive on the server):
// the live one is elected at once, not when the dead one's lease expires.
// Campaigns race as on etcd3://, so a waiting candidate leaves no entry.
func TestHandoverPastKilledCandidate(t *testing.T) {
	url := nsURL(singleURL(t), "timeout=3")
	admin, ks := etcdtest.AdminClient(t, grpcSingleURL(t)), newKeyspace(testutil.NamespaceOf(t, url))
	testutil.HandoverPastKilledCandidate(t, url, func(ctx context.Context, group string) (int, error) {
		return etcdtest.Count(ctx, admin, ks.LockPrefix("e/"+group))
	}, wait)
}
