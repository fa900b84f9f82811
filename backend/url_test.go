package backend_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/redisbackend"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name         string
		give         string
		wantScheme   string
		wantHosts    []string
		wantUser     string
		wantPassword string
		wantPassSet  bool
		wantPath     string
	}{
		{name: "scheme case", give: "MEM://store", wantScheme: "mem", wantHosts: []string{"store"}},
		{name: "mixed case scheme", give: "ReDiS://h:6379", wantScheme: "redis", wantHosts: []string{"h:6379"}},
		{name: "alias scheme", give: "rediss://h", wantScheme: "rediss", wantHosts: []string{"h"}},
		{name: "no host", give: "mem://", wantScheme: "mem"},
		{name: "multiple hosts", give: "redis://h1:1,h2,h3:65535?sentinel=m", wantScheme: "redis", wantHosts: []string{"h1:1", "h2", "h3:65535"}},
		{name: "ipv6 with port", give: "redis://[::1]:6379", wantScheme: "redis", wantHosts: []string{"[::1]:6379"}},
		{name: "ipv6 without port", give: "redis://[2001:db8::1]", wantScheme: "redis", wantHosts: []string{"[2001:db8::1]"}},
		{name: "ipv6 host list", give: "redis://[::1]:26379,[::1]:26380?sentinel=m", wantScheme: "redis", wantHosts: []string{"[::1]:26379", "[::1]:26380"}},
		{name: "user and password", give: "redis://user:pw@h", wantScheme: "redis", wantHosts: []string{"h"}, wantUser: "user", wantPassword: "pw", wantPassSet: true},
		{name: "password only", give: "redis://:pw@h", wantScheme: "redis", wantHosts: []string{"h"}, wantPassword: "pw", wantPassSet: true},
		{name: "empty password", give: "redis://user:@h", wantScheme: "redis", wantHosts: []string{"h"}, wantUser: "user", wantPassSet: true},
		{name: "user only", give: "redis://user@h", wantScheme: "redis", wantHosts: []string{"h"}, wantUser: "user"},
		{
			name: "escaped userinfo", give: "redis://us%40er%3A1:p%3Ass%2Fw%40rd%3F%23%25@h",
			wantScheme: "redis", wantHosts: []string{"h"}, wantUser: "us@er:1", wantPassword: "p:ss/w@rd?#%", wantPassSet: true,
		},
		{name: "unescaped @ in password", give: "redis://u:p@ss@h", wantScheme: "redis", wantHosts: []string{"h"}, wantUser: "u", wantPassword: "p@ss", wantPassSet: true},
		{name: "unicode password", give: "redis://u:p%C3%A4ss@h", wantScheme: "redis", wantHosts: []string{"h"}, wantUser: "u", wantPassword: "päss", wantPassSet: true},
		{name: "userinfo without host", give: "redis://:pw@/var/run/redis.sock", wantScheme: "redis", wantPassword: "pw", wantPassSet: true, wantPath: "/var/run/redis.sock"},
		{name: "escaped path", give: "file:///tmp/a%20b/%C3%A4", wantScheme: "file", wantPath: "/tmp/a b/ä"},
		{name: "path and query", give: "redis://h/3?timeout=2", wantScheme: "redis", wantHosts: []string{"h"}, wantPath: "/3"},
		{name: "empty query items", give: "file:///tmp?&timeout=2&", wantScheme: "file", wantPath: "/tmp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.give)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.give, err)
			}
			if cfg.Scheme != tt.wantScheme || !slices.Equal(cfg.Hosts, tt.wantHosts) || cfg.Path != tt.wantPath {
				t.Errorf("scheme %q hosts %q path %q; want %q %q %q", cfg.Scheme, cfg.Hosts, cfg.Path, tt.wantScheme, tt.wantHosts, tt.wantPath)
			}
			if cfg.Username != tt.wantUser || cfg.Password != tt.wantPassword || cfg.PasswordSet != tt.wantPassSet {
				t.Errorf("user %q password %q set %v; want %q %q %v", cfg.Username, cfg.Password, cfg.PasswordSet, tt.wantUser, tt.wantPassword, tt.wantPassSet)
			}
			if tt.wantPassword != "" && strings.Contains(cfg.Redacted, tt.wantPassword) {
				t.Errorf("Redacted %q contains the password", cfg.Redacted)
			}
			again, err := backend.ParseURL(cfg.Redacted)
			if err != nil {
				t.Fatalf("the redacted URL %q does not parse: %v", cfg.Redacted, err)
			}
			if again.Username != cfg.Username || !slices.Equal(again.Hosts, cfg.Hosts) || again.Path != cfg.Path || again.PasswordSet != cfg.PasswordSet {
				t.Errorf("redacted %q parses to user %q hosts %q path %q set %v", cfg.Redacted, again.Username, again.Hosts, again.Path, again.PasswordSet)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		name     string
		give     string
		wantHint string // a text the message must contain, for errors that suggest a fix
	}{
		{name: "no scheme", give: "localhost:6379", wantHint: "scheme"},
		{name: "empty scheme", give: "://h"},
		{name: "single slash", give: "redis:/h"},
		{name: "bad scheme character", give: "re_dis://h", wantHint: "invalid scheme"},
		{name: "scheme starting with a digit", give: "1redis://h"},
		{name: "unknown known scheme", give: "consul://h:8500", wantHint: `import _ "github.com/baton-go/baton/backend/consulbackend"`},
		{name: "unknown known alias", give: "kazoo://h", wantHint: "backend/zkbackend"},
		{name: "unknown scheme lists registered", give: "nosuch://h", wantHint: "mem, mempoll"},
		{name: "unknown scheme hints at all", give: "nosuch://h", wantHint: "backend/all"},
		{name: "port zero", give: "redis://h:0"},
		{name: "port too large", give: "redis://h:65536"},
		{name: "port not a number", give: "redis://h:http", wantHint: "port"},
		{name: "port with sign", give: "redis://h:+80"},
		{name: "negative port", give: "redis://h:-1"},
		{name: "port without host", give: "redis://:6379"},
		{name: "bare colon", give: "redis://:"},
		{name: "bare ipv6", give: "redis://::1", wantHint: "brackets"},
		{name: "bare ipv6 with port", give: "redis://fe80::1:6379", wantHint: "brackets"},
		{name: "unclosed bracket", give: "redis://[::1:6379"},
		{name: "junk after bracket", give: "redis://[::1]6379"},
		{name: "empty brackets", give: "redis://[]:6379"},
		{name: "empty host item", give: "redis://h1,,h2"},
		{name: "trailing comma", give: "redis://h1,"},
		{name: "leading comma", give: "redis://,h1"},
		{name: "space in host", give: "redis://h 1"},
		{name: "fragment", give: "redis://h#frag"},
		{name: "fragment in query", give: "redis://h?db=1#x"},
		{name: "semicolon", give: "redis://h?db=1;timeout=2", wantHint: "'&'"},
		{name: "malformed user escape", give: "redis://u%zz@h"},
		{name: "malformed password escape", give: "redis://u:p%zz@h"},
		{name: "malformed path escape", give: "file:///tmp/%zz"},
		{name: "malformed query key escape", give: "redis://h?%zz=1"},
		{name: "malformed query value escape", give: "redis://h?namespace=%zz"},
		{name: "misspelt option", give: "file:///tmp/x?timout=5", wantHint: `did you mean "timeout"`},
		{name: "unknown option lists valid", give: "file:///tmp/x?zzzzzzzz=5", wantHint: "valid: "},
		{name: "unknown option of mem", give: "mem://s?timeout=5", wantHint: `valid: liveness, lock_ttl, ttl`},
		{name: "repeated single-valued key", give: "redis://h?db=1&db=2", wantHint: "2 times"},
		{name: "bad boolean", give: "redis://h?ssl=ture"},
		{name: "bad duration", give: "file:///tmp?timeout=soon"},
		{name: "empty list item", give: "redis://h?sentinel=m&sentinel_fallback="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.give)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %+v; want an error", tt.give, cfg)
			}
			wantErr(t, err, backend.ErrInvalidArgument, "ParseURL")
			wantOnce(t, err, "ParseURL")
			if !strings.Contains(err.Error(), tt.wantHint) {
				t.Errorf("error %q does not say %q", err, tt.wantHint)
			}
		})
	}
}

