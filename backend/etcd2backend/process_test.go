package etcd2backend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperCandidate is the body of a candidate process of
// TestHandoverPastKilledCandidate (it does nothing in a normal run).
func TestHelperCandidate(t *testing.T) { testutil.CandidateHelper(t) }

// A leader resigns while one of the two candidates waiting for it was
// killed with SIGKILL (its session key is still alive on the server): the
// live one is elected at once, not when the dead one's queue entry
// expires. Candidates do not queue: the leadership's only record is the
// lock key, with no queue entry.
func TestHandoverPastKilledCandidate(t *testing.T) {
	url := nsURL(singleURL(t), "timeout=3")
	a := newAdmin(t, url)
	testutil.HandoverPastKilledCandidate(t, url, func(ctx context.Context, group string) (int, error) {
		n := 0
		if _, err := a.get(ctx, a.keys.lock("e/"+group), quorum); err == nil {
			n++
		} else if !isCode(err, ecodeKeyNotFound) {
			return 0, err
		}
		q, err := a.get(ctx, a.keys.queue("e/"+group), quorumSorted)
		if isCode(err, ecodeKeyNotFound) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		for _, e := range q.Node.Nodes {
			if !e.Dir {
				n++
			}
		}
		return n, nil
	}, wait)
}
