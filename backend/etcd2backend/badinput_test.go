package etcd2backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEtcdWithoutV2 runs an etcd 3.4 as etcd runs by default: without
// the v2 API. It is killed when the test ends.
func startEtcdWithoutV2(t *testing.T) string {
	t.Helper()
	c, p := freePort(t), freePort(t)
	client := fmt.Sprintf("http://127.0.0.1:%d", c)
	peer := fmt.Sprintf("http://127.0.0.1:%d", p)
	cmd := exec.Command("etcd", "--name", "nov2", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "nov2="+peer, "--unsafe-no-fsync", "--enable-v2=false")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	eventually(t, wait, "etcd without v2 answers /health", func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c), time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return fmt.Sprintf("127.0.0.1:%d", c)
}

// A server without the v2 API is refused at Open with ErrUnimplemented
// and an error that says what is missing; the password is not shown.
func TestOpenWithoutV2(t *testing.T) {
	addr := startEtcdWithoutV2(t)
	url := "etcd://app:hunter2secret@" + addr + "?timeout=5"
	var err error
	eventually(t, wait, "Open answers", func() bool {
		_, err = backend.Open(testCtx(t), url)
		return !errors.Is(err, backend.ErrUnavailable)
	})
	if !errors.Is(err, backend.ErrUnimplemented) {
		t.Fatalf("Open = %v, want ErrUnimplemented", err)
	}
	if !errors.Is(err, errNoV2) || !strings.Contains(err.Error(), "--enable-v2") {
		t.Fatalf("Open = %v, want it to say the v2 API is off", err)
	}
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	t.Logf("%v", err)
}

// Wrong credentials and unreachable servers: errors never show the
// password.
func TestPasswordNeverShown(t *testing.T) {
	const secret = "hunter2secret"
	tests := []struct {
		name string
		url  string
	}{
		{"unreachable", "etcd://app:" + secret + "@127.0.0.1:1?timeout=1"},
		{"unknown option", "etcd://app:" + secret + "@127.0.0.1:1?lock_timout=3"},
		{"bad value", "etcd://app:" + secret + "@127.0.0.1:1?timeout=soon"},
		{"path", "etcd://app:" + secret + "@127.0.0.1:1/v2/keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := backend.Open(ctx, tt.url)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// Options: tooz's keys are accepted, unknown keys and malformed values
// refused with ErrInvalidArgument naming the key (and the closest valid
// one).
func TestOptions(t *testing.T) {
	tests := []struct {
		give     string
		wantErr  bool
		wantText string
		wantLock time.Duration
		wantSess time.Duration
		wantTime time.Duration
	}{
		{give: "etcd://", wantLock: 30 * time.Second, wantSess: 30 * time.Second, wantTime: 30 * time.Second},
		{give: "etcd://h?timeout=10", wantLock: 10 * time.Second, wantSess: 10 * time.Second, wantTime: 10 * time.Second},
		{give: "etcd://h?timeout=10&lock_timeout=2.5", wantLock: 3 * time.Second, wantSess: 10 * time.Second, wantTime: 10 * time.Second},
		{give: "etcd://h?membership_timeout=7s", wantLock: 30 * time.Second, wantSess: 7 * time.Second, wantTime: 30 * time.Second},
		{give: "etcd://h?protocol=http", wantLock: 30 * time.Second, wantSess: 30 * time.Second, wantTime: 30 * time.Second},
		{give: "etcd://h?lock_timout=3", wantErr: true, wantText: "lock_timeout"},
		{give: "etcd://h?protocol=gopher", wantErr: true, wantText: "protocol"},
		{give: "etcd://h?timeout=0", wantErr: true, wantText: "timeout"},
		{give: "etcd://h?lock_timeout=0.5", wantErr: true, wantText: "lock_timeout"},
		{give: "etcd://h?namespace=", wantErr: true, wantText: "namespace"},
		{give: "etcd://h/some/path", wantErr: true, wantText: "path"},
		{give: "etcd://h?protocol=http&ca_cert=/x", wantErr: true, wantText: "protocol=http"},
		{give: "etcd://h?cert_cert=/x", wantErr: true, wantText: "cert_key"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.give)
			var s *settings
			if err == nil {
				s, err = resolve(driverConfig(cfg))
			}
			if tt.wantErr {
				if !errors.Is(err, backend.ErrInvalidArgument) && !isInvalid(err) {
					t.Fatalf("got %v, want an invalid-argument error", err)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Fatalf("error %q does not name %q", err, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.lockTTL != tt.wantLock || s.sessionTTL != tt.wantSess || s.timeout != tt.wantTime {
				t.Fatalf("lock %v session %v timeout %v; want %v %v %v", s.lockTTL, s.sessionTTL, s.timeout, tt.wantLock, tt.wantSess, tt.wantTime)
			}
			if len(s.endpoints) != 1 || !strings.HasSuffix(s.endpoints[0], ":2379") {
				t.Fatalf("endpoints %v, want the default port 2379", s.endpoints)
			}
		})
	}
}

// Every byte sequence round-trips through the key escaping, and the
// escaped form is a safe, visible key segment.
func TestEscape(t *testing.T) {
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	names := []string{string(all), ".", "..", "_x", "a/b", "~7E", "a.b", ".a", "日本語 🚀", strings.Repeat("\xff", 1024)}
	seen := map[string]string{}
	for _, n := range names {
		e := escape(n)
		if e == "" || e == "." || e == ".." || strings.ContainsAny(e, "/_%") || e[0] == '.' {
			t.Fatalf("escape(%q) = %q: not a safe segment", n, e)
		}
		back, err := unescape(e)
		if err != nil || back != n {
			t.Fatalf("unescape(escape(%q)) = %q, %v", n, back, err)
		}
		if other, ok := seen[e]; ok {
			t.Fatalf("%q and %q both escape to %q", n, other, e)
		}
		seen[e] = n
	}
	for _, bad := range []string{"~", "~4", "~4g", "~zz"} {
		if _, err := unescape(bad); err == nil {
			t.Fatalf("unescape(%q) succeeded", bad)
		}
	}
}