func TestParseURLLists(t *testing.T) {
	cfg, err := backend.ParseURL("redis://s1?sentinel=m&sentinel_fallback=s2:1&sentinel_fallback=s3:2")
	must(t, err, "parse")
	if got := cfg.Options.Strings("sentinel_fallback"); !slices.Equal(got, []string{"s2:1", "s3:2"}) {
		t.Errorf("sentinel_fallback = %q; want both items in order", got)
	}
	cfg, err = backend.ParseURL("file:///tmp?timeout=2.5&fsync=on")
	must(t, err, "parse")
	if d := cfg.Options.Duration("timeout"); d != 2500*time.Millisecond || !cfg.Options.Bool("fsync") {
		t.Errorf("timeout %v fsync %v; want 2.5s true", d, cfg.Options.Bool("fsync"))
	}
}

// Passwords and secret options never appear in errors, Redacted, String or
// Explain.
func TestParseURLNeverShowsSecrets(t *testing.T) {
	const pw, secret = "hunter2pw", "s3cr3tval"
	okTests := []struct {
		name string
		give string
	}{
		{name: "userinfo", give: "redis://user:" + pw + "@h"},
		{name: "password only", give: "redis://:" + pw + "@h:6379/2"},
		{name: "secret option", give: "redis://h?sentinel=m&sentinel_password=" + secret},
		{name: "both", give: "redis://u:" + pw + "@h1,h2?sentinel=m&sentinel_password=" + secret + "&timeout=3"},
		{name: "escaped secret option key", give: "redis://h?sentinel=m&sentinel%5Fpassword=" + secret},
	}
	for _, tt := range okTests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.give)
			must(t, err, "parse")
			for what, s := range map[string]string{"Redacted": cfg.Redacted, "String": cfg.String(), "Explain": backend.Explain(cfg)} {
				if strings.Contains(s, pw) || strings.Contains(s, secret) {
					t.Errorf("%s shows a secret: %q", what, s)
				}
				if !strings.Contains(s, "xxxxx") && what != "Explain" {
					t.Errorf("%s does not mark the hidden secret: %q", what, s)
				}
			}
		})
	}
	errTests := []struct {
		name string
		give string
	}{
		{name: "unknown option", give: "redis://u:" + pw + "@h?bogus=1"},
		{name: "unknown key named like a password", give: "redis://u:" + pw + "@h?password=" + secret},
		{name: "misspelt password key", give: "redis://h?pasword=" + secret},
		{name: "misspelt secret option", give: "redis://h?sentinel_pasword=" + secret},
		{name: "unknown key named otherwise", give: "redis://h?db=1&colour=" + secret},
		{name: "secret option with a bad neighbour", give: "redis://u:" + pw + "@h?sentinel_password=" + secret + "&db=x"},
		{name: "bad port", give: "redis://u:" + pw + "@h:99999"},
		{name: "empty host item", give: "redis://u:" + pw + "@h,,x"},
		{name: "fragment", give: "redis://u:" + pw + "@h#x"},
		{name: "malformed password escape", give: "redis://u:" + pw + "%zz@h"},
		{name: "malformed escape after password", give: "redis://u:" + pw + "@h?%zz=1"},
		{name: "semicolon", give: "redis://u:" + pw + "@h?db=1;x=2"},
		{name: "unknown scheme", give: "consul://u:" + pw + "@h"},
		{name: "slash in password", give: "redis://u:" + pw[:4] + "/" + pw[4:] + "@h"},
		{name: "question mark in password", give: "redis://u:" + pw[:4] + "?" + pw[4:] + "@h"},
		{name: "hash in password", give: "redis://u:" + pw[:4] + "#" + pw[4:] + "@h"},
		{name: "no scheme", give: "u:" + pw + "@h://x"},
		{name: "bad boolean", give: "redis://u:" + pw + "@h?sentinel_fallback=x:1&ssl=maybe"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := backend.ParseURL(tt.give)
			if err == nil {
				t.Fatalf("ParseURL(%q) succeeded; want an error", tt.give)
			}
			wantErr(t, err, backend.ErrInvalidArgument, "ParseURL")
			for _, s := range []string{pw, pw[:4], pw[4:], secret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret %q: %v", s, err)
				}
			}
		})
	}
}

