// Package testutil holds helpers shared by the feature packages' tests
// (fresh backend URLs on the local drivers, waiting on conditions with a
// deadline: never sleeping and hoping) and by the tests of the drivers
// that run against a real server (server URLs, fresh namespaces,
// Backends and raw connections closed with the test, fault-test steps).
// It imports no server's client library.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/filebackend" // file:// for Drivers
	_ "github.com/baton-go/baton/backend/membackend"  // mem:// for Drivers
)

// Unique returns a random suffix for names.
func Unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MemURL returns a fresh, isolated mem:// store URL.
func MemURL(t testing.TB) string { return "mem://t-" + Unique() }

// FileURL returns a fresh file:// directory URL under t.TempDir().
func FileURL(t testing.TB) string { return "file://" + filepath.Join(t.TempDir(), "baton") }

// Eventually polls cond every few milliseconds until it holds or d passes,
// then fails the test with msg.
func Eventually(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("condition not met within %v: %s", d, msg)
	}
}

// Within is Eventually with the failure worded "WHAT: not within D".
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("%s: not within %v", what, d)
	}
}

// poll calls cond every few milliseconds until it holds (true) or d has
// passed (false).
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Context returns a context ending with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Drivers are the local backends the feature packages' tests run on:
// name → a function returning a fresh, isolated URL.
var Drivers = map[string]func(testing.TB) string{
	"mem":  MemURL,
	"file": FileURL,
}

// ForEachDriver runs f as a subtest per local driver with a fresh URL.
func ForEachDriver(t *testing.T, f func(t *testing.T, url string)) {
	for name, mk := range Drivers {
		t.Run(name, func(t *testing.T) { f(t, mk(t)) })
	}
}

// Open opens a Backend as member on url (with a short poll interval) and
// closes it when the test ends.
func Open(t testing.TB, url, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	opts = append([]backend.Option{backend.WithMemberID(member), backend.WithPollInterval(20 * time.Millisecond)}, opts...)
	b, err := backend.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

var storeSeq atomic.Uint64

// StoreName returns a mem:// store name no other test uses, readable in
// failures: the test's name (made URL-safe) and a sequence number.
func StoreName(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '.'
	}, t.Name())
	return fmt.Sprintf("%s-%d", name, storeSeq.Add(1))
}
