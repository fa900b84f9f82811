package etcd2backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// A lock is one key, /<ns>/l/<lock>, created with prevExist=false (a
// compare-and-swap on absence) and a TTL. Its value names the grant:
//
//	x:<nonce>:<member>   an exclusive grant
//	s:<nonce>            the marker of shared grants (see shared.go)
//
// The nonce is random per grant, so release (DELETE prevValue=) and
// refresh (PUT refresh=true prevValue=) act on this grant only, however
// often the key's modifiedIndex moved in between. The fencing token is
// the index of the write that granted the lock: the key's createdIndex
// for an exclusive grant.

// cas is a key to delete, only while it holds prevValue ("" for any).
type cas struct{ key, prevValue string }

// grantID identifies a grant the way the SPI does: lock and token.
type grantID struct {
	lock  string
	token uint64
}

// grant is what a connection knows of one of its grants.
type grant struct {
	key    string // the lock key
	value  string // its value for this grant (shared: the marker's)
	reader string // shared grants: the reader entry
}

func (g *grant) shared() bool { return g.reader != "" }

// deletes lists what Close deletes for the grant.
func (g *grant) deletes() []cas {
	if g.shared() {
		return []cas{{g.reader, ""}}
	}
	return []cas{{g.key, g.value}}
}

func (c *conn) remember(lock string, token uint64, g *grant) {
	c.mu.Lock()
	c.grants[grantID{lock, token}] = g
	c.mu.Unlock()
}

func (c *conn) forget(lock string, token uint64) (*grant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := grantID{lock, token}
	g, ok := c.grants[id]
	delete(c.grants, id)
	return g, ok
}

func (c *conn) granted(lock string, token uint64) (*grant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.grants[grantID{lock, token}]
	return g, ok
}

// ttlOf is the TTL of a lock request: its own, else lock_timeout; whole
// seconds, as the store keeps it.
func (c *conn) ttlOf(req driver.LockRequest) time.Duration {
	if req.TTL > 0 {
		return wholeSeconds(req.TTL)
	}
	return c.lockTTL
}

// holderOf decodes an exclusive holder record.
func holderOf(n *node) (driver.Holder, bool) {
	rest, ok := strings.CutPrefix(n.Value, "x:")
	if !ok {
		return driver.Holder{}, false
	}
	_, member, ok := strings.Cut(rest, ":")
	if !ok {
		return driver.Holder{}, false
	}
	return driver.Holder{Member: member, Token: n.CreatedIndex}, true
}

// isMarker reports whether a lock value is the marker of shared grants.
func isMarker(v string) bool { return strings.HasPrefix(v, "s:") }

// TryLock creates the lock key if absent, in one request. The lease is
// the key's TTL (the request's, else lock_timeout, whole seconds).
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	lease, ok, _, err := c.tryLock(ctx, req)
	return lease, ok, err
}

// tryLock is TryLock; when the lock is busy it also returns the store
// index at which it was seen busy, for a wait that must not miss its
// release.
func (c *conn) tryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, uint64, error) {
	op := opName{"try lock", req.Key}
	key := c.keys.lock(req.Key)
	ttl := c.ttlOf(req)
	val := "x:" + randomID() + ":" + req.Member
	// One attempt, bounded like a renewal's: a proposal forwarded to a
	// leader that dies with it is never answered before etcd's own
	// request timeout, and would hold the lock's next holder that long.
	actx, cancel := context.WithTimeout(ctx, attemptTimeout(ttl))
	resp, err := c.cl.put(actx, key, form("value", val, "ttl", seconds(ttl), "prevExist", "false"))
	cancel()
	if isCode(err, ecodeNodeExist) {
		return driver.Lease{}, false, errIndex(err), nil
	}
	if err != nil {
		var te *transportError
		if (!errors.As(err, &te) || !te.Sent) && !errors.Is(err, context.DeadlineExceeded) {
			return driver.Lease{}, false, 0, classify(ctx, op.String(), err)
		}
		// The write may have been applied: the value tells (read again
		// attempt by attempt, on another member if need be).
		got, gerr := c.cl.retry(ctx, http.MethodGet, key, quorum, attemptTimeout(ttl))
		switch {
		case gerr == nil && got.Node.Value == val:
			resp = got
		case gerr == nil || isCode(gerr, ecodeKeyNotFound):
			return driver.Lease{}, false, 0, classify(ctx, op.String(), err)
		default:
			c.orphan(key, val)
			return driver.Lease{}, false, 0, classify(ctx, op.String(), err)
		}
	}
	token := resp.Node.CreatedIndex
	c.remember(req.Key, token, &grant{key: key, value: val})
	return driver.Lease{Token: token, TTL: ttl}, true, 0, nil
}