// FuzzParseURL checks that ParseURL never panics, that its errors are
// always coded invalid argument, that neither its errors nor its redacted
// output ever contain a password given in the user information, and that
// the redacted form parses back to the same configuration.
func FuzzParseURL(f *testing.F) {
	for _, seed := range [][4]string{
		{"redis", "user", "pw", "h:6379?db=1"},
		{"REDIS", "", "pw", "[::1]:1,h2?sentinel=m&sentinel_password=x"},
		{"mem", "u", "p", "store"},
		{"file", "", "", "/tmp/x?timout=5"},
		{"consul", "u%40", "p%zz", "h"},
		{"redis", "u", "p@q", "h:0"},
		{"redis", "a", "b", "h?x=1;y=2"},
		{"redis", "a", "b", "h#f"},
		{"rediss", "a b", "c", ",,"},
		{"mempoll", "", "", "s/x"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	const marker = "Zq9pW"
	f.Fuzz(func(t *testing.T, scheme, user, pass, rest string) {
		raw := scheme + "://" + user + ":" + marker + pass + "@" + rest
		if strings.Index(raw, "://") != len(scheme) || strings.ContainsAny(user+pass, "/?#") {
			return // the marker would not be in the user information
		}
		others := scheme + "\x00" + user + "\x00" + rest
		for _, s := range []string{others, unescape(url.PathUnescape, others), unescape(url.QueryUnescape, others)} {
			if strings.Contains(strings.ToLower(s), strings.ToLower(marker)) {
				return // the marker appears outside the password
			}
		}
		cfg, err := backend.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("ParseURL(%q): error %v is not coded invalid argument", raw, err)
			}
			if strings.Contains(err.Error(), marker) {
				t.Fatalf("ParseURL(%q): error shows the password: %v", raw, err)
			}
			return
		}
		if !strings.Contains(cfg.Password, marker) || !cfg.PasswordSet {
			t.Fatalf("ParseURL(%q): password %q is not the one given", raw, cfg.Password)
		}
		for what, s := range map[string]string{"Redacted": cfg.Redacted, "String": cfg.String(), "Explain": backend.Explain(cfg)} {
			if strings.Contains(s, marker) {
				t.Fatalf("ParseURL(%q): %s shows the password: %q", raw, what, s)
			}
		}
		again, err := backend.ParseURL(cfg.Redacted)
		if err != nil {
			t.Fatalf("ParseURL(%q): the redacted form %q does not parse: %v", raw, cfg.Redacted, err)
		}
		if again.Username != cfg.Username || !slices.Equal(again.Hosts, cfg.Hosts) || again.Path != cfg.Path || !again.PasswordSet {
			t.Fatalf("ParseURL(%q): redacted %q parses to user %q hosts %q path %q; want %q %q %q",
				raw, cfg.Redacted, again.Username, again.Hosts, again.Path, cfg.Username, cfg.Hosts, cfg.Path)
		}
	})
}

func unescape(f func(string) (string, error), s string) string {
	if u, err := f(s); err == nil {
		return u
	}
	return s
}
