// Package proctest holds the cross-process checks the one-host drivers
// (file://, ipc://) share: a test re-executes its own binary as a helper
// process that holds locks, leadership and memberships through a
// *backend.Backend, and the test checks what another process sees while
// the helper lives and right after it is killed.
//
// A driver's test package describes itself once in a Config, calls
// Config.RunHelper from its TestMain and runs each check from a test of
// its own (the test names stay the driver's). It imports no driver.
package proctest

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// Config says how one driver's test package runs the cross-process
// checks. The zero value is not usable: EnvPrefix and NewURL are required.
type Config struct {
	// EnvPrefix prefixes the environment variables that turn the test
	// binary into a helper and carry its parameters: EnvPrefix+"_HELPER"
	// (the mode), "_URL", "_MEMBER" and "_ARG". It must be unique to the
	// package, e.g. "BATON_FILEBACKEND".
	EnvPrefix string
	// NewURL returns the URL of a fresh, isolated store with the query
	// options query ("k=v&...", possibly empty) added.
	NewURL func(t testing.TB, query string) string
	// ExcludeQuery is the query of the store ProcessesExcludeEachOther
	// counts in (e.g. a short lock retry interval).
	ExcludeQuery string
	// WatchPoll is the poll interval of the watcher's Backend in
	// WatchSeesKilledProcessLeave.
	WatchPoll time.Duration
	// LogTakeover makes KilledProcessReleasesEverything also log how
	// soon the TryLock right after the kill succeeded, measured from the
	// signal and from the moment the killed holder was reaped.
	LogTakeover bool
	// StopGrace is what happens, when the test ends, to a helper still
	// running: zero kills it at once; a positive duration closes its
	// stdin and gives it that long to exit (and Close its Backend)
	// before killing it.
	StopGrace time.Duration
}

// Open opens a Backend as member on url and closes it when the test
// ends, failing the test when either fails. It blocks while opening.
func Open(t testing.TB, url, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	b, err := backend.Open(t.Context(), url, append(opts, backend.WithMemberID(member))...)
	if err != nil {
		t.Fatalf("open as %q: %v", member, err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("close %q: %v", member, err)
		}
	})
	return b
}

// MemberIDs returns the IDs of the members of group as b lists them,
// failing the test on an error.
func MemberIDs(t testing.TB, b *backend.Backend, group string) []string {
	t.Helper()
	ms, err := b.Members(t.Context(), group)
	if err != nil {
		t.Fatalf("members of %q: %v", group, err)
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}
