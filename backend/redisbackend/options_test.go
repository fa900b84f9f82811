package redisbackend

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// settingsOf parses a connection string as Open would, without a server.
func settingsOf(t *testing.T, u string) (*settings, error) {
	t.Helper()
	cfg, err := backend.ParseURL(u)
	if err != nil {
		return nil, err
	}
	return parseSettings(&driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
	})
}

func TestExamplesParse(t *testing.T) {
	for _, u := range info().Examples {
		t.Run(u, func(t *testing.T) {
			_, err := settingsOf(t, u)
			if errors.Is(err, fs.ErrNotExist) {
				return // it names TLS files this machine lacks; all else was checked first
			}
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name string
		give string
		want func(*settings) bool
	}{
		{"tooz defaults", "redis://localhost", func(s *settings) bool {
			return s.network == "tcp" && s.addr == "localhost:6379" && s.db == 0 && s.namespace == "baton" &&
				s.socketTimeout == 30*time.Second && s.connectTimeout == 30*time.Second &&
				s.membershipTimeout == 30*time.Second && s.lockTimeout == 30*time.Second &&
				!s.ssl && !s.keepAlive && !s.retryOnTimeout && s.master == ""
		}},
		{"timeout is every default", "redis://h:1?timeout=7", func(s *settings) bool {
			return s.socketTimeout == 7*time.Second && s.connectTimeout == 7*time.Second &&
				s.membershipTimeout == 7*time.Second && s.lockTimeout == 7*time.Second
		}},
		{"explicit timeouts win", "redis://h?timeout=7&membership_timeout=2.5&lock_timeout=250ms&socket_timeout=1&socket_connect_timeout=3", func(s *settings) bool {
			return s.membershipTimeout == 2500*time.Millisecond && s.lockTimeout == 250*time.Millisecond &&
				s.socketTimeout == time.Second && s.connectTimeout == 3*time.Second
		}},
		{"connect timeout follows socket timeout", "redis://h?socket_timeout=4", func(s *settings) bool {
			return s.connectTimeout == 4*time.Second
		}},
		{"credentials", "redis://user:p%40ss@h", func(s *settings) bool {
			return s.username == "user" && s.password == "p@ss"
		}},
		{"tooz password form", "redis://:secret@h:7000", func(s *settings) bool {
			return s.username == "" && s.password == "secret" && s.addr == "h:7000"
		}},
		{"db in the path", "redis://h/5", func(s *settings) bool { return s.db == 5 }},
		{"db option", "redis://h/?db=3", func(s *settings) bool { return s.db == 3 }},
		{"same db twice", "redis://h/3?db=3", func(s *settings) bool { return s.db == 3 }},
		{"ipv6", "redis://[::1]", func(s *settings) bool { return s.addr == "[::1]:6379" }},
		{"unix socket", "redis:///var/run/redis.sock?db=2", func(s *settings) bool {
			return s.network == "unix" && s.addr == "/var/run/redis.sock" && s.db == 2
		}},
		{"rediss", "rediss://h", func(s *settings) bool { return s.ssl }},
		{"keepalive as a number", "redis://h?socket_keepalive=1", func(s *settings) bool { return s.keepAlive }},
		{"sentinels", "redis://s1,s2:26380?sentinel=m&sentinel_fallback=s3:1&sentinel_fallback=[::1]", func(s *settings) bool {
			return s.master == "m" && strings.Join(s.sentinels, " ") == "s1:26379 s2:26380 s3:1 [::1]:26379"
		}},
		{"sentinel credentials", "redis://u:p@s?sentinel=m&sentinel_username=su&sentinel_password=sp&sentinel_ssl=yes", func(s *settings) bool {
			return s.username == "u" && s.password == "p" && s.sentinelUsername == "su" && s.sentinelPassword == "sp" && s.sentinelSSL && !s.ssl
		}},
		{"encoding spellings", "redis://h?encoding=UTF-8", func(s *settings) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := settingsOf(t, tt.give)
			if err != nil {
				t.Fatalf("%s: %v", tt.give, err)
			}
			if !tt.want(s) {
				t.Fatalf("%s: unexpected settings %+v", tt.give, *s)
			}
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"unknown option", "redis://h?lock_timout=5"},
		{"bad boolean", "redis://h?ssl=ture"},
		{"zero timeout", "redis://h?timeout=0"},
		{"negative db", "redis://h?db=-1"},
		{"no host no path", "redis://"},
		{"two hosts without sentinel", "redis://a,b"},
		{"path is not a db", "redis://h/x"},
		{"db contradicts path", "redis://h/1?db=2"},
		{"rediss without ssl", "rediss://h?ssl=false"},
		{"key without cert", "redis://h?ssl=true&ssl_keyfile=k.pem"},
		{"cert without tls", "redis://h?ssl_certfile=c.pem"},
		{"fallback without sentinel", "redis://h?sentinel_fallback=x:1"},
		{"sentinel password without sentinel", "redis://h?sentinel_password=x"},
		{"sentinel without host", "redis:///sock?sentinel=m"},
		{"sentinel with a path", "redis://s/2?sentinel=m"},
		{"bad fallback port", "redis://s?sentinel=m&sentinel_fallback=x:99999"},
		{"unbracketed ipv6 fallback", "redis://s?sentinel=m&sentinel_fallback=::1:5"},
		{"tls over unix", "rediss:///var/run/redis.sock"},
		{"other encoding", "redis://h?encoding=latin1"},
		{"unknown executor", "redis://h?executor=eventlet"},
		{"empty namespace", "redis://h?namespace="},
		{"repeated single option", "redis://h?db=1&db=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := settingsOf(t, tt.give)
			if !errors.Is(err, backend.ErrInvalidArgument) && codeOf(err) != driver.CodeInvalidArgument {
				t.Fatalf("%s: got %v, want an invalid-argument error", tt.give, err)
			}
		})
	}
}

func TestSecretsRedacted(t *testing.T) {
	cfg, err := backend.ParseURL("redis://u:topsecret@s?sentinel=m&sentinel_password=alsosecret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.Redacted, "secret") {
		t.Fatalf("redacted URL shows a secret: %s", cfg.Redacted)
	}
	_, err = backend.ParseURL("redis://u:topsecret@s?sentinel=m&sentinel_password=alsosecret&bogus=1")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows a secret or is missing: %v", err)
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"3.2.0", true}, {"3.0.7", false}, {"3.2.12", true}, {"7.0.15", true}, {"2.8.24", false}, {"garbage", false}, {"4", true}, {"3", false},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.give, 3, 2, 0); got != tt.want {
			t.Errorf("versionAtLeast(%q) = %v; want %v", tt.give, got, tt.want)
		}
	}
}
