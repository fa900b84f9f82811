//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/baton-go/baton/backend/driver"
)

// Connections racing for one key with shared and exclusive grants never
// break exclusion, and every exclusive grant's token is above every token
// granted before it.
func TestSharedExclusiveStress(t *testing.T) {
	dir := t.TempDir()
	const conns, rounds = 6, 300
	var excl, shared atomic.Int64
	var mu sync.Mutex
	var maxToken uint64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := openConnAt(t, dir, fmt.Sprintf("m%d", i), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := t.Context()
			req := driver.LockRequest{Key: "k", Member: c.member}
			for range rounds {
				isShared := rand.IntN(3) > 0
				var lease driver.Lease
				var ok bool
				var err error
				if isShared {
					lease, ok, err = c.TryLockShared(ctx, req)
				} else {
					lease, ok, err = c.TryLock(ctx, req)
				}
				if err != nil {
					errs <- err
					return
				}
				if !ok {
					continue
				}
				mu.Lock()
				if isShared {
					shared.Add(1)
					if excl.Load() != 0 {
						err = fmt.Errorf("shared grant %d while an exclusive one is held", lease.Token)
					}
				} else {
					if excl.Add(1) != 1 || shared.Load() != 0 {
						err = fmt.Errorf("exclusive grant %d while others are held", lease.Token)
					}
					if lease.Token <= maxToken {
						err = fmt.Errorf("exclusive token %d is not above %d", lease.Token, maxToken)
					}
				}
				maxToken = max(maxToken, lease.Token)
				mu.Unlock()
				if isShared {
					shared.Add(-1)
				} else {
					excl.Add(-1)
				}
				if err == nil {
					err = c.Unlock(ctx, "k", lease.Token)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
