package consulbackend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend"
)

// TestTLS runs a private Consul agent that serves its HTTP API over TLS
// only (no plain HTTP port) and requires client certificates
// (verify_incoming), with certificates made here: a CA, the agent's
// certificate for 127.0.0.1 and a client certificate, and a second,
// unrelated CA. One agent serves every subtest.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "baton test CA")
	pki := tlsFiles{
		ca:      ca.write(t, dir, "ca"),
		server:  ca.issue(t, dir, "server", true),
		client:  ca.issue(t, dir, "client", false),
		otherCA: newTestCA(t, "unrelated CA").write(t, dir, "other-ca"),
	}
	addr := startTLSAgent(t, dir, pki)
	base := "consul://" + addr
	// secret is an ACL token; the agent has no ACLs, so it is sent and
	// ignored, and must show in no error.
	const secret = "7f1c7d5e-secret-token-of-the-tls-test"
	withToken := func(opts ...string) []string { return append(opts, "acl_token="+secret) }

	refused := func(t *testing.T, url string, want error) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		b, err := backend.Open(ctx, url, backend.WithMemberID("m"))
		if err == nil {
			_ = b.Close(ctx)
			t.Fatalf("Open %s succeeded; want it refused", redactedURL(url, secret))
		}
		if !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("Open: %v; want backend.ErrInvalidArgument (a TLS configuration error, not retried)", err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("Open: %v; want it to wrap %v", err, want)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
			t.Errorf("the error shows the ACL token: %v", err)
		}
		t.Logf("refused: %v", err)
		return err
	}

	// (a) and (b)'s positive half: the agent's CA and the client's
	// certificate: every client of the driver (session creation and
	// renewal, the session's blocking query, writes, group watches and
	// lock waits, both blocking queries) goes over TLS.
	t.Run("ClientCertificate", func(t *testing.T) {
		url := nsURL(base, withToken("ca_cert="+pki.ca, "cert_cert="+pki.client.cert, "cert_key="+pki.client.key)...)
		tlsRoundTrip(t, url)
	})
	t.Run("ProtocolHTTPSWithClientCertificate", func(t *testing.T) {
		url := nsURL(base, "protocol=https", "ca_cert="+pki.ca, "cert_cert="+pki.client.cert, "cert_key="+pki.client.key)
		tlsRoundTrip(t, url)
	})
	// (b): verify_incoming without a client certificate.
	t.Run("NoClientCertificate", func(t *testing.T) {
		refused(t, nsURL(base, withToken("ca_cert="+pki.ca)...), ErrCertificate)
	})
	// A client certificate the agent's CA did not sign.
	t.Run("UntrustedClientCertificate", func(t *testing.T) {
		other := newTestCA(t, "client's own CA").issue(t, dir, "stray-client", false)
		refused(t, nsURL(base, withToken("ca_cert="+pki.ca, "cert_cert="+other.cert, "cert_key="+other.key)...), ErrCertificate)
	})
	// (c): the agent's certificate checked against an unrelated CA, and
	// against the system's pool (protocol=https alone).
	t.Run("WrongCA", func(t *testing.T) {
		err := refused(t, nsURL(base, withToken("ca_cert="+pki.otherCA, "cert_cert="+pki.client.cert, "cert_key="+pki.client.key)...), ErrCertificate)
		var ve *tls.CertificateVerificationError
		if !errors.As(err, &ve) {
			t.Errorf("Open: %v; want a *tls.CertificateVerificationError reachable with errors.As", err)
		}
	})
	t.Run("SystemPool", func(t *testing.T) {
		refused(t, nsURL(base, withToken("protocol=https", "cert_cert="+pki.client.cert, "cert_key="+pki.client.key)...), ErrCertificate)
	})
	// Plain HTTP to the HTTPS port: the agent answers 400, refused at once.
	t.Run("PlainHTTP", func(t *testing.T) {
		refused(t, nsURL(base, withToken()...), nil)
	})
}

// tlsRoundTrip opens two Backends on url and has them meet over every
// request kind: a member joins and is seen by the other's watch, a lock
// waiter is woken by the release and granted with a greater token.
func tlsRoundTrip(t *testing.T, url string) {
	t.Helper()
	ctx := testCtx(t)
	a := openBackend(t, url, "a")
	b := openBackend(t, url, "b")
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	w, err := b.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := a.Join(ctx, "g", []byte("caps")); err != nil {
		t.Fatal(err)
	}
	for joined := false; !joined; {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("the watch ended: %v", w.Err())
			}
			joined = ev.Type == backend.EventJoined && ev.Member.ID == "a"
		case <-ctx.Done():
			t.Fatal("b's watch saw no join of a")
		}
	}
	if ms, err := b.Members(ctx, "g"); err != nil || len(ms) != 1 || string(ms[0].Capabilities) != "caps" {
		t.Fatalf("b's Members = %v, %v; want a with its capabilities", ms, err)
	}

	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("a's TryLock = %v, %v", ok, err)
	}
	granted := make(chan *backend.Grant, 1)
	errs := make(chan error, 1)
	go func() {
		gb, err := b.Lock(ctx, "x", backend.LockOptions{})
		if err != nil {
			errs <- err
			return
		}
		granted <- gb
	}()
	if h, ok, err := b.LockHolder(ctx, "x"); err != nil || !ok || h.Member != "a" || h.Token != g.Token() {
		t.Fatalf("LockHolder = %+v, %v, %v; want a with token %d", h, ok, err, g.Token())
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case gb := <-granted:
		if gb.Token() <= g.Token() {
			t.Fatalf("b's token %d is not above a's %d", gb.Token(), g.Token())
		}
		if err := gb.Release(ctx); err != nil {
			t.Fatal(err)
		}
	case err := <-errs:
		t.Fatalf("b's Lock: %v", err)
	case <-ctx.Done():
		t.Fatal("b was not granted the lock after a released it")
	}
	if err := a.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
}

