package consulbackend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

// A transaction that takes an exclusive lock may be committed although
// its answer is lost (the leader died after committing it, a request
// timed out): the caller sees an error, yet the key is held with this
// connection's session, which lives on, so nobody (this member included:
// the transaction checks that the key does not exist) could take the
// lock until the session ends. Such keys are remembered as orphans and
// deleted (delete-cas on the index found) when this connection next
// tries that lock and after each successful renewal, unless the key turns
// out to be a grant this connection knows, another session's, or gone.

// addOrphan remembers exclusive key x as maybe written without an answer.
func (c *conn) addOrphan(x string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.orphans == nil {
		c.orphans = map[string]bool{}
	}
	c.orphans[x] = true
}

// acquiring marks exclusive key x as being taken by a transaction whose
// grant is not remembered yet (the orphan cleanup leaves it alone); the
// returned function ends the mark.
func (c *conn) acquiring(x string) func() {
	c.mu.Lock()
	if c.inFlight == nil {
		c.inFlight = map[string]int{}
	}
	c.inFlight[x]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.inFlight[x]--; c.inFlight[x] == 0 {
			delete(c.inFlight, x)
		}
	}
}

// orphanList returns the orphans no transaction is taking right now.
func (c *conn) orphanList(only string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var xs []string
	for x := range c.orphans {
		if (only == "" || x == only) && c.inFlight[x] == 0 {
			xs = append(xs, x)
		}
	}
	return xs
}

// knownGrant reports whether key x at index is a grant this connection
// remembers.
func (c *conn) knownGrant(x string, index uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for g, k := range c.held {
		if k == x && g.token == index {
			return true
		}
	}
	return false
}

func (c *conn) dropOrphan(x string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.orphans, x)
}

// attemptTimeout bounds one attempt of a request that is retried (a
// release) or undone if its answer is lost (an acquisition): a sixth of
// the session TTL, at least 250 ms, at most the timeout option.
func (c *conn) attemptTimeout() time.Duration {
	return min(max(c.ttl/6, 250*time.Millisecond), c.timeout)
}

// cleanOrphans deletes the orphan keys still held by this session but by
// no grant of it (only x when only is set). Failures leave them for the
// next call.
func (c *conn) cleanOrphans(ctx context.Context, only string) {
	for _, x := range c.orphanList(only) {
		op := fmt.Sprintf("clean up %q", x)
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout())
		p, err := c.get(actx, op, x)
		cancel()
		if err != nil {
			continue
		}
		if p == nil || p.Session != c.session || c.knownGrant(x, p.ModifyIndex) {
			c.dropOrphan(x)
			continue
		}
		actx, cancel = context.WithTimeout(ctx, c.attemptTimeout())
		_, _, err = c.txn(actx, op, api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: x, Index: p.ModifyIndex}}})
		cancel()
		if err == nil {
			c.log.Info("deleted a lock key whose acquisition got no answer")
			c.dropOrphan(x)
		}
	}
}
