// Command depcheck enforces the import rules of the package tree: imports
// point down only. It exits 1 and lists every violation.
//
//	go run ./internal/depcheck
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

const mod = "github.com/baton-go/baton"

// feature packages that only the application layer may import.
var features = []string{"lock", "membership", "election", "partitioner"}

func main() {
	out, err := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "depcheck: go list:", err)
		os.Exit(2)
	}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg := strings.TrimPrefix(fields[0], mod)
		pkg = strings.TrimPrefix(pkg, "/")
		for _, imp := range fields[1:] {
			if msg := violation(pkg, imp); msg != "" {
				bad = append(bad, fmt.Sprintf("%s imports %s: %s", fields[0], imp, msg))
			}
		}
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Println(b)
		}
		os.Exit(1)
	}
	fmt.Println("depcheck: import rules hold")
}

func isDriverPkg(p string) bool {
	return strings.HasPrefix(p, "backend/") && strings.HasSuffix(p, "backend") && !strings.Contains(strings.TrimPrefix(p, "backend/"), "/")
}

func isFeature(p string) bool {
	for _, f := range features {
		if p == f || strings.HasPrefix(p, f+"/") {
			return true
		}
	}
	return false
}

// isTestHelper reports whether p is a package made for tests only, which
// may import testing and which only tests may import.
func isTestHelper(p string) bool {
	return p == "backend/drivertest" || p == "internal/testutil" || p == "internal/tooztest" || p == "internal/proctest" || p == "internal/etcdtest"
}

// violation returns why pkg may not import imp, or "".
func violation(pkg, imp string) string {
	if imp == "testing" && !isTestHelper(pkg) {
		return "non-test code must not import testing"
	}
	if !strings.HasPrefix(imp, mod) {
		return ""
	}
	dep := strings.TrimPrefix(strings.TrimPrefix(imp, mod), "/")
	switch {
	case isTestHelper(dep):
		return "non-test code must not import test helpers"
	case pkg == "hashring" || strings.HasPrefix(pkg, "hashring/"):
		return "hashring imports nothing of this module"
	case pkg == "backend/driver":
		return "the driver SPI never imports the rest of the module"
	case pkg == "backend" && dep != "backend/driver" && !strings.HasPrefix(dep, "internal/"):
		return "backend imports only backend/driver and internal packages"
	case isDriverPkg(pkg) && dep != "backend" && dep != "backend/driver" && !strings.HasPrefix(dep, "internal/"):
		return "drivers import only backend, backend/driver and internal packages"
	case pkg == "lock" || pkg == "membership" || pkg == "election":
		if dep != "backend" && !strings.HasPrefix(dep, "internal/") {
			return "lock, membership and election import backend only"
		}
	case pkg == "partitioner":
		if dep != "backend" && dep != "membership" && dep != "hashring" && !strings.HasPrefix(dep, "internal/") {
			return "partitioner imports backend, membership and hashring only"
		}
	case strings.HasPrefix(pkg, "backend") && isFeature(dep):
		return "the backend layer never imports a feature package"
	}
	return ""
}
