//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/ipcbackend"
	"github.com/baton-go/baton/internal/proctest"
)

// objectsSince lists the IPC objects created since before.
func objectsSince(before map[string]bool) []string { return newObjects(before, ipcObjects()) }

// The last connection of a namespace to close removes every object the
// namespace used (lock and session semaphores, mutex, segment) once no
// group is left; while a group is left, only its segment and mutex stay,
// until RemoveNamespace.
func TestLastCloseRemovesNamespace(t *testing.T) {
	before := ipcObjects()
	u := newURL(t, "")
	b1, err := backend.Open(t.Context(), u, backend.WithMemberID("m1"))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := backend.Open(t.Context(), u, backend.WithMemberID("m2"))
	if err != nil {
		t.Fatal(err)
	}
	g, ok, err := b1.TryLock(t.Context(), "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	if err := b2.JoinCreate(t.Context(), "g", nil); err != nil {
		t.Fatal(err)
	}
	if len(objectsSince(before)) == 0 {
		t.Fatal("no IPC object seen while the namespace is in use")
	}
	if err := g.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b2.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	left := objectsSince(before)
	if all := strings.Join(left, " "); len(left) != 2 || !strings.Contains(all, "sem ") || !strings.Contains(all, "shm ") {
		t.Fatalf("objects left while group g remains: %q, want the segment and the mutex", left)
	}
	if err := ipcbackend.RemoveNamespace(u); err != nil {
		t.Fatal(err)
	}
	if left := objectsSince(before); len(left) != 0 {
		t.Fatalf("objects left after RemoveNamespace: %q", left)
	}

	// Without groups, the last Close removes everything.
	b3, err := backend.Open(t.Context(), u, backend.WithMemberID("m3"))
	if err != nil {
		t.Fatal(err)
	}
	if g, ok, err = b3.TryLock(t.Context(), "l", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	if err := b3.Close(t.Context()); err != nil { // releases the lock
		t.Fatal(err)
	}
	if left := objectsSince(before); len(left) != 0 {
		t.Fatalf("objects left after the last Close: %q", left)
	}
}

// RemoveNamespace refuses while a connection of the namespace is alive.
func TestRemoveNamespaceInUse(t *testing.T) {
	u := newURL(t, "")
	proctest.Open(t, u, "m1")
	err := ipcbackend.RemoveNamespace(u)
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("remove a namespace in use: %v, want ErrUnavailable", err)
	}
}

// A change of the state that does not fit the segment fails with
// ErrUnavailable and changes nothing.
func TestSegmentFull(t *testing.T) {
	u := newURL(t, "segment_size=65536&lock_slots=16")
	b := proctest.Open(t, u, "m1")
	if err := b.CreateGroup(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	err := b.Join(t.Context(), "g", bytes.Repeat([]byte("x"), 40<<10))
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("join with capabilities larger than the segment: %v, want ErrUnavailable", err)
	}
	if err := b.Join(t.Context(), "g", []byte("small")); err != nil {
		t.Fatalf("join after a change that did not fit: %v", err)
	}
}

// One lock name in two namespaces is two locks.
func TestNamespacesAreSeparate(t *testing.T) {
	b1 := proctest.Open(t, newURL(t, ""), "m")
	b2 := proctest.Open(t, newURL(t, ""), "m")
	for _, b := range []*backend.Backend{b1, b2} {
		if _, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("try lock in its own namespace: %v %v", ok, err)
		}
	}
}

// Options are validated: a namespace with NUL, a host, a path.
func TestBadURLs(t *testing.T) {
	for _, raw := range []string{
		"ipc://?namespace=" + url.QueryEscape("a\x00b"),
		"ipc://somehost",
		"ipc:///some/path",
		"ipc://?segment_size=1024",
		"ipc://?segment_size=65536&lock_slots=100000",
	} {
		if b, err := backend.Open(t.Context(), raw); !errors.Is(err, backend.ErrInvalidArgument) {
			if err == nil {
				_ = b.Close(t.Context())
			}
			t.Errorf("open %q: %v, want ErrInvalidArgument", raw, err)
		}
	}
}
