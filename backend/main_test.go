package backend_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	_ "github.com/baton-go/baton/backend/filebackend"
	_ "github.com/baton-go/baton/backend/membackend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pollScheme serves the mem:// store with every optional interface hidden
// (no LockWaiter, SharedLocker, LockBreaker, GroupWatcher, HolderWatcher),
// so the portable layer's emulations run against a real store: polled
// watches, polled leader observation and polled lock waits.
const pollScheme = "mempoll"

// plainConn hides the optional interfaces of the connection it wraps.
type plainConn struct{ driver.Conn }

func init() {
	var mem driver.Info
	for _, in := range backend.Drivers() {
		if in.CanonicalScheme() == "mem" {
			mem = in
		}
	}
	in := mem
	in.Name = "In-memory, polled"
	in.Schemes = []string{pollScheme}
	in.Examples = []string{pollScheme + "://store"}
	in.Characteristics.Watch = driver.WatchPoll
	in.Characteristics.SharedLocks = false
	in.CharacteristicsFor = func(v driver.Values) driver.Characteristics {
		c := mem.CharacteristicsOf(v)
		c.Watch, c.SharedLocks = driver.WatchPoll, false
		return c
	}
	in.Open = func(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
		c, err := mem.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return plainConn{c}, nil
	}
	backend.Register(in)
}
