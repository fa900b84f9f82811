package redisbackend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// writePEM writes blocks of type typ to path.
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue creates a key and a certificate signed by parent (self-signed
// when parent is nil) and writes them to dir/name.pem and dir/name.key.
func issue(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", kder)
	return cert, key
}

// startTLSRedis starts a redis-server that only speaks TLS and requires
// client certificates, in a temporary directory; it is killed (by its PID)
// when the test ends. It returns the port and the certificate directory.
func startTLSRedis(t *testing.T) (int, string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed: %s", startHint)
	}
	dir := t.TempDir()
	ca, caKey := issue(t, dir, "ca", nil, nil, true)
	issue(t, dir, "server", ca, caKey, false)
	issue(t, dir, "client", ca, caKey, false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", "0", "--tls-port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "yes",
		"--dir", dir, "--save", "", "--appendonly", "no")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	eventually(t, wait, "the TLS server to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return port, dir
}

func TestTLS(t *testing.T) {
	port, dir := startTLSRedis(t)
	base := fmt.Sprintf("rediss://127.0.0.1:%d?ssl_ca_certs=%s", port, filepath.Join(dir, "ca.pem"))
	withCert := base + fmt.Sprintf("&ssl_certfile=%s&ssl_keyfile=%s", filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	ctx := testCtx(t)

	b := openBackend(t, freshURL(t, withCert), "m")
	g, ok, err := b.TryLock(ctx, "job", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock over TLS: %v %v", ok, err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		give    string
		wantErr error
	}{
		{"no client certificate", base, backend.ErrUnavailable},
		{"plain text to a TLS port", fmt.Sprintf("redis://127.0.0.1:%d?socket_timeout=1", port), backend.ErrUnavailable},
		{"missing CA file", fmt.Sprintf("rediss://127.0.0.1:%d?ssl_ca_certs=%s", port, filepath.Join(dir, "nope.pem")), backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := backend.Open(ctx, tt.give, backend.WithMemberID("x"))
			if err == nil {
				_ = b.Close(ctx)
				t.Fatal("open succeeded")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("open: %v; want %v", err, tt.wantErr)
			}
		})
	}
}

// A rejected login is a configuration error, not an unavailable server.
func TestAuthErrorIsInvalidArgument(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name string
		give string
	}{
		{"unknown user", strings.Replace(plainURL(t), "redis://", "redis://nobody:wrong@", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := backend.Open(ctx, tt.give, backend.WithMemberID("x"))
			if err == nil {
				_ = b.Close(ctx)
				t.Fatal("open succeeded")
			}
			if !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("open: %v; want ErrInvalidArgument", err)
			}
		})
	}
}
