//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"net/url"
	"testing"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// nopObserver ignores session events.
type nopObserver struct{}

func (nopObserver) Suspended(error) {}
func (nopObserver) Resumed()        {}
func (nopObserver) Lost(error)      {}

// openConn opens a connection on a fresh directory without the portable
// layer.
func openConn(tb testing.TB, member string) *conn { return openConnAt(tb, tb.TempDir(), member, nil) }

// openConnAt opens a connection on dir with the given query options.
func openConnAt(tb testing.TB, dir, member string, q url.Values) *conn {
	tb.Helper()
	opts, err := driver.ParseOptions(options(), q)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := open(context.Background(), &driver.Config{
		Scheme: scheme, Path: dir, Options: opts, MemberID: member,
		Logger: zap.NewNop(), Observer: nopObserver{},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close(context.Background()) })
	return c.(*conn)
}

// BenchmarkConnLockUncontended measures the driver alone: TryLock plus
// Unlock on a connection, without the portable layer's grant tracking.
func BenchmarkConnLockUncontended(b *testing.B) {
	c := openConn(b, "m")
	ctx := context.Background()
	req := driver.LockRequest{Key: "l/bench", Member: "m"}
	for b.Loop() {
		lease, ok, err := c.TryLock(ctx, req)
		if err != nil || !ok {
			b.Fatalf("try lock: %v %v", ok, err)
		}
		if err := c.Unlock(ctx, req.Key, lease.Token); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
