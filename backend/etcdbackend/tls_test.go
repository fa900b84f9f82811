package etcdbackend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// pki is a throwaway CA with a server and a client certificate, as PEM
// files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t testing.TB) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baton test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.ca, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cert, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", kder)
		return cert, keyFile
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startTLSEtcd runs an etcd of the test's own that serves clients over
// TLS and requires client certificates; it is killed (by PID) when the
// test ends.
func startTLSEtcd(t testing.TB, p pki) string {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatalf("etcd is not installed: run scripts/install.sh etcd (%v)", err)
	}
	client, peer := freePort(t), freePort(t)
	cu := "https://127.0.0.1:" + strconv.Itoa(client)
	pu := "http://127.0.0.1:" + strconv.Itoa(peer)
	cmd := exec.Command("etcd", "--name", "tls", "--data-dir", t.TempDir(),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu, "--initial-cluster", "tls="+pu,
		"--cert-file", p.serverCert, "--key-file", p.serverKey, "--client-cert-auth", "--trusted-ca-file", p.ca,
		"--unsafe-no-fsync", "--heartbeat-interval", "10", "--election-timeout", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return "127.0.0.1:" + strconv.Itoa(client)
}

// ca_cert, cert_cert and cert_key connect to a server that requires
// client certificates; without them the connection fails.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	addr := startTLSEtcd(t, p)
	url := "etcd3://" + addr + "?namespace=t-" + testutil.Unique() + "&timeout=5&ca_cert=" + p.ca + "&cert_cert=" + p.clientCert + "&cert_key=" + p.clientKey
	var b *backend.Backend
	testutil.Within(t, wait, "the TLS server answers", func() bool {
		var err error
		b, err = backend.Open(testCtx(t), url, backend.WithMemberID("m"))
		return err == nil
	})
	ctx := testCtx(t)
	g, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryLock over TLS = %v, %v", ok, err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	noCert := "etcd3://" + addr + "?timeout=1&ca_cert=" + p.ca
	if _, err := backend.Open(testCtx(t), noCert); err == nil {
		t.Fatal("Open without a client certificate succeeded")
	}
}

// The user information authenticates against etcd's auth; a wrong
// password is refused.
func TestAuth(t *testing.T) {
	srv := startPrivate(t, "etcd")
	base := srv.URL("BATON_TEST_ETCD_URL")
	admin := etcdtest.AdminClient(t, base)
	ctx := testCtx(t)
	if _, err := admin.UserAdd(ctx, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	host := base[len("etcd3://"):]
	b, err := backend.Open(ctx, nsURL("etcd3://root:rootpw@"+host), backend.WithMemberID("m"))
	if err != nil {
		t.Fatalf("Open with credentials: %v", err)
	}
	if err := b.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = backend.Open(ctx, nsURL("etcd3://root:wrong@"+host), backend.WithMemberID("m"))
	if !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("Open with a wrong password = %v, want ErrInvalidArgument", err)
	}
	_, err = backend.Open(ctx, nsURL(base), backend.WithMemberID("m"))
	if err == nil {
		t.Fatal("Open without credentials on an auth-enabled server succeeded")
	}
}
