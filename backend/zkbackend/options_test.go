package zkbackend

import (
	"errors"
	"io/fs"
	"slices"
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
func TestExamples(t *testing.T) {
	for _, ex := range Info().Examples {
		t.Run(ex, func(t *testing.T) {
			cfg, err := driverConfig(t, ex)
			if errors.Is(err, fs.ErrNotExist) {
				return // it names TLS files this machine lacks; all else was checked first
			}
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

func TestParseSettings(t *testing.T) {
	tests := []struct {
		give          string
		wantServers   []string
		wantRoot      string
		wantTimeout   time.Duration
		wantRandomize bool
		wantAuth      bool
	}{
		{give: "zookeeper://", wantServers: []string{"localhost:2181"}, wantRoot: "/baton", wantTimeout: 10 * time.Second, wantRandomize: true},
		{give: "kazoo://zk1,zk2:2182,[::1]", wantServers: []string{"zk1:2181", "zk2:2182", "[::1]:2181"}, wantRoot: "/baton", wantTimeout: 10 * time.Second, wantRandomize: true},
		{give: "zookeeper://a:1?hosts=b:2,c:3&hosts=d:4", wantServers: []string{"a:1", "b:2", "c:3", "d:4"}, wantRoot: "/baton", wantTimeout: 10 * time.Second, wantRandomize: true},
		{give: "zookeeper://a:1?hosts=b:2/apps/x/&namespace=tooz", wantServers: []string{"a:1", "b:2"}, wantRoot: "/apps/x/tooz", wantTimeout: 10 * time.Second, wantRandomize: true},
		{give: "zookeeper://h?timeout=2.5&randomize_hosts=false&namespace=a/b", wantServers: []string{"h:2181"}, wantRoot: "/a/b", wantTimeout: 2500 * time.Millisecond},
		{give: "zookeeper://u:p@h/?timeout=750ms", wantServers: []string{"h:2181"}, wantRoot: "/baton", wantTimeout: 750 * time.Millisecond, wantRandomize: true, wantAuth: true},
		{give: "zookeeper://u:@h", wantServers: []string{"h:2181"}, wantRoot: "/baton", wantTimeout: 10 * time.Second, wantRandomize: true, wantAuth: true},
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
			if !slices.Equal(s.servers, tt.wantServers) || s.root != tt.wantRoot || s.timeout != tt.wantTimeout ||
				s.randomize != tt.wantRandomize || s.auth != tt.wantAuth {
				t.Fatalf("got servers %v root %q timeout %v randomize %v auth %v; want %v %q %v %v %v",
					s.servers, s.root, s.timeout, s.randomize, s.auth, tt.wantServers, tt.wantRoot, tt.wantTimeout, tt.wantRandomize, tt.wantAuth)
			}
		})
	}
}

func TestParseSettingsErrors(t *testing.T) {
	tests := []struct {
		give     string
		wantCode driver.Code
		wantText string
	}{
		{give: "zookeeper://h?handler=eventlet", wantCode: driver.CodeUnimplemented, wantText: "eventlet"},
		{give: "zookeeper://h?handler=gevent", wantCode: driver.CodeInvalidArgument, wantText: "handler"},
		{give: "zookeeper://h?connection_retry=3", wantCode: driver.CodeInvalidArgument, wantText: "connection_retry_attempts"},
		{give: "zookeeper://h?command_retry=x", wantCode: driver.CodeInvalidArgument, wantText: "command_retry_delay"},
		{give: "zookeeper://h/tooz", wantCode: driver.CodeInvalidArgument, wantText: "namespace"},
		{give: "zookeeper://u@h", wantCode: driver.CodeInvalidArgument, wantText: "user:password"},
		{give: "zookeeper://:p@h", wantCode: driver.CodeInvalidArgument, wantText: "user:password"},
		{give: "zookeeper://h?namespace=", wantCode: driver.CodeInvalidArgument, wantText: "namespace"},
		{give: "zookeeper://h?namespace=a/../b", wantCode: driver.CodeInvalidArgument, wantText: ".."},
		{give: "zookeeper://h?namespace=zookeeper", wantCode: driver.CodeInvalidArgument, wantText: "reserved"},
		{give: "zookeeper://h?hosts=h2/zookeeper", wantCode: driver.CodeInvalidArgument, wantText: "reserved"},
		{give: "zookeeper://h?hosts=,h2", wantCode: driver.CodeInvalidArgument, wantText: "empty host"},
		{give: "zookeeper://h?hosts=h2:x", wantCode: driver.CodeInvalidArgument, wantText: "port"},
		{give: "zookeeper://h?timeout=-1", wantCode: driver.CodeInvalidArgument, wantText: "timeout"},
		{give: "zookeeper://h?timeout=soon", wantCode: driver.CodeInvalidArgument, wantText: "timeout"},
		{give: "zookeeper://h?randomize_hosts=ture", wantCode: driver.CodeInvalidArgument, wantText: "randomize_hosts"},
		{give: "zookeeper://h?timout=3", wantCode: driver.CodeInvalidArgument, wantText: `did you mean "timeout"`},
		{give: "zookeeper://h?ca=/x.pem", wantCode: driver.CodeInvalidArgument, wantText: "use_ssl"},
		{give: "zookeeper://h?use_ssl=true&certfile=/c.pem", wantCode: driver.CodeInvalidArgument, wantText: "keyfile"},
		{give: "zookeeper://h?use_ssl=true&ca=/nonexistent/ca.pem", wantCode: driver.CodeInvalidArgument, wantText: "ca"},
		{give: "zookeeper://h?connection_retry_backoff=0.5", wantCode: driver.CodeInvalidArgument, wantText: "connection_retry_backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			cfg, err := driverConfig(t, tt.give)
			if err == nil {
				var s *settings
				if s, err = parseSettings(cfg); err == nil {
					_, err = newTLS(s.tls)
				}
			}
			if err == nil {
				t.Fatalf("no error, want one coded %v", tt.wantCode)
			}
			if code := backend.CodeOf(err); code != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", code, err, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error %q does not mention %q", err, tt.wantText)
			}
		})
	}
}

func TestKeyfilePasswordIsSecret(t *testing.T) {
	cfg, err := backend.ParseURL("zookeeper://h?use_ssl=true&keyfile_password=hunter2&verify_certs=maybe")
	if err == nil {
		t.Fatalf("parsed %v, want a bad verify_certs", cfg)
	}
	if !errors.Is(err, backend.ErrInvalidArgument) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %q: want invalid argument without the password", err)
	}
}

func TestRetryPolicyWait(t *testing.T) {
	p := retryPolicy{attempts: 3, delay: 100 * time.Millisecond, backoff: 2, maxDelay: 350 * time.Millisecond}
	tests := []struct {
		give      int
		want      time.Duration
		wantAllow bool
	}{
		{give: 1, want: 100 * time.Millisecond, wantAllow: true},
		{give: 2, want: 200 * time.Millisecond, wantAllow: true},
		{give: 3, want: 350 * time.Millisecond, wantAllow: true},
		{give: 4, want: 350 * time.Millisecond, wantAllow: false},
	}
	for _, tt := range tests {
		if got := p.wait(tt.give); got != tt.want {
			t.Errorf("wait(%d) = %v, want %v", tt.give, got, tt.want)
		}
		if got := p.allows(tt.give); got != tt.wantAllow {
			t.Errorf("allows(%d) = %v, want %v", tt.give, got, tt.wantAllow)
		}
	}
	if !(retryPolicy{attempts: -1}).allows(1000) {
		t.Errorf("attempts -1 must allow every retry")
	}
}
