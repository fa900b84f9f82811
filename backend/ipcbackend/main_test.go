//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend/ipcbackend"
	"github.com/baton-go/baton/internal/testutil"
)

// TestMain runs the tests under goleak, or, when the test binary was
// started as a helper process by a cross-process test, runs that helper
// instead (see process_test.go). After the tests it checks that they left
// no System V semaphore or shared memory segment behind (what `ipcs`
// lists), because every namespace's last Close must remove its objects.
func TestMain(m *testing.M) {
	if code, ok := procs.RunHelper(); ok {
		os.Exit(code)
	}
	before := ipcObjects()
	code := m.Run()
	if code == 0 {
		if left := newObjects(before, ipcObjects()); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the tests left IPC objects behind (ipcs):\n\t%s\n", strings.Join(left, "\n\t"))
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// ipcObjects lists the semaphore sets of the host and the shared memory
// segments of the namespaces the tests used, as "sem KEY ID" and "shm
// KEY ID" (from /proc/sysvipc, what ipcs reads). Other segments are not
// the tests' (a database server's, for instance); every semaphore set is
// counted.
func ipcObjects() map[string]bool {
	out := map[string]bool{}
	segs := map[string]bool{}
	for _, ns := range usedNamespaces() {
		segs[strconv.Itoa(int(ipcbackend.SegmentKey(ns)))] = true
	}
	for _, kind := range []string{"sem", "shm"} {
		data, err := os.ReadFile("/proc/sysvipc/" + kind)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 2 || (kind == "shm" && !segs[f[0]]) {
				continue
			}
			out[kind+" key="+f[0]+" id="+f[1]] = true
		}
	}
	return out
}

func newObjects(before, after map[string]bool) []string {
	var left []string
	for o := range after {
		if !before[o] {
			left = append(left, o)
		}
	}
	return left
}

var (
	namespacesMu sync.Mutex
	namespaces   = []string{""} // the default one, used by the tooz test
)

// usedNamespaces returns the namespaces of every newURL so far.
func usedNamespaces() []string {
	namespacesMu.Lock()
	defer namespacesMu.Unlock()
	return append([]string(nil), namespaces...)
}

// newURL returns an ipc:// URL of a fresh namespace, with query appended.
// The namespace is removed when the test ends (after every Backend the
// test opened later has closed): the groups a test created outlive its
// connections.
func newURL(t testing.TB, query string) string {
	ns := "t-" + testutil.Unique()
	namespacesMu.Lock()
	namespaces = append(namespaces, ns)
	namespacesMu.Unlock()
	q := url.Values{"namespace": {ns}}.Encode()
	if query != "" {
		q += "&" + query
	}
	u := "ipc://?" + q
	t.Cleanup(func() {
		if err := ipcbackend.RemoveNamespace(u); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})
	return u
}
