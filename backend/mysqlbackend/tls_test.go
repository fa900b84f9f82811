package mysqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// tlsDir returns the test server's certificate directory.
func tlsDir(t *testing.T) string {
	d := os.Getenv("BATON_TEST_MYSQL_TLS_DIR")
	if d == "" {
		t.Fatal("BATON_TEST_MYSQL_TLS_DIR is not set: start the server with scripts/servers.sh start mysql")
	}
	return d
}

// Every tooz TLS option against the server's TLS: the session connection
// is encrypted, and verification is what the options say.
func TestTLS(t *testing.T) {
	dir := tlsDir(t)
	capath := t.TempDir()
	pemCA, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(capath, "ca.pem"), pemCA, 0o644); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	tests := []struct {
		name string
		kv   []string
	}{
		{"ssl_ca verifies chain and host", []string{"ssl_ca", ca}},
		{"ssl_capath", []string{"ssl_capath", capath, "ssl_verify_mode", "required"}},
		{"client certificate", []string{"ssl_ca", ca, "ssl_cert", filepath.Join(dir, "client.pem"), "ssl_key", filepath.Join(dir, "client.key")}},
		{"no hostname check", []string{"ssl_ca", ca, "ssl_check_hostname", "false"}},
		{"cipher", []string{"ssl_ca", ca, "ssl_cipher", "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"}},
		{"no verification", []string{"ssl_verify_mode", "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBackend(t, isolate(t, mysqlURL(t), tt.kv...), "m1")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := connOf(t, b)
			var name, cipher string
			err := c.onSession(ctx, func(ctx context.Context, s *sql.Conn) error {
				return s.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher)
			})
			if err != nil || cipher == "" {
				t.Fatalf("session connection not encrypted: cipher %q, %v", cipher, err)
			}
			if _, ok, err := b.TryLock(ctx, "l", backend.LockOptions{}); err != nil || !ok {
				t.Fatalf("try lock over TLS: %v %v", ok, err)
			}
		})
	}
	t.Run("unknown authority", func(t *testing.T) {
		other := t.TempDir()
		ca2, _, _ := writeCerts(t, other)
		_, err := backend.Open(testCtx(t, 20*time.Second), isolate(t, mysqlURL(t), "ssl_ca", ca2))
		if !errors.Is(err, backend.ErrInvalidArgument) {
			t.Fatalf("got %v, want ErrInvalidArgument", err)
		}
		t.Logf("error: %v", err)
	})
}
