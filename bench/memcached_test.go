package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	_ "github.com/baton-go/baton/backend/memcachedbackend"
	"github.com/baton-go/baton/internal/testutil"
)

// The memcached target: baton's memcached:// against the raw gomemcache
// recipe (add with a TTL, delete) and tooz on the same server.
func init() {
	targets = append(targets, &target{
		name: "memcached", env: "BATON_TEST_MEMCACHED_URL", server: "memcached",
		crashOpts: "lock_timeout=2&leader_timeout=2&membership_timeout=2",
		lockPeer:  "gomemcache add/delete", newLockPeer: newGomemcacheLocker,
		electPeer: "gomemcache add, 10ms retry", newElectPeer: newGomemcacheElector, crashPeer: true,
		toozURL: func(s *site) string { return "memcached://" + s.hosts[0] },
	})
}

// gomemcacheClient returns a gomemcache client of the site's servers.
func gomemcacheClient(tb testing.TB, s *site) *memcache.Client {
	mc := memcache.New(s.hosts...)
	tb.Cleanup(func() { _ = mc.Close() })
	return mc
}

// newGomemcacheLocker is the raw recipe: add the key with baton's default
// lease (30s), then delete it (a blind delete: no token, no compare).
func newGomemcacheLocker(tb testing.TB, s *site) lockOp {
	mc := gomemcacheClient(tb, s)
	key := "bench-" + testutil.Unique() + ":gomemcache"
	value := []byte("bench-lock")
	return func(context.Context) error {
		if err := mc.Add(&memcache.Item{Key: key, Value: value, Expiration: 30}); err != nil {
			return fmt.Errorf("gomemcache add: %w", err)
		}
		return mc.Delete(key)
	}
}

// newGomemcacheElector is the raw recipe as an election: add retried every
// 10ms, touched every third of the TTL while leading, deleted to resign.
func newGomemcacheElector(tb testing.TB, s *site, crash bool, name string) elector {
	mc := gomemcacheClient(tb, s)
	ttl := 30 * time.Second
	if crash {
		ttl = crashTTL
	}
	key := name + ":gomemcache"
	return funcElector(func(ctx context.Context) (func() error, error) {
		for {
			err := mc.Add(&memcache.Item{Key: key, Value: []byte("leader"), Expiration: int32(ttl / time.Second)})
			if err == nil {
				break
			}
			if !errors.Is(err, memcache.ErrNotStored) {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		rctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(ttl / 3)
			defer tick.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
					_ = mc.Touch(key, int32(ttl/time.Second))
				}
			}
		})
		return func() error {
			stop()
			wg.Wait()
			return mc.Delete(key)
		}, nil
	})
}
