//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend_test

import (
	"net/url"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests under goleak, or, when the test binary was
// started as a helper process by a cross-process test, runs that helper
// instead (see process_test.go).
func TestMain(m *testing.M) {
	if code, ok := procs.RunHelper(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// newURL returns a file:// URL of a fresh directory, with a short session
// check so expired sessions are noticed quickly.
func newURL(t testing.TB, query string) string {
	u := url.URL{Scheme: "file", Path: t.TempDir(), RawQuery: query}
	return u.String()
}
