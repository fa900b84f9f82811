//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/filebackend"
	"github.com/baton-go/baton/internal/proctest"
)

func fileInfo(t *testing.T) driver.Info {
	t.Helper()
	for _, in := range backend.Drivers() {
		if in.CanonicalScheme() == "file" {
			return in
		}
	}
	t.Fatal("file driver not registered")
	return driver.Info{}
}

func TestExamplesParse(t *testing.T) {
	for _, u := range fileInfo(t).Examples {
		if _, err := backend.ParseURL(u); err != nil {
			t.Errorf("example %q: %v", u, err)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := backend.ParseURL("file:///tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Options
	if o.String("namespace") != "baton" || o.Duration("timeout") != 10*time.Second ||
		o.Duration("check_interval") != 250*time.Millisecond || o.Duration("lock_retry") != 20*time.Millisecond ||
		o.Bool("fsync") || o.String("executor") != "threaded" {
		t.Fatalf("defaults: %v", o.Keys())
	}
	if cfg.Path != "/tmp/x" {
		t.Fatalf("path %q", cfg.Path)
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		give string
	}{
		{name: "host instead of path", give: "file://tmp/x"},
		{name: "no directory", give: "file://"},
		{name: "root only host", give: "file://example.com" + dir},
		{name: "user", give: "file://u@localhost" + dir},
		{name: "namespace with slash", give: "file://" + dir + "?namespace=a/b"},
		{name: "namespace dot dot", give: "file://" + dir + "?namespace=.."},
		{name: "empty namespace", give: "file://" + dir + "?namespace="},
		{name: "unknown option", give: "file://" + dir + "?timout=3"},
		{name: "bad executor", give: "file://" + dir + "?executor=process"},
		{name: "bad bool", give: "file://" + dir + "?fsync=ture"},
		{name: "check interval too small", give: "file://" + dir + "?check_interval=1us"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := backend.Open(t.Context(), tt.give)
			if err == nil {
				_ = b.Close(t.Context())
				t.Fatalf("open %q succeeded", tt.give)
			}
			if !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("open %q: %v, want ErrInvalidArgument", tt.give, err)
			}
		})
	}
}

// Open creates the directory and the namespace, private to the user.
func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	b := proctest.Open(t, "file://localhost"+dir+"?namespace=ns&timeout=3", "m")
	if got := b.Session().TTL; got != 3*time.Second {
		t.Fatalf("session TTL %v, want the timeout 3s", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "ns", "locks"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want 0700", fi.Mode().Perm())
	}
}

// Namespaces of one directory are independent.
func TestNamespacesAreIsolated(t *testing.T) {
	dir := t.TempDir()
	a := proctest.Open(t, "file://"+dir+"?namespace=a", "m")
	b := proctest.Open(t, "file://"+dir+"?namespace=b", "m")
	if err := a.CreateGroup(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateGroup(t.Context(), "g"); err != nil {
		t.Fatalf("same group in another namespace: %v", err)
	}
	if _, ok, err := a.TryLock(t.Context(), "l", backend.LockOptions{}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("same lock in another namespace: %v %v", ok, err)
	}
}

// ExpireSession ends the member's session: the Backend is lost, with
// ErrSessionRemoved as the cause; an unknown member is not found.
func TestExpireSession(t *testing.T) {
	url := newURL(t, "check_interval=5ms")
	b := proctest.Open(t, url, "m")
	if err := filebackend.ExpireSession(url, "nobody"); !errors.Is(err, backend.ErrNotFound) || !errors.Is(err, filebackend.ErrNoSession) {
		t.Fatalf("expire an unknown member: %v, want ErrNotFound wrapping ErrNoSession", err)
	}
	if err := filebackend.ExpireSession("file://host/x", "m"); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("expire with a bad URL: %v, want ErrInvalidArgument", err)
	}
	if err := filebackend.ExpireSession(url, "m"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session not lost within 10s")
	}
	if err := b.Err(); !errors.Is(err, backend.ErrLost) || !errors.Is(err, filebackend.ErrSessionRemoved) {
		t.Fatalf("Err: %v, want ErrLost wrapping ErrSessionRemoved", err)
	}
}
