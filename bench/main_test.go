package bench

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/internal/testutil"
)

// TestMain runs the benchmarks, checks that nothing leaked, and prints
// the summary of every result as markdown. A helper process (a crash
// round's leader) only runs its test.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv(testutil.HelperEnv) != "" {
		os.Exit(code)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	writeReport(os.Stdout)
	// A benchmark that failed left no row: the others are reported.
	if path := os.Getenv(reportEnv); path != "" {
		if err := saveReport(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", reportEnv, err)
			code = 1
		} else {
			fmt.Printf("report written to %s\n", path)
		}
	}
	os.Exit(code)
}
