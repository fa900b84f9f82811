package etcd2backend

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Shared grants are built from three compare-and-swap steps on two
// places, because the v2 store has no multi-key transaction:
//
//   - the lock key holds a marker "s:<nonce>" instead of an exclusive
//     holder record, so an exclusive TryLock (create if absent) fails
//     while any shared grant may live;
//   - each shared holder has a reader entry, an in-order key under
//     /<ns>/r/<lock>/ with the grant's TTL;
//   - a reader is granted only by a compare-and-swap on the marker's
//     modifiedIndex made after its entry exists (the "touch"). The
//     marker is deleted by a releasing reader only with prevIndex equal
//     to the index it read before finding the readers' directory empty.
//
// So a reader's touch and a releaser's delete cannot both succeed unless
// the releaser saw the reader's entry: if the touch comes first, the
// delete's prevIndex is stale, or the releaser read the marker after the
// touch and therefore lists the entry written before it; if the delete
// comes first, the touch fails and the reader tries again on a fresh
// marker. An exclusive grant exists only while there is no marker, and
// the marker outlives every reader that touched it (each reader refreshes
// it with its entry). The token of a shared grant is the modifiedIndex
// its touch gave the marker: like an exclusive grant's createdIndex, the
// index of the write that granted it, so tokens of one lock grow in
// grant order whatever the mode.

// sharedAttempts bounds the touches one TryLockShared makes when other
// readers keep moving the marker.
const sharedAttempts = 8

// TryLockShared takes a shared grant of req.Key unless an exclusive grant
// holds it.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	op := fmt.Sprintf("try shared lock %q", req.Key)
	key := c.keys.lock(req.Key)
	ttl := c.ttlOf(req)
	marker, busy, err := c.marker(ctx, key, ttl)
	if err != nil || busy {
		return driver.Lease{}, false, classify(ctx, op, err)
	}
	rr, err := c.cl.post(ctx, c.keys.readers(req.Key), form("value", req.Member, "ttl", seconds(ttl)))
	if err != nil {
		return driver.Lease{}, false, classify(ctx, op, err)
	}
	reader := rr.Node.Key
	abandon := func() { c.dequeue(ctx, reader, req.Member) }
	for range sharedAttempts {
		t, err := c.cl.put(ctx, key, form("value", marker.Value, "ttl", seconds(ttl),
			"prevIndex", strconv.FormatUint(marker.ModifiedIndex, 10)))
		if err == nil {
			token := t.Node.ModifiedIndex
			c.remember(req.Key, token, &grant{key: key, value: marker.Value, reader: reader})
			return driver.Lease{Token: token, TTL: ttl}, true, nil
		}
		if !isCode(err, ecodeKeyNotFound, ecodeTestFailed) {
			abandon()
			return driver.Lease{}, false, classify(ctx, op, err)
		}
		// Another reader touched the marker, or it went: read it again.
		if marker, busy, err = c.marker(ctx, key, ttl); err != nil || busy {
			abandon()
			return driver.Lease{}, false, classify(ctx, op, err)
		}
	}
	abandon()
	return driver.Lease{}, false, driver.Errorf(driver.CodeUnavailable, "%s: the lock kept changing; try again", op)
}

// marker returns the lock's marker of shared grants, creating it when
// the lock is free; busy is true when an exclusive grant holds the lock.
func (c *conn) marker(ctx context.Context, key string, ttl time.Duration) (*node, bool, error) {
	for range sharedAttempts {
		resp, err := c.cl.get(ctx, key, quorum)
		if err == nil {
			return resp.Node, !isMarker(resp.Node.Value), nil
		}
		if !isCode(err, ecodeKeyNotFound) {
			return nil, false, err
		}
		created, err := c.cl.put(ctx, key, form("value", "s:"+randomID(), "ttl", seconds(ttl), "prevExist", "false"))
		if err == nil {
			return created.Node, false, nil
		}
		if !isCode(err, ecodeNodeExist) {
			return nil, false, err
		}
	}
	return nil, true, nil
}

// unlockShared deletes the reader entry, then the marker if no reader is
// left and the marker did not move since it was read.
func (c *conn) unlockShared(ctx context.Context, op string, g *grant) error {
	_, err := c.cl.del(ctx, g.reader, nil)
	if isCode(err, ecodeKeyNotFound) {
		return driver.Errorf(driver.CodeNotHeld, "%s: the shared grant expired: %w", op, err)
	}
	if err != nil {
		c.orphan(g.reader, "")
		return classify(ctx, op, err)
	}
	m, err := c.cl.get(ctx, g.key, quorum)
	if isCode(err, ecodeKeyNotFound) || (err == nil && m.Node.Value != g.value) {
		return driver.Errorf(driver.CodeNotHeld, "%s: the shared grant was broken", op)
	}
	if err != nil {
		return nil // released; the marker expires on its own
	}
	rs, err := c.cl.get(ctx, path.Dir(g.reader), quorum)
	if err == nil {
		for _, n := range rs.Node.Nodes {
			if !n.Dir {
				return nil
			}
		}
	} else if !isCode(err, ecodeKeyNotFound) {
		return nil
	}
	_, _ = c.cl.del(ctx, g.key, form("prevIndex", strconv.FormatUint(m.Node.ModifiedIndex, 10)))
	return nil
}
