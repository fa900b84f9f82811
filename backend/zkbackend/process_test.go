package zkbackend

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperCandidate is the body of a candidate process of
// TestHandoverPastKilledCandidate (it does nothing in a normal run).
func TestHelperCandidate(t *testing.T) { testutil.CandidateHelper(t) }

// A leader resigns while one of the two candidates waiting for it was
// killed with SIGKILL (its session is still alive on the server): the
// live one is elected at once, not when the dead one's session expires.
// Campaigns race instead of queuing (driver.LockRequest.Unordered), so a
// waiting candidate leaves no request that the live one must get past:
// once their tries are withdrawn, the leader's request is the only one (a
// queue would hold the dead one's until its session expires, and the live
// one's until it is elected).
func TestHandoverPastKilledCandidate(t *testing.T) {
	url := isolate(t, standaloneURL(t), "timeout", "3")
	c := connOf(t, openBackend(t, url, "probe"))
	testutil.HandoverPastKilledCandidate(t, url, func(_ context.Context, group string) (int, error) {
		names, _, err := c.zk.Children(c.lockPath("e/" + group))
		return len(names), err
	}, 20*time.Second)
}
