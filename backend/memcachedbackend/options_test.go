package memcachedbackend

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// parse parses a connection string as Open would, without a server.
func parse(t *testing.T, u string) (*settings, error) {
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
			if _, err := parse(t, u); err != nil {
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
		{"tooz defaults", "memcached://", func(s *settings) bool {
			return slices.Equal(s.servers, []string{"localhost:11211"}) && s.namespace == "baton" &&
				s.membershipTimeout == 30*time.Second && s.lockTimeout == 30*time.Second &&
				s.leaderTimeout == 30*time.Second && s.socketTimeout == 10*time.Second && s.maxPool == 0
		}},
		{"timeout is every default", "memcached://h:1?timeout=7", func(s *settings) bool {
			return s.membershipTimeout == 7*time.Second && s.lockTimeout == 7*time.Second &&
				s.leaderTimeout == 7*time.Second && s.socketTimeout == 7*time.Second/3
		}},
		{"explicit timeouts win", "memcached://h?timeout=7&membership_timeout=2.5&lock_timeout=3s&leader_timeout=4&socket_timeout=0.25", func(s *settings) bool {
			return s.membershipTimeout == 2500*time.Millisecond && s.lockTimeout == 3*time.Second &&
				s.leaderTimeout == 4*time.Second && s.socketTimeout == 250*time.Millisecond
		}},
		{"several servers, in order", "memcached://a,b:2,[::1]:3,[::1]", func(s *settings) bool {
			return slices.Equal(s.servers, []string{"a:11211", "b:2", "[::1]:3", "[::1]:11211"})
		}},
		{"max_pool_size", "memcached://h?max_pool_size=4", func(s *settings) bool { return s.maxPool == 4 }},
		{"executor accepted", "memcached://h?executor=synchronous", func(*settings) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parse(t, tt.give)
			if err != nil {
				t.Fatalf("%s: %v", tt.give, err)
			}
			if !tt.want(s) {
				t.Fatalf("%s: unexpected settings %+v", tt.give, s)
			}
		})
	}
}

func TestSettingsRefused(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"user information", "memcached://u:p@h"},
		{"path", "memcached://h/x"},
		{"namespace with a space", "memcached://h?namespace=a%20b"},
		{"namespace with a colon", "memcached://h?namespace=a:b"},
		{"long namespace", "memcached://h?namespace=" + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"TTL below a second", "memcached://h?lock_timeout=0.5"},
		{"TTL above 30 days", "memcached://h?membership_timeout=2592001"},
		{"server twice", "memcached://h,h:11211"},
		{"unknown executor", "memcached://h?executor=process"},
		{"negative pool", "memcached://h?max_pool_size=-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.give)
			if !errors.Is(err, backend.ErrInvalidArgument) && codeOf(err) != driver.CodeInvalidArgument {
				t.Fatalf("%s: err %v; want invalid argument", tt.give, err)
			}
		})
	}
}

func TestKeyTTL(t *testing.T) {
	tests := []struct {
		give time.Duration
		want int32
	}{
		{time.Second, 2},
		{1500 * time.Millisecond, 3},
		{30 * time.Second, 31},
		{maxTTL, int32(maxTTL / time.Second)},
	}
	for _, tt := range tests {
		if got := keyTTL(tt.give); got != tt.want {
			t.Errorf("keyTTL(%v) = %d; want %d", tt.give, got, tt.want)
		}
	}
}
