package etcdgwbackend

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
	d30 := 30 * time.Second
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
		wantAPI   string
		wantParse bool // the error comes from ParseURL
	}{
		{name: "tooz defaults", giveURL: "etcd3+http://", wantEps: []string{"localhost:2379"}, wantTTL: d30, wantReq: d30, wantDial: d30, wantNS: "baton", wantAPI: "auto"},
		{name: "port added", giveURL: "etcd3+http://h1,h2:2380,[::1]", wantEps: []string{"h1:2379", "h2:2380", "[::1]:2379"}, wantTTL: d30, wantReq: d30, wantDial: d30, wantNS: "baton", wantAPI: "auto"},
		{name: "timeout sets both TTLs", giveURL: "etcd3+http://h?timeout=7", wantEps: []string{"h:2379"}, wantTTL: 7 * time.Second, wantReq: 7 * time.Second, wantDial: 7 * time.Second, wantNS: "baton", wantAPI: "auto"},
		{name: "smaller TTL wins", giveURL: "etcd3+http://h?lock_timeout=9&membership_timeout=4s&dial_timeout=250ms", wantEps: []string{"h:2379"}, wantTTL: 4 * time.Second, wantReq: d30, wantDial: 250 * time.Millisecond, wantNS: "baton", wantAPI: "auto"},
		{name: "tooz api_version", giveURL: "etcd3+http://h?api_version=v3beta", wantEps: []string{"h:2379"}, wantTTL: d30, wantReq: d30, wantDial: d30, wantNS: "baton", wantAPI: "v3beta"},
		{name: "namespace", giveURL: "etcd3+http://u:p@h/?namespace=app/prod", wantEps: []string{"h:2379"}, wantTTL: d30, wantReq: d30, wantDial: d30, wantNS: "app/prod", wantAPI: "auto"},
		{name: "https", giveURL: "etcd3+https://h", wantEps: []string{"h:2379"}, wantTTL: d30, wantReq: d30, wantDial: d30, wantTLS: true, wantNS: "baton", wantAPI: "auto"},
		{name: "https with protocol", giveURL: "etcd3+https://h?protocol=https&ca_cert=" + ca, wantEps: []string{"h:2379"}, wantTTL: d30, wantReq: d30, wantDial: d30, wantTLS: true, wantNS: "baton", wantAPI: "auto"},
		{name: "protocol contradicts the scheme", giveURL: "etcd3+http://h?protocol=https", wantErr: true},
		{name: "TLS option on http", giveURL: "etcd3+http://h?ca_cert=" + ca, wantErr: true},
		{name: "missing ca file", giveURL: "etcd3+https://h?ca_cert=" + filepath.Join(dir, "none.pem"), wantErr: true},
		{name: "cert without key", giveURL: "etcd3+https://h?cert_cert=" + ca, wantErr: true},
		{name: "path", giveURL: "etcd3+http://h/v3", wantErr: true},
		{name: "user without password", giveURL: "etcd3+http://u@h", wantErr: true},
		{name: "empty namespace", giveURL: "etcd3+http://h?namespace=", wantErr: true},
		{name: "unknown api_version", giveURL: "etcd3+http://h?api_version=v4", wantErr: true, wantParse: true},
		{name: "bad protocol", giveURL: "etcd3+http://h?protocol=grpc", wantErr: true, wantParse: true},
		{name: "unknown option", giveURL: "etcd3+http://h?lock_timout=5", wantErr: true, wantParse: true},
		{name: "sub-second TTL", giveURL: "etcd3+http://h?lock_timeout=0.5", wantErr: true, wantParse: true},
		{name: "zero timeout", giveURL: "etcd3+http://h?timeout=0", wantErr: true, wantParse: true},
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
				s.dialTimeout != tt.wantDial || (s.tls != nil) != tt.wantTLS || s.namespace != tt.wantNS || s.apiVersion != tt.wantAPI ||
				(s.scheme == "https") != tt.wantTLS {
				t.Fatalf("resolve = %+v", s)
			}
		})
	}
}

// An unknown option is refused with its closest match, never silently.
func TestUnknownOption(t *testing.T) {
	_, err := backend.Open(testCtx(t), "etcd3+http://127.0.0.1:1?api_verison=v3")
	if !errors.Is(err, backend.ErrInvalidArgument) || !strings.Contains(err.Error(), "api_version") {
		t.Fatalf("Open = %v, want ErrInvalidArgument suggesting api_version", err)
	}
}

func TestPasswordNotShown(t *testing.T) {
	cfg, err := backend.ParseURL("etcd3+http://user:hunter2@h?namespace=x")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.Redacted, "hunter2") {
		t.Fatalf("redacted URL shows the password: %s", cfg.Redacted)
	}
}

func TestAPIPathFor(t *testing.T) {
	tests := []struct {
		give, want string
		wantErr    bool
	}{
		{give: "3.2.32", want: "v3alpha"}, {give: "3.3.27", want: "v3beta"}, {give: "3.4.23", want: "v3"},
		{give: "3.5.0", want: "v3"}, {give: "3.6.1", want: "v3"}, {give: "4.0.0", want: "v3"},
		{give: "2.3.8", wantErr: true}, {give: "banana", wantErr: true}, {give: "3", wantErr: true},
	}
	for _, tt := range tests {
		got, err := apiPathFor(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("apiPathFor(%q) = %q, %v; want %q (error %v)", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ give, want string }{
		{give: "a/", want: "a0"}, {give: "a\xff", want: "b"}, {give: "\xff\xff", want: "\x00"},
	}
	for _, tt := range tests {
		if got := string(prefixEnd(tt.give)); got != tt.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