// Unlock deletes the lock key if it still holds this grant's value:
// CodeNotHeld when it does not (expired, broken). When the cluster cannot
// be reached the key is deleted later, by Renew or Close.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	op := opName{"unlock", key}
	g, ok := c.forget(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	if g.shared() {
		return c.unlockShared(ctx, op.String(), g)
	}
	ambiguous, err := c.deleteGrantKey(ctx, g.key, g.value)
	switch {
	case err == nil:
		return nil
	case isCode(err, ecodeKeyNotFound, ecodeTestFailed):
		if ambiguous {
			// An earlier attempt got no answer but may have deleted it:
			// either way the grant's key is gone, the lock is released.
			return nil
		}
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (expired or broken): %w", op, token, err)
	default:
		c.orphan(g.key, g.value)
		return classify(ctx, op.String(), err)
	}
}

// deleteGrantKey deletes a grant's key by compare-and-delete on its
// value, which is safe to repeat: attempt by attempt, each bounded by a
// tenth of the lock TTL, the next on another endpoint, until one is
// answered or ctx (at most the timeout option) ends, so that a release
// interrupted by a leader change or sent to a frozen member completes on
// another member instead of leaving the lock held until its TTL. It
// reports whether an attempt before the last may have deleted the key
// (sent, no answer).
func (c *conn) deleteGrantKey(ctx context.Context, key, value string) (ambiguous bool, err error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.cl.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cl.timeout)
		defer cancel()
	}
	attempt := attemptTimeout(c.lockTTL)
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		_, err = c.cl.del(actx, key, form("prevValue", value))
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return ambiguous, err
		}
		var te *transportError
		ambiguous = ambiguous || !errors.As(err, &te) || te.Sent
		c.cl.cur.Add(1)
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ambiguous, err
		case <-t.C:
		}
	}
}

// RefreshLock restarts the TTL of the grant's key (refresh=true, which
// wakes no watcher), only while the key holds this grant: CodeNotHeld
// otherwise.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	op := fmt.Sprintf("refresh lock %q", key)
	g, ok := c.granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	var errs [2]error
	if g.shared() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[1] = c.refresh(ctx, g.reader, ttl)
		}()
		errs[0] = c.refresh(ctx, g.key, ttl, "prevValue", g.value)
		wg.Wait()
	} else {
		errs[0] = c.refresh(ctx, g.key, ttl, "prevValue", g.value)
	}
	for _, err := range errs {
		if isCode(err, ecodeKeyNotFound, ecodeTestFailed) {
			return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (expired or broken): %w", op, token, err)
		}
	}
	return classify(ctx, op, errors.Join(errs[0], errs[1]))
}

// Holder reads the lock key: the exclusive holder, or for shared grants
// the oldest reader (its entry's index as token).
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	op := fmt.Sprintf("holder of %q", key)
	resp, err := c.cl.get(ctx, c.keys.lock(key), quorum)
	if isCode(err, ecodeKeyNotFound) {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%s: not held", op)
	}
	if err != nil {
		return driver.Holder{}, classify(ctx, op, err)
	}
	h, ok, err := c.decodeHolder(ctx, key, resp.Node)
	if err != nil {
		return driver.Holder{}, classify(ctx, op, err)
	}
	if !ok {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%s: not held", op)
	}
	return h, nil
}

// decodeHolder turns a lock key's node into its holder; for the marker
// of shared grants it reads the readers.
func (c *conn) decodeHolder(ctx context.Context, lock string, n *node) (driver.Holder, bool, error) {
	if h, ok := c.holderOf(n); ok {
		return h, true, nil
	}
	if !isMarker(n.Value) {
		return driver.Holder{}, false, nil
	}
	rs, err := c.cl.get(ctx, c.keys.readers(lock), quorumSorted)
	if isCode(err, ecodeKeyNotFound) {
		return driver.Holder{}, false, nil
	}
	if err != nil {
		return driver.Holder{}, false, err
	}
	for _, r := range rs.Node.Nodes {
		if !r.Dir {
			return driver.Holder{Member: r.Value, Token: r.CreatedIndex}, true, nil
		}
	}
	return driver.Holder{}, false, nil
}

// BreakLock deletes the lock key whoever holds it (by its value, so a
// grant taken in between is not broken). The holder learns it at its
// next refresh (CodeNotHeld), and its release reports CodeNotHeld.
// Breaking shared grants deletes their marker: every reader loses.
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("break lock %q", key)
	k := c.keys.lock(key)
	resp, err := c.cl.get(ctx, k, quorum)
	if isCode(err, ecodeKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, classify(ctx, op, err)
	}
	_, err = c.cl.del(ctx, k, form("prevValue", resp.Node.Value))
	if isCode(err, ecodeKeyNotFound, ecodeTestFailed) {
		return false, nil
	}
	return err == nil, classify(ctx, op, err)
}

