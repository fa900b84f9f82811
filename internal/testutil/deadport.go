package testutil

import (
	"net"
	"strconv"
	"testing"
)

// DeadPort returns a loopback TCP port nothing listens on: one the kernel
// handed out for a listener that is closed again, so a dial is refused.
func DeadPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(port)
}
