package consulbackend

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
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
	t.Setenv(tokenEnv, "")
	tests := []struct {
		name       string
		giveURL    string
		wantErr    bool
		wantAddr   string
		wantTTL    time.Duration
		wantReq    time.Duration
		wantDelay  time.Duration
		wantScheme string
		wantNS     string
		wantToken  string
		wantDC     string
	}{
		{name: "defaults", giveURL: "consul://", wantAddr: "localhost:8500", wantTTL: 15 * time.Second, wantReq: 5 * time.Second, wantScheme: "http", wantNS: "baton"},
		{name: "tooz form", giveURL: "consul://127.0.0.1:8500?ttl=20&namespace=tooz&acl_token=tok", wantAddr: "127.0.0.1:8500", wantTTL: 20 * time.Second, wantReq: 5 * time.Second, wantScheme: "http", wantNS: "tooz", wantToken: "tok"},
		{name: "port added", giveURL: "consul://[::1]", wantAddr: "[::1]:8500", wantTTL: 15 * time.Second, wantReq: 5 * time.Second, wantScheme: "http", wantNS: "baton"},
		{name: "ttl rounded up", giveURL: "consul://h?ttl=2.5s&timeout=250ms&lock_delay=5&datacenter=dc2", wantAddr: "h:8500", wantTTL: 3 * time.Second, wantReq: 250 * time.Millisecond, wantDelay: 5 * time.Second, wantScheme: "http", wantNS: "baton", wantDC: "dc2"},
		{name: "https", giveURL: "consul://h:8501?protocol=https", wantAddr: "h:8501", wantTTL: 15 * time.Second, wantReq: 5 * time.Second, wantScheme: "https", wantNS: "baton"},
		{name: "compat=tooz: tooz's namespace", giveURL: "consul://h?compat=tooz", wantAddr: "h:8500", wantTTL: 15 * time.Second, wantReq: 5 * time.Second, wantScheme: "http", wantNS: "tooz"},
		{name: "compat=tooz: own namespace", giveURL: "consul://h?compat=tooz&namespace=a/b", wantAddr: "h:8500", wantTTL: 15 * time.Second, wantReq: 5 * time.Second, wantScheme: "http", wantNS: "a/b"},
		{name: "compat=tooz: namespace tooz cannot write", giveURL: "consul://h?compat=tooz&namespace=a/../b", wantErr: true},
		{name: "two hosts", giveURL: "consul://h1,h2", wantErr: true},
		{name: "user info", giveURL: "consul://u:p@h", wantErr: true},
		{name: "path", giveURL: "consul://h/prefix", wantErr: true},
		{name: "empty namespace", giveURL: "consul://h?namespace=", wantErr: true},
		{name: "lock delay above Consul's", giveURL: "consul://h?lock_delay=61s", wantErr: true},
		{name: "cert without key", giveURL: "consul://h?cert_cert=/x.pem", wantErr: true},
		{name: "missing ca file", giveURL: "consul://h?ca_cert=/nonexistent/ca.pem", wantErr: true},
		{name: "http contradicts TLS", giveURL: "consul://h?protocol=http&ca_cert=/x.pem", wantErr: true},
		{name: "bad protocol", giveURL: "consul://h?protocol=grpc", wantErr: true},
		{name: "typo", giveURL: "consul://h?acl_tokn=x", wantErr: true},
		{name: "sub-second TTL", giveURL: "consul://h?ttl=0.5", wantErr: true},
		{name: "negative lock delay", giveURL: "consul://h?lock_delay=-1s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.giveURL)
			if tt.wantErr {
				// ParseURL checks the option table and runs the driver's
				// Check, which is resolve: both refusals surface here.
				if !errors.Is(err, backend.ErrInvalidArgument) {
					t.Fatalf("ParseURL = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := resolve(driverConfig(cfg))
			if err != nil {
				t.Fatal(err)
			}
			if s.address != tt.wantAddr || s.ttl != tt.wantTTL || s.timeout != tt.wantReq || s.lockDelay != tt.wantDelay ||
				s.scheme != tt.wantScheme || s.namespace != tt.wantNS || s.token != tt.wantToken || s.datacenter != tt.wantDC {
				t.Fatalf("resolve = %+v", s)
			}
		})
	}
}

// The ACL token comes from CONSUL_HTTP_TOKEN when acl_token is absent;
// an explicit acl_token (even empty) wins.
func TestTokenFromEnvironment(t *testing.T) {
	t.Setenv(tokenEnv, "from-env")
	tests := []struct {
		giveURL   string
		wantToken string
	}{
		{giveURL: "consul://h", wantToken: "from-env"},
		{giveURL: "consul://h?acl_token=explicit", wantToken: "explicit"},
		{giveURL: "consul://h?acl_token=", wantToken: ""},
	}
	for _, tt := range tests {
		cfg, err := backend.ParseURL(tt.giveURL)
		if err != nil {
			t.Fatal(err)
		}
		s, err := resolve(driverConfig(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if s.token != tt.wantToken {
			t.Errorf("%s: token %q, want %q", tt.giveURL, s.token, tt.wantToken)
		}
	}
}

// The token never shows in the redacted URL nor in explain output.
func TestTokenNeverShown(t *testing.T) {
	const secret = "s3cr3t-token-value"
	cfg, err := backend.ParseURL("consul://h?acl_token=" + secret)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.Redacted, secret) {
		t.Errorf("redacted URL shows the token: %s", cfg.Redacted)
	}
	if out := backend.Explain(cfg); strings.Contains(out, secret) {
		t.Errorf("explain shows the token:\n%s", out)
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	names := []string{"plain", ".", "..", "...", "a.b", "a/b", "%", "%2F", "a b", "日本", string(all), "-_.~"}
	seen := map[string]string{}
	for _, n := range names {
		e := escape(n)
		if strings.ContainsRune(e, '/') || strings.Trim(e, ".") == "" {
			t.Errorf("escape(%q) = %q: a path separator or a dot segment", n, e)
		}
		got, err := unescape(e)
		if err != nil || got != n {
			t.Errorf("unescape(escape(%q)) = %q, %v", n, got, err)
		}
		if prev, ok := seen[e]; ok {
			t.Errorf("%q and %q both escape to %q", prev, n, e)
		}
		seen[e] = n
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"a", "..", "%2F", "a/b", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return
		}
		e := escape(s)
		if strings.ContainsRune(e, '/') || strings.Trim(e, ".") == "" {
			t.Fatalf("escape(%q) = %q", s, e)
		}
		got, err := unescape(e)
		if err != nil || got != s {
			t.Fatalf("unescape(escape(%q)) = %q, %v", s, got, err)
		}
	})
}
