package backend_test

import (
	"os"
	"testing"

	"github.com/baton-go/baton/backend"
)

// The unknown-scheme error names only driver packages that exist, and
// calls not implemented only schemes no package serves.
func TestUnknownSchemeHints(t *testing.T) {
	for s, pkg := range backend.DriverPackages {
		if _, err := os.Stat(pkg + "/driver.go"); err != nil {
			t.Errorf("scheme %q: the hint names package %s, which does not exist: %v", s, pkg, err)
		}
	}
	for s := range backend.NotImplemented {
		if _, err := os.Stat(s + "backend"); err == nil {
			t.Errorf("scheme %q: package %sbackend exists but the hint calls it not implemented", s, s)
		}
	}
}
