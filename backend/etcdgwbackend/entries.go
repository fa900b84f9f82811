package etcdgwbackend

import (
	"context"

	"go.uber.org/zap"
)

// entry is one lock entry this connection writes: the key
// <ns>/locks/<lock>/<lease>-<slot>. A slot is taken for the whole life of
// an attempt, from before its entry is written until the entry is known
// to be deleted, so two attempts of one connection never share a key
// (locks are not reentrant) and an entry key is never written while an
// older write of it may still exist. Slots are reused afterwards: a lock
// taken and released a million times leaves one key behind in etcd's
// history, not a million (each distinct key stays in etcd's index until
// compaction, and every range over the lock's prefix walks them).
type entry struct {
	lock string
	slot uint64
	key  string
}

// grantID identifies a grant the way the SPI does: lock key and token.
type grantID struct {
	key   string
	token uint64
}

// newEntry takes the lowest free slot of lock.
func (c *conn) newEntry(lock string) entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	used := c.slots[lock]
	if used == nil {
		used = map[uint64]bool{}
		c.slots[lock] = used
	}
	slot := uint64(0)
	for used[slot] {
		slot++
	}
	used[slot] = true
	return entry{lock: lock, slot: slot, key: c.keys.LockEntry(lock, c.lease, slot)}
}

// release frees the slot of an entry known not to exist on the server.
func (c *conn) release(e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if used := c.slots[e.lock]; used != nil {
		delete(used, e.slot)
		if len(used) == 0 {
			delete(c.slots, e.lock)
		}
	}
}

// remember records a granted entry under its token.
func (c *conn) remember(token uint64, e entry) {
	c.mu.Lock()
	c.held[grantID{e.lock, token}] = e
	c.mu.Unlock()
}

// forget removes and returns the entry of a grant.
func (c *conn) forget(lock string, token uint64) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := grantID{lock, token}
	e, ok := c.held[id]
	delete(c.held, id)
	return e, ok
}

// granted returns the entry of a grant.
func (c *conn) granted(lock string, token uint64) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.held[grantID{lock, token}]
	return e, ok
}

// orphan records an entry that may exist on the server although the
// operation that wrote it failed or was abandoned; Renew deletes it, and
// only then is its slot free again.
func (c *conn) orphan(e entry) {
	c.mu.Lock()
	c.orphans[e.key] = e
	c.mu.Unlock()
}

// cleanOrphans deletes orphaned entries; it stops at the first failure
// (the next Renew tries again).
func (c *conn) cleanOrphans(ctx context.Context) {
	c.mu.Lock()
	es := make([]entry, 0, len(c.orphans))
	for _, e := range c.orphans {
		es = append(es, e)
	}
	c.mu.Unlock()
	for _, e := range es {
		if _, err := c.del(ctx, "delete abandoned lock entry", e.key); err != nil {
			c.log.Debug("deleting an abandoned lock entry failed; will retry", zap.String("key", e.key), zap.Error(err))
			return
		}
		c.mu.Lock()
		delete(c.orphans, e.key)
		c.mu.Unlock()
		c.release(e)
	}
}

// deleteEntry removes an entry this connection no longer wants (a lost
// wait, an abandoned one) without the caller's context, which may be done
// already. On failure the entry is left to Renew.
func (c *conn) deleteEntry(ctx context.Context, e entry) {
	if _, err := c.del(context.WithoutCancel(ctx), "delete lock entry", e.key); err != nil {
		c.orphan(e)
		return
	}
	c.release(e)
}
