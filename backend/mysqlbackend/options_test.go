package mysqlbackend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// settingsOf parses raw the way Open does.
func settingsOf(t *testing.T, raw string) (*settings, error) {
	t.Helper()
	cfg, err := backend.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return parseConfig(&driver.Config{
		Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password, PasswordSet: cfg.PasswordSet,
		Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
	})
}

func TestParseForms(t *testing.T) {
	tests := []struct {
		give                      string
		wantNet, wantAddr, wantDB string
		wantUser, wantPass        string
		wantTTL                   time.Duration
		wantNS, wantPrefix        string
	}{
		{"mysql://user:pass@db.example.com/app", "tcp", "db.example.com:3306", "app", "user", "pass", 10 * time.Second, "baton", "baton"},
		{"mysql://root@localhost/pifpaf?unix_socket=/run/mysqld/mysqld.sock", "unix", "/run/mysqld/mysqld.sock", "pifpaf", "root", "", 10 * time.Second, "baton", "baton"},
		{"mysql://u@[::1]:3307/d?timeout=2.5&namespace=a&table_prefix=t_1", "tcp", "[::1]:3307", "d", "u", "", 3 * time.Second, "a", "t_1"},
		{"mysql://u:p@h:1234/d?timeout=1500ms", "tcp", "h:1234", "d", "u", "p", 2 * time.Second, "baton", "baton"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			s, err := settingsOf(t, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			m := s.mysql
			if m.Net != tt.wantNet || m.Addr != tt.wantAddr || m.DBName != tt.wantDB || m.User != tt.wantUser || m.Passwd != tt.wantPass {
				t.Fatalf("got %s %s db=%s user=%s, want %s %s db=%s user=%s", m.Net, m.Addr, m.DBName, m.User, tt.wantNet, tt.wantAddr, tt.wantDB, tt.wantUser)
			}
			if s.sessionTTL != tt.wantTTL || s.namespace != tt.wantNS || s.tablePrefix != tt.wantPrefix {
				t.Fatalf("got ttl=%v ns=%s prefix=%s", s.sessionTTL, s.namespace, s.tablePrefix)
			}
			if m.TLS != nil {
				t.Fatal("TLS without any ssl_ option")
			}
		})
	}
}

func TestParseTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	capath := filepath.Join(dir, "cas")
	if err := os.Mkdir(capath, 0o755); err != nil {
		t.Fatal(err)
	}
	pemCA, _ := os.ReadFile(ca)
	if err := os.WriteFile(filepath.Join(capath, "ca.pem"), pemCA, 0o644); err != nil {
		t.Fatal(err)
	}
	base := "mysql://u:p@db.example.com/d?"
	tests := []struct {
		name         string
		giveQuery    string
		wantSkip     bool // InsecureSkipVerify
		wantVerifyFn bool // chain verified by VerifyPeerCertificate
		wantCerts    int
		wantCiphers  int
	}{
		{"ca verifies chain and name", "ssl_ca=" + ca, false, false, 0, 0},
		{"capath", "ssl_capath=" + capath, false, false, 0, 0},
		{"client cert", "ssl_ca=" + ca + "&ssl_cert=" + cert + "&ssl_key=" + key, false, false, 1, 0},
		{"no hostname check", "ssl_ca=" + ca + "&ssl_check_hostname=false", true, true, 0, 0},
		{"verify none", "ssl_ca=" + ca + "&ssl_verify_mode=none", true, false, 0, 0},
		{"cipher only", "ssl_cipher=ECDHE-RSA-AES128-GCM-SHA256:TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", true, false, 0, 2},
		{"required", "ssl_verify_mode=required&ssl_ca=" + ca, false, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := settingsOf(t, base+tt.giveQuery)
			if err != nil {
				t.Fatal(err)
			}
			tc := s.mysql.TLS
			if tc == nil {
				t.Fatal("no TLS config")
			}
			if tc.ServerName != "db.example.com" || tc.MinVersion != tls.VersionTLS12 {
				t.Fatalf("server name %q, min version %x", tc.ServerName, tc.MinVersion)
			}
			if tc.InsecureSkipVerify != tt.wantSkip || (tc.VerifyPeerCertificate != nil) != tt.wantVerifyFn {
				t.Fatalf("skip=%v verifyFn=%v", tc.InsecureSkipVerify, tc.VerifyPeerCertificate != nil)
			}
			if len(tc.Certificates) != tt.wantCerts || len(tc.CipherSuites) != tt.wantCiphers {
				t.Fatalf("certs=%d ciphers=%d", len(tc.Certificates), len(tc.CipherSuites))
			}
		})
	}
}

// writeCerts writes a CA and a client certificate and key it signed.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cDER, err := x509.CreateCertificate(rand.Reader, cTmpl, caTmpl, &cKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kDER, _ := x509.MarshalECPrivateKey(cKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("client.pem", "CERTIFICATE", cDER), write("client.key", "EC PRIVATE KEY", kDER)
}

func TestOpenSSLNames(t *testing.T) {
	tests := []struct{ give, want string }{
		{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
		{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
		{"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
		{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
	}
	for _, tt := range tests {
		if got := opensslName(tt.give); got != tt.want {
			t.Errorf("opensslName(%s) = %s, want %s", tt.give, got, tt.want)
		}
	}
}
