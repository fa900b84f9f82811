package etcdgwbackend

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// Every api_version: auto picks what the server serves; v3beta is still
// served by etcd 3.4; v3alpha is not, and Open says which path to use.
func TestAPIVersion(t *testing.T) {
	tests := []struct {
		give    string
		wantErr bool
	}{
		{give: "auto"}, {give: "v3"}, {give: "v3beta"}, {give: "v3alpha", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			url := nsURL(singleURL(t), "api_version="+tt.give)
			b, err := backend.Open(testCtx(t), url, backend.WithMemberID("m"))
			if tt.wantErr {
				if !errors.Is(err, backend.ErrInvalidArgument) || !errors.Is(err, errPathNotServed) ||
					!strings.Contains(err.Error(), "/v3alpha/") || !strings.Contains(err.Error(), "api_version=v3") {
					t.Fatalf("Open = %v, want ErrInvalidArgument naming /v3alpha/ and api_version=v3", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			if _, ok, err := b.TryLock(ctx, "x", backend.LockOptions{}); err != nil || !ok {
				t.Fatalf("TryLock = %v, %v", ok, err)
			}
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A server that is not etcd (no /version, 404 everywhere) is a clear
// ErrInvalidArgument, with auto detection and with an explicit path.
func TestNotAGateway(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, v := range []string{"auto", "v3"} {
		_, err := backend.Open(testCtx(t), "etcd3+http://"+host+"?timeout=2&api_version="+v)
		if !errors.Is(err, backend.ErrInvalidArgument) {
			t.Fatalf("api_version=%s: Open = %v, want ErrInvalidArgument", v, err)
		}
		t.Logf("api_version=%s: %v", v, err)
	}
	srv.CloseClientConnections()
}

// A password is never in an error, whatever fails.
func TestPasswordNeverEchoed(t *testing.T) {
	for _, u := range []string{
		"etcd3+http://user:hunter2@" + strings.TrimPrefix(singleURL(t), "etcd3+http://") + "?timeout=2", // no auth on the server
		"etcd3+http://user:hunter2@127.0.0.1:1?timeout=1",                                               // nothing listens
		"etcd3+http://user:hunter2@127.0.0.1:1?timeout=1&bogus=1",                                       // bad option
		"etcd3+http://user:hunter2@127.0.0.1:1/path",                                                    // bad path
	} {
		_, err := backend.Open(testCtx(t), u)
		if err == nil {
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

// Names of any bytes (every byte value but NUL, '/' and '%' included)
// stay distinct, round-trip, and never collide, on locks, groups and
// members.
func TestNamesOfAnyBytes(t *testing.T) {
	var all []byte
	for b := 1; b < 256; b++ {
		all = append(all, byte(b))
	}
	names := []string{string(all), "a/b", "a%2Fb", "a%b", "/", "%", "%25", "a/", "\xff\xfe"}
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	for _, n := range names {
		c, _ := openConn(t, url, n)
		if err := c.CreateGroup(ctx, n); err != nil {
			t.Fatalf("CreateGroup(%q): %v", n, err)
		}
		if err := c.Join(ctx, n, []byte(n)); err != nil {
			t.Fatalf("Join(%q): %v", n, err)
		}
		if _, ok, err := c.TryLock(ctx, driver.LockRequest{Key: n, Member: n}); err != nil || !ok {
			t.Fatalf("TryLock(%q) = %v, %v", n, ok, err)
		}
	}
	c, _ := openConn(t, url, "reader")
	gs, err := c.Groups(ctx)
	if err != nil || len(gs) != len(names) {
		t.Fatalf("Groups = %q, %v; want %d groups", gs, err, len(names))
	}
	for _, n := range names {
		ms, err := c.Members(ctx, n)
		if err != nil || len(ms) != 1 || ms[0].ID != n || string(ms[0].Capabilities) != n {
			t.Fatalf("Members(%q) = %+v, %v", n, ms, err)
		}
		h, err := c.Holder(ctx, n)
		if err != nil || h.Member != n {
			t.Fatalf("Holder(%q) = %+v, %v", n, h, err)
		}
	}
}
