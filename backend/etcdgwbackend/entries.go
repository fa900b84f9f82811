package etcdgwbackend

import (
	"context"

	"github.com/baton-go/baton/internal/etcdproto"
)

// newEntry takes the lowest free slot of lock for this connection's lease
// (see etcdproto.Entry).
func (c *conn) newEntry(lock string) etcdproto.Entry {
	return c.entries.New(lock, func(slot uint64) string { return c.keys.LockEntry(lock, c.lease, slot) })
}

// deleteKey deletes one entry key (safe to repeat, see del).
func (c *conn) deleteKey(op string) func(ctx context.Context, key string) error {
	return func(ctx context.Context, key string) error {
		_, err := c.del(ctx, op, key)
		return err
	}
}

// cleanOrphans deletes orphaned entries; it stops at the first failure
// (the next Renew tries again).
func (c *conn) cleanOrphans(ctx context.Context) {
	c.entries.CleanOrphans(ctx, c.log, c.deleteKey("delete abandoned lock entry"))
}

// deleteEntry removes an entry this connection no longer wants (a lost
// wait, an abandoned one) without the caller's context, which may be done
// already. On failure the entry is left to Renew.
func (c *conn) deleteEntry(ctx context.Context, e etcdproto.Entry) {
	c.entries.Delete(ctx, e, c.deleteKey("delete lock entry"))
}
