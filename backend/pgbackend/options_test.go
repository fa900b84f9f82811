package pgbackend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// driverConfig parses raw as the backend does and returns what Open gets.
func driverConfig(t *testing.T, raw string) (*driver.Config, error) {
	t.Helper()
	cfg, err := backend.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return &driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
	}, nil
}

// Every documented example parses and is a valid configuration.
// The TLS files the examples name are made in a temporary directory.
func TestExamples(t *testing.T) {
	dir := writeTLSFiles(t)
	for _, ex := range Info().Examples {
		t.Run(ex, func(t *testing.T) {
			ex = strings.ReplaceAll(ex, "/etc/ssl/", dir+"/")
			cfg, err := driverConfig(t, ex)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if _, err := parseSettings(cfg); err != nil {
				t.Fatalf("settings: %v", err)
			}
			if strings.Contains(cfg.Redacted, "secret") {
				t.Fatalf("redacted URL %q shows a secret", cfg.Redacted)
			}
		})
	}
}

// tooz's forms: the query's host, port and dbname take precedence over
// the URL's host, port and path; a host starting with / is a socket dir.
func TestParseSettings(t *testing.T) {
	tests := []struct {
		give       string
		wantHost   string
		wantPort   uint16
		wantDB     string
		wantUser   string
		wantPass   string
		wantSchema string
		wantTTL    time.Duration
		wantTLS    bool
		wantHosts  int
	}{
		{give: "postgresql://localhost/postgres", wantHost: "localhost", wantPort: 5432, wantDB: "postgres", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgres://u:p%40ss@db:6543/app", wantHost: "db", wantPort: 6543, wantDB: "app", wantUser: "u", wantPass: "p@ss", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgresql://u:pw@h:5432?dbname=other", wantHost: "h", wantPort: 5432, wantDB: "other", wantUser: "u", wantPass: "pw", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgresql://localhost/postgres?host=/run/postgresql&port=9824", wantHost: "/run/postgresql", wantPort: 9824, wantDB: "postgres", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgresql://ignored:1111/path?host=real&port=2222&dbname=db", wantHost: "real", wantPort: 2222, wantDB: "db", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgresql://h:1111/db?port=2222", wantHost: "h", wantPort: 2222, wantDB: "db", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgresql:///app?host=/var/run/postgresql", wantHost: "/var/run/postgresql", wantPort: 5432, wantDB: "app", wantSchema: "baton", wantTTL: 10 * time.Second},
		{give: "postgresql://[::1]:5433/db?namespace=apps&timeout=2.5", wantHost: "::1", wantPort: 5433, wantDB: "db", wantSchema: "apps", wantTTL: 2500 * time.Millisecond},
		{give: "postgresql://h/db?user=svc&timeout=750ms", wantHost: "h", wantPort: 5432, wantDB: "db", wantUser: "svc", wantSchema: "baton", wantTTL: 750 * time.Millisecond},
		{give: "postgresql://a:1,b:2/db", wantHost: "a", wantPort: 1, wantDB: "db", wantSchema: "baton", wantTTL: 10 * time.Second, wantHosts: 2},
		{give: "postgresql://h/db?sslmode=require", wantHost: "h", wantPort: 5432, wantDB: "db", wantSchema: "baton", wantTTL: 10 * time.Second, wantTLS: true},
		{give: "postgresql://h/db?sslmode=disable", wantHost: "h", wantPort: 5432, wantDB: "db", wantSchema: "baton", wantTTL: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			cfg, err := driverConfig(t, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			s, err := parseSettings(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := s.conn
			if c.Host != tt.wantHost || c.Port != tt.wantPort || c.Database != tt.wantDB {
				t.Errorf("host %q port %d db %q, want %q %d %q", c.Host, c.Port, c.Database, tt.wantHost, tt.wantPort, tt.wantDB)
			}
			if tt.wantUser != "" && c.User != tt.wantUser {
				t.Errorf("user %q, want %q", c.User, tt.wantUser)
			}
			if c.Password != tt.wantPass {
				t.Errorf("password mismatch")
			}
			if s.schema != tt.wantSchema || s.ttl != tt.wantTTL {
				t.Errorf("schema %q ttl %v, want %q %v", s.schema, s.ttl, tt.wantSchema, tt.wantTTL)
			}
			if tt.wantTLS && c.TLSConfig == nil {
				t.Errorf("no TLS config with sslmode=require")
			}
			if tt.give == "postgresql://h/db?sslmode=disable" && (c.TLSConfig != nil || len(c.Fallbacks) > 0) {
				t.Errorf("TLS config or fallbacks with sslmode=disable")
			}
			if tt.wantHosts > 0 && 1+len(c.Fallbacks) < tt.wantHosts {
				t.Errorf("%d hosts, want %d", 1+len(c.Fallbacks), tt.wantHosts)
			}
		})
	}
}

// Bad connection strings fail with ErrInvalidArgument, name the problem,
// and never show a password.
func TestParseSettingsErrors(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "postgresql://h/db?lock_timout=3", want: "lock_timout"},
		{give: "postgresql://h/db?sslmode=sometimes", want: "sslmode"},
		{give: "postgresql://h/db?timeout=soon", want: "timeout"},
		{give: "postgresql://h/db?timeout=0", want: "timeout"},
		{give: "postgresql://h/db?pool_size=0", want: "pool_size"},
		{give: "postgresql://h/db?port=70000", want: "port"},
		{give: "postgresql://h:0/db", want: "port"},
		{give: "postgresql://h/db?namespace=", want: "namespace"},
		{give: "postgresql://h/db?namespace=pg_catalog", want: "reserved"},
		{give: "postgresql://h/db?namespace=" + strings.Repeat("n", 64), want: "63 bytes"},
		{give: "postgresql://h/db?sslcert=/c.pem", want: "sslkey"},
		{give: "postgresql://u:secret@h/db?user=v", want: "user"},
		{give: "postgresql://u:secret@h/a/b", want: "database name"},
		{give: "postgresql://u:secret@h/db?host=", want: "host"},
		{give: "postgresql://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", want: "CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			cfg, err := driverConfig(t, tt.give)
			if err == nil {
				_, err = parseSettings(cfg)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if code, _ := driver.CodeOf(err); code != driver.CodeInvalidArgument && !errors.Is(err, backend.ErrInvalidArgument) {
				t.Errorf("error %v is not an invalid argument", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// writeTLSFiles writes a self-signed CA (pg-ca.pem) and a client
// certificate and key (client.pem, client.key) signed by it.
func writeTLSFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, data := range map[string][]byte{
		"pg-ca.pem": certPEM, "client.pem": certPEM,
		"client.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
