package membackend

import (
	"context"

	"github.com/baton-go/baton/backend/driver"
)

var _ driver.BatchRefresher = (*conn)(nil)

// RefreshLocks refreshes many own leases in one call under one lock of
// the store, as RefreshLock does each: the in-process stand-in for one
// round trip. An injected refresh fault (OpRefresh) fails the whole
// batch once; a lost session fails every lease with not held.
func (c *conn) RefreshLocks(ctx context.Context, locks []driver.LockRef, errs []error) error {
	if err := c.injected(ctx, OpRefresh); err != nil {
		return err
	}
	if err := notHeldIfLost(c.begin(ctx)); err != nil {
		if code, _ := driver.CodeOf(err); code != driver.CodeNotHeld {
			return err
		}
		for i := range errs {
			errs[i] = err
		}
		return nil
	}
	s := c.s
	defer s.mu.Unlock()
	now := c.clock.Now()
	for i, l := range locks {
		errs[i] = nil
		if ls, ok := s.locks[l.Key]; ok {
			if g := ls.find(c, l.Token); g != nil {
				if g.ttl > 0 {
					g.expires = now.Add(l.TTL)
				}
				continue
			}
		}
		errs[i] = driver.Errorf(driver.CodeNotHeld, "token %d does not hold %q", l.Token, l.Key)
	}
	return nil
}
