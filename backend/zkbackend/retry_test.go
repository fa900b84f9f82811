package zkbackend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// When connection_retry_attempts run out, the session is reported lost
// at once instead of after the session timeout.
func TestConnectionRetryAttempts(t *testing.T) {
	raw := standaloneURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(raw, "zookeeper://"))
	u := testScheme + "://" + p.Addr() + "?" + url2("namespace", "baton-test/"+randomName(t), "timeout", "10",
		"connection_retry_attempts", "2", "connection_retry_delay", "50ms")
	b := openBackend(t, u, "m")
	start := time.Now()
	p.Close() // every reconnection is refused
	waitCtx(t, b.Context(), 5*time.Second, "session reported lost")
	if !errors.Is(b.Err(), backend.ErrLost) || !errors.Is(b.Err(), ErrConnectionAttempts) {
		t.Fatalf("Err %v, want ErrLost naming the connection attempts", b.Err())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("lost after %v, want well before the 10 s session timeout", d)
	}
}

// With connection_retry_deadline the session is given up as lost once
// the connection has been down that long, server or no server.
func TestConnectionRetryDeadline(t *testing.T) {
	raw := standaloneURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(raw, "zookeeper://"))
	u := testScheme + "://" + p.Addr() + "?" + url2("namespace", "baton-test/"+randomName(t), "timeout", "3",
		"connection_retry_deadline", "500ms")
	b := openBackend(t, u, "m")
	p.Blackhole(true)
	waitCtx(t, b.Context(), 10*time.Second, "session reported lost")
	if !errors.Is(b.Err(), backend.ErrLost) || !errors.Is(b.Err(), ErrConnectionDeadline) {
		t.Fatalf("Err %v, want ErrLost naming connection_retry_deadline", b.Err())
	}
}
