package zkbackend

import (
	"context"
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
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// tlsServer is a ZooKeeper server with a TLS client port that requires
// client certificates, started by the test (the shared test servers have
// no TLS port) and stopped by its PID.
type tlsServer struct {
	addr                string
	ca, otherCA         string
	cert, key, keyPlain string
	keyPassword         string
}

func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	const jars = "/usr/share/java"
	java, err := exec.LookPath("java")
	if err != nil || !fileExists(filepath.Join(jars, "zookeeper.jar")) || !fileExists(filepath.Join(jars, "netty-handler.jar")) {
		t.Fatalf("the TLS test runs its own ZooKeeper server: install it with scripts/install.sh zookeeper (needs java, %s/zookeeper.jar and the netty jars)", jars)
	}
	dir := t.TempDir()
	s := &tlsServer{keyPassword: "s3cret"}
	caCert, caKey := newCert(t, nil, nil, "baton test CA")
	s.ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw)
	other, _ := newCert(t, nil, nil, "unrelated CA")
	s.otherCA = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw)
	srvCert, srvKey := newCert(t, caCert, caKey, "127.0.0.1")
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: srvKeyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvCert.Raw})...)
	serverPEM := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(serverPEM, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey := newCert(t, caCert, caKey, "127.0.0.1")
	s.cert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliCert.Raw)
	cliKeyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	s.keyPlain = writePEM(t, dir, "client-plain.key", "EC PRIVATE KEY", cliKeyDER)
	enc, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", cliKeyDER, []byte(s.keyPassword), x509.PEMCipherAES256) //nolint:staticcheck // the legacy form keyfile_password decrypts
	if err != nil {
		t.Fatal(err)
	}
	s.key = filepath.Join(dir, "client.key")
	if err := os.WriteFile(s.key, pem.EncodeToMemory(enc), 0o600); err != nil {
		t.Fatal(err)
	}

	plain, secure := freePort(t), freePort(t)
	s.addr = net.JoinHostPort("127.0.0.1", secure)
	cfg := strings.Join([]string{
		"tickTime=500", "dataDir=" + filepath.Join(dir, "data"),
		"clientPort=" + plain, "clientPortAddress=127.0.0.1",
		"secureClientPort=" + secure, "secureClientPortAddress=127.0.0.1",
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"ssl.keyStore.location=" + serverPEM, "ssl.keyStore.type=PEM",
		"ssl.trustStore.location=" + s.ca, "ssl.trustStore.type=PEM",
		"ssl.clientAuth=need", "admin.enableServer=false",
	}, "\n") + "\n"
	zooCfg := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(zooCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := []string{filepath.Join(jars, "zookeeper.jar"), filepath.Join(jars, "slf4j-nop.jar")}
	for _, n := range []string{"buffer", "codec", "common", "handler", "resolver", "transport", "transport-native-unix-common", "transport-native-epoll"} {
		cp = append(cp, filepath.Join(jars, "netty-"+n+".jar"))
	}
	cmd := exec.Command(java, "-Xmx128m", "-XX:+UseSerialGC", "-Dzookeeper.forceSync=no",
		"-cp", strings.Join(cp, ":"), "org.apache.zookeeper.server.quorum.QuorumPeerMain", zooCfg)
	logFile, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
	})
	eventually(t, 60*time.Second, "the TLS ZooKeeper server to listen", func() bool {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return s
}

// The driver speaks TLS with the options tooz passes to kazoo: a CA, a
// client certificate whose key is encrypted with keyfile_password.
func TestTLS(t *testing.T) {
	s := startTLSServer(t)
	base := testScheme + "://" + s.addr + "?use_ssl=true&timeout=5&namespace=tls-" + randomName(t)
	withCert := "&certfile=" + s.cert + "&keyfile=" + s.key + "&keyfile_password=" + s.keyPassword
	t.Run("Verified", func(t *testing.T) {
		b := openBackend(t, base+"&ca="+s.ca+withCert, "tls-member")
		ctx := testCtx(t, 20*time.Second)
		if err := b.JoinCreate(ctx, "g", []byte("caps")); err != nil {
			t.Fatal(err)
		}
		ms, err := b.Members(ctx, "g")
		if err != nil || len(ms) != 1 || string(ms[0].Capabilities) != "caps" {
			t.Fatalf("members over TLS: %v, %v", ms, err)
		}
		g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("lock over TLS: %v, %v", ok, err)
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NoVerify", func(t *testing.T) {
		openBackend(t, base+"&verify_certs=false&certfile="+s.cert+"&keyfile="+s.keyPlain, "no-verify")
	})
	tests := []struct {
		name     string
		give     string
		wantCode error
	}{
		{name: "UnknownCA", give: base + "&ca=" + s.otherCA + withCert, wantCode: backend.ErrUnavailable},
		{name: "NoClientCert", give: base + "&ca=" + s.ca, wantCode: backend.ErrUnavailable},
		{name: "WrongKeyPassword", give: base + "&ca=" + s.ca + "&certfile=" + s.cert + "&keyfile=" + s.key + "&keyfile_password=wrong", wantCode: backend.ErrInvalidArgument},
		{name: "MissingKeyPassword", give: base + "&ca=" + s.ca + "&certfile=" + s.cert + "&keyfile=" + s.key, wantCode: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			b, err := backend.Open(ctx, tt.give)
			if err == nil {
				_ = b.Close(ctx)
				t.Fatal("opened, want an error")
			}
			if !errors.Is(err, tt.wantCode) {
				t.Fatalf("open: %v, want %v", err, tt.wantCode)
			}
			if strings.Contains(err.Error(), s.keyPassword) {
				t.Fatalf("error %q shows the key password", err)
			}
		})
	}
}

// newCert returns a certificate for name (an IP address gets an IP SAN),
// signed by parent, or self-signed as a CA when parent is nil.
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
