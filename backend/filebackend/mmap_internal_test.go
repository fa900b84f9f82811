//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"os"
	"testing"

	"github.com/baton-go/baton/backend/driver"
)

// An exclusive grant records itself through the lock file's mapping: the
// record is in the file for every other reader, tokens grow across the
// mapped and the pread/pwrite paths, and a file truncated under an idle
// mapping (by someone else) makes the next grant fall back instead of
// crashing the process with SIGBUS.
func TestMappedGrant(t *testing.T) {
	dir := t.TempDir()
	c := openConnAt(t, dir, "m", nil)
	other := openConnAt(t, dir, "o", nil)
	ctx := context.Background()
	req := driver.LockRequest{Key: "mapped", Member: "m"}
	take := func(c *conn, member string) uint64 {
		t.Helper()
		r := req
		r.Member = member
		lease, ok, err := c.TryLock(ctx, r)
		if err != nil || !ok {
			t.Fatalf("TryLock: %v %v", ok, err)
		}
		return lease.Token
	}
	t1 := take(c, "m")
	g := c.grants[grantKey{req.Key, t1}]
	if g == nil || g.mem == nil {
		t.Fatal("the exclusive grant has no mapping")
	}
	// Another connection (its own description, pread path on its first
	// grant) reads the mapped record.
	h, err := other.Holder(ctx, req.Key)
	if err != nil || h.Member != "m" || h.Token != t1 {
		t.Fatalf("Holder from another connection = %+v, %v; want m with token %d", h, err, t1)
	}
	if err := c.Unlock(ctx, req.Key, t1); err != nil {
		t.Fatal(err)
	}
	t2 := take(other, "o") // written by the other connection's mapping
	if t2 <= t1 {
		t.Fatalf("token %d after %d", t2, t1)
	}
	if err := other.Unlock(ctx, req.Key, t2); err != nil {
		t.Fatal(err)
	}
	t3 := take(c, "m") // c's idle mapping reads what other wrote
	if t3 <= t2 {
		t.Fatalf("token %d after %d", t3, t2)
	}
	if err := c.Unlock(ctx, req.Key, t3); err != nil {
		t.Fatal(err)
	}
	// Truncated under c's idle mapping: the next grant must not fault.
	path := c.l.lockFile(encodeName(req.Key))
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	t4 := take(c, "m")
	if t4 <= t3 {
		t.Fatalf("token %d after %d and a truncated file (tokens follow the clock)", t4, t3)
	}
	h, err = other.Holder(ctx, req.Key)
	if err != nil || h.Token != t4 {
		t.Fatalf("Holder after the truncation = %+v, %v; want token %d", h, err, t4)
	}
}
