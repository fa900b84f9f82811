package backend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
)

// wait bounds every wait of the tests on a condition.
const wait = 10 * time.Second

// newStore returns the name of a mem:// store no other test uses.
var newStore = testutil.StoreName

// testCtx returns a context that ends with the test, or after wait.
func testCtx(t testing.TB) context.Context { return testutil.Context(t, wait) }

// open opens a Backend on rawURL as member and closes it when the test
// ends.
func open(t testing.TB, rawURL, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	b, err := backend.Open(testCtx(t), rawURL, append([]backend.Option{backend.WithMemberID(member)}, opts...)...)
	if err != nil {
		t.Fatalf("open %s as %q: %v", rawURL, member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// storeOf returns the mem store name of a Backend opened on mem:// or
// mempoll:// (the host of its URL).
func storeOf(b *backend.Backend) string {
	if name, ok := membackend.StoreName(b); ok {
		return name
	}
	if hs := b.Config().Hosts; len(hs) == 1 {
		return hs[0]
	}
	return ""
}

// eventually polls cond until it holds, failing the test after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitClosed waits until ch is closed (or receives), failing after wait.
func waitClosed[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out after %v waiting for %s", wait, what)
	}
}

// isClosed reports whether the channel is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// wantErr fails unless err matches want (nil: no error).
func wantErr(t testing.TB, err, want error, what string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error %v; want one matching %v", what, err, want)
	}
}

// must fails the test on err.
func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// tryLock takes lock name on b, failing unless it is granted.
func tryLock(t testing.TB, b *backend.Backend, name string) *backend.Grant {
	t.Helper()
	g, ok, err := b.TryLock(testCtx(t), name, backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock %q as %s: ok=%v err=%v", name, b.MemberID(), ok, err)
	}
	return g
}

// tryCampaign makes b the leader of group, failing unless it is elected.
func tryCampaign(t testing.TB, b *backend.Backend, group string) *backend.Grant {
	t.Helper()
	g, ok, err := b.TryCampaign(testCtx(t), group, backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try campaign in %q as %s: ok=%v err=%v", group, b.MemberID(), ok, err)
	}
	return g
}

// chainCounts counts the *backend.Error and *driver.Error values in err's
// chain (following every branch of a joined error).
func chainCounts(err error) (be, de int) {
	if err == nil {
		return 0, 0
	}
	switch err.(type) {
	case *backend.Error:
		be++
	case *driver.Error:
		de++
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		b, d := chainCounts(u.Unwrap())
		be, de = be+b, de+d
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			b, d := chainCounts(e)
			be, de = be+b, de+d
		}
	}
	return be, de
}

// wantOnce fails unless err's chain holds exactly one *backend.Error.
func wantOnce(t testing.TB, err error, what string) {
	t.Helper()
	if be, _ := chainCounts(err); be != 1 {
		t.Fatalf("%s: %d *backend.Error in the chain of %v; want exactly 1", what, be, err)
	}
}