// opName names an operation in errors; it is formatted only when an
// error needs it (the uncontended path formats nothing).
type opName struct{ verb, name string }

func (o opName) String() string { return fmt.Sprintf("%s %q", o.verb, o.name) }

// WaitLock takes lock req.Key, waiting as long as ctx lasts. It first
// tries once; when the lock is busy it queues: an in-order key (POST)
// under /<ns>/q/<lock>/, renewed with the session. A waiter long-polls
// only the deletion of the entry just before its own, so a release wakes
// one waiter, not all; the head of the queue long-polls the lock key
// itself and tries again when it is deleted or expires. A TryLock of
// another member can take a lock the head was about to take (the queue
// orders waiters, it does not bar others); the head then waits again.
// When ctx ends first, the entry is deleted and ctx's error returned.
// An unordered request (req.Unordered: a campaign) does not queue: it
// long-polls the lock key and tries again whenever it goes.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	op := fmt.Sprintf("wait for lock %q", req.Key)
	sent := c.clock.Now()
	lease, ok, idx, err := c.tryLock(ctx, req)
	if err != nil {
		return driver.Lease{}, err
	}
	if ok {
		lease.Sent = sent
		return lease, nil
	}
	if req.Unordered {
		// Campaign: no queue entry; every waiter long-polls the lock key
		// and tries when it goes, so a candidate killed while waiting
		// leaves nothing a live one must get past.
		for {
			if err := c.waitGone(ctx, c.keys.lock(req.Key), idx); err != nil {
				return driver.Lease{}, classify(ctx, op, err)
			}
			sent = c.clock.Now()
			if lease, ok, idx, err = c.tryLock(ctx, req); err != nil || ok {
				lease.Sent = sent
				return lease, err
			}
		}
	}
	qdir := c.keys.queue(req.Key)
	entry, err := c.enqueue(ctx, op, qdir, req.Member)
	if err != nil {
		return driver.Lease{}, err
	}
	defer func() { c.dequeue(ctx, entry, req.Member) }()
	head := false
	for {
		if !head {
			resp, err := c.cl.get(ctx, qdir, quorumSorted)
			if err != nil {
				return driver.Lease{}, classify(ctx, op, err)
			}
			var pred *node
			mine := false
			for _, n := range resp.Node.Nodes {
				if n.Key == entry {
					mine = true
					break
				}
				if !n.Dir {
					pred = n
				}
			}
			if !mine {
				// The entry expired (the session's renewals failed for a
				// while): queue again, at the end.
				c.dequeue(ctx, entry, req.Member)
				if entry, err = c.enqueue(ctx, op, qdir, req.Member); err != nil {
					return driver.Lease{}, err
				}
				continue
			}
			if pred != nil {
				if err := c.waitGone(ctx, pred.Key, resp.Index); err != nil {
					return driver.Lease{}, classify(ctx, op, err)
				}
				continue
			}
			head = true
		}
		sent = c.clock.Now()
		lease, ok, busyAt, err := c.tryLock(ctx, req)
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			lease.Sent = sent
			return lease, nil
		}
		idx = busyAt
		if err := c.waitGone(ctx, c.keys.lock(req.Key), idx); err != nil {
			return driver.Lease{}, classify(ctx, op, err)
		}
	}
}

// enqueue writes a queue entry and registers it for renewal.
func (c *conn) enqueue(ctx context.Context, op, qdir, member string) (string, error) {
	resp, err := c.cl.post(ctx, qdir, form("value", member, "ttl", seconds(c.sessionTTL)))
	if err != nil {
		return "", classify(ctx, op, err)
	}
	c.mu.Lock()
	c.queued[resp.Node.Key] = true
	c.mu.Unlock()
	return resp.Node.Key, nil
}

// dequeue deletes a queue entry, even when ctx is done; when that fails
// the entry is left to Renew, and expires anyway once it stops being
// renewed.
func (c *conn) dequeue(ctx context.Context, entry, member string) {
	c.mu.Lock()
	delete(c.queued, entry)
	c.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cl.timeout)
	defer cancel()
	_, err := c.cl.del(dctx, entry, nil)
	if err != nil && !isCode(err, ecodeKeyNotFound) {
		c.orphan(entry, member)
	}
}

// waitGone returns once key is deleted or expires after store index
// after, or when the store's event history no longer reaches back that
// far (the caller reads the state again). It long-polls.
func (c *conn) waitGone(ctx context.Context, key string, after uint64) error {
	for {
		ev, err := c.cl.wait(ctx, key, after+1, false)
		if isCode(err, ecodeEventCleared, ecodeWatcherCleared) {
			return nil
		}
		if err != nil {
			return err
		}
		switch ev.Action {
		case "delete", "expire", "compareAndDelete":
			return nil
		}
		after = ev.Node.ModifiedIndex
	}
}