// redactedURL hides secret in url, for messages.
func redactedURL(url, secret string) string { return strings.ReplaceAll(url, secret, "xxxxx") }

// tlsFiles are the PEM files of the TLS test.
type tlsFiles struct {
	ca      string  // the agent's CA
	server  keyPair // the agent's certificate, for 127.0.0.1
	client  keyPair // a client certificate signed by ca
	otherCA string  // a CA that signed neither
}

// keyPair names a certificate's and its key's PEM files.
type keyPair struct{ cert, key string }

// testCA is a self-signed CA of the test.
type testCA struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, der: der, key: key}
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// write writes the CA's certificate to dir/name.pem and returns its path.
func (ca *testCA) write(t testing.TB, dir, name string) string {
	t.Helper()
	return writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", ca.der)
}

// issue makes a certificate signed by ca: for the agent (server: names
// 127.0.0.1, localhost and Consul's server.dc1.consul) or for a client,
// and writes it and its key to dir.
func (ca *testCA) issue(t testing.TB, dir, name string, server bool) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost", "server.dc1.consul"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		cert: writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der),
		key:  writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", kder),
	}
}

func writePEM(t testing.TB, path, kind string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTLSAgent starts a Consul dev agent whose HTTP API listens on
// 127.0.0.1 over TLS only, requiring client certificates, and returns
// its address once it has a leader; it is stopped when the test ends.
// The agent is the binary servers.sh built ($BATON_TEST_CONSUL_BIN). Its
// ports are picked by the kernel (the ephemeral range, apart from the
// range servers.sh allocates in).
func startTLSAgent(t testing.TB, dir string, pki tlsFiles) string {
	t.Helper()
	bin := os.Getenv("BATON_TEST_CONSUL_BIN")
	if bin == "" {
		t.Fatal("BATON_TEST_CONSUL_BIN is not set: start Consul with `scripts/servers.sh start consul` and load its environment (eval \"$(scripts/servers.sh env)\")")
	}
	p := freePorts(t, 3)
	conf := map[string]any{
		"disable_update_check": true,
		"session_ttl_min":      "1s", // as servers.sh's agents: the tests' short TTLs
		"ports": map[string]any{
			"http": -1, "https": p[0], "dns": -1, "grpc": -1, "grpc_tls": -1,
			"serf_lan": p[1], "serf_wan": -1, "server": p[2],
		},
		"tls": map[string]any{
			"defaults": map[string]any{"ca_file": pki.ca, "cert_file": pki.server.cert, "key_file": pki.server.key},
			"https":    map[string]any{"verify_incoming": true},
		},
	}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "agent", "-dev", "-node", "baton-tls", "-log-level", "warn",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
		"-config-file", confFile)
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	cmd.Stdout, cmd.Stderr = log, log
	killWithParent(cmd)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	addr := fmt.Sprintf("127.0.0.1:%d", p[0])
	cli, closeIdle := tlsAdminClient(t, addr, pki)
	defer closeIdle()
	deadline := time.Now().Add(60 * time.Second)
	for {
		leader, err := cli.Status().Leader()
		if err == nil && leader != "" {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			out, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Fatalf("the TLS agent exited: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Fatalf("the TLS agent on %s has no leader after 60s (last: %v)\n%s", addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("TLS agent on %s ready in %v", addr, time.Since(start).Round(time.Millisecond))
	return addr
}

// tlsAdminClient is a consul/api client of the TLS agent with the test's
// client certificate.
func tlsAdminClient(t testing.TB, addr string, pki tlsFiles) (*api.Client, func()) {
	t.Helper()
	conf := api.DefaultNonPooledConfig()
	conf.Address, conf.Scheme = addr, "https"
	conf.TLSConfig = api.TLSConfig{CAFile: pki.ca, CertFile: pki.client.cert, KeyFile: pki.client.key}
	cli, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	return cli, func() {
		if tr, ok := conf.HttpClient.Transport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
	}
}

// freePorts returns n distinct free TCP ports of 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
