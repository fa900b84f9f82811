package etcdbackend

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

func TestExamplesParse(t *testing.T) {
	for _, u := range Info().Examples {
		cfg, err := backend.ParseURL(u)
		if errors.Is(err, fs.ErrNotExist) {
			continue // it names TLS files this machine lacks; all else was checked first
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", u, err)
			continue
		}
		if _, err := resolve(driverConfig(cfg)); err != nil {
			t.Errorf("resolve(%q): %v", u, err)
		}
	}
}

func driverConfig(cfg *backend.Config) *driver.Config {
	return &driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t).ca
	tests := []struct {
		name      string
		giveURL   string
		wantErr   bool
		wantEps   []string
		wantTTL   time.Duration
		wantReq   time.Duration
		wantDial  time.Duration
		wantTLS   bool
		wantNS    string
		wantUser  string
		wantParse bool // the error comes from ParseURL
	}{
		{name: "tooz defaults", giveURL: "etcd3://", wantEps: []string{"localhost:2379"}, wantTTL: 30 * time.Second, wantReq: 30 * time.Second, wantDial: 30 * time.Second, wantNS: "baton"},
		{name: "port added", giveURL: "etcd3://h1,h2:2380,[::1]", wantEps: []string{"h1:2379", "h2:2380", "[::1]:2379"}, wantTTL: 30 * time.Second, wantReq: 30 * time.Second, wantDial: 30 * time.Second, wantNS: "baton"},
		{name: "timeout sets both TTLs", giveURL: "etcd3://h?timeout=7", wantEps: []string{"h:2379"}, wantTTL: 7 * time.Second, wantReq: 7 * time.Second, wantDial: 7 * time.Second, wantNS: "baton"},
		{name: "smaller TTL wins", giveURL: "etcd3://h?lock_timeout=9&membership_timeout=4s&dial_timeout=250ms", wantEps: []string{"h:2379"}, wantTTL: 4 * time.Second, wantReq: 30 * time.Second, wantDial: 250 * time.Millisecond, wantNS: "baton"},
		{name: "namespace and user", giveURL: "etcd3://u:p@h/?namespace=app/prod", wantEps: []string{"h:2379"}, wantTTL: 30 * time.Second, wantReq: 30 * time.Second, wantDial: 30 * time.Second, wantNS: "app/prod", wantUser: "u"},
		{name: "https", giveURL: "etcd3://h?protocol=https", wantEps: []string{"h:2379"}, wantTTL: 30 * time.Second, wantReq: 30 * time.Second, wantDial: 30 * time.Second, wantTLS: true, wantNS: "baton"},
		{name: "ca_cert turns TLS on", giveURL: "etcd3://h?ca_cert=" + ca, wantEps: []string{"h:2379"}, wantTTL: 30 * time.Second, wantReq: 30 * time.Second, wantDial: 30 * time.Second, wantTLS: true, wantNS: "baton"},
		{name: "http contradicts TLS", giveURL: "etcd3://h?protocol=http&ca_cert=" + ca, wantErr: true},
		{name: "missing ca file", giveURL: "etcd3://h?ca_cert=" + filepath.Join(dir, "none.pem"), wantErr: true},
		{name: "cert without key", giveURL: "etcd3://h?cert_cert=" + ca, wantErr: true},
		{name: "path", giveURL: "etcd3://h/prefix", wantErr: true},
		{name: "user without password", giveURL: "etcd3://u@h", wantErr: true},
		{name: "empty namespace", giveURL: "etcd3://h?namespace=", wantErr: true},
		{name: "bad protocol", giveURL: "etcd3://h?protocol=grpc", wantErr: true, wantParse: true},
		{name: "typo", giveURL: "etcd3://h?lock_timout=5", wantErr: true, wantParse: true},
		{name: "sub-second TTL", giveURL: "etcd3://h?lock_timeout=0.5", wantErr: true, wantParse: true},
		{name: "zero timeout", giveURL: "etcd3://h?timeout=0", wantErr: true, wantParse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.giveURL)
			// Settings refused by resolve are refused by ParseURL too
			// (the driver's Check runs it), as Open and explain do.
			if tt.wantParse || tt.wantErr {
				if !errors.Is(err, backend.ErrInvalidArgument) {
					t.Fatalf("ParseURL = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := resolve(driverConfig(cfg))
			if tt.wantErr {
				if !testutil.CodeIs(err, driver.CodeInvalidArgument) {
					t.Fatalf("resolve = %v, want CodeInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.endpoints, tt.wantEps) || s.leaseTTL != tt.wantTTL || s.requestTimeout != tt.wantReq ||
				s.dialTimeout != tt.wantDial || (s.tls != nil) != tt.wantTLS || s.namespace != tt.wantNS || s.username != tt.wantUser {
				t.Fatalf("resolve = %+v", s)
			}
		})
	}
}

func TestPasswordNotShown(t *testing.T) {
	cfg, err := backend.ParseURL("etcd3://user:hunter2@h?namespace=x")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.Redacted, "hunter2") {
		t.Fatalf("redacted URL shows the password: %s", cfg.Redacted)
	}
}
