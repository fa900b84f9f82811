package backend_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// Require fails before the driver is asked to connect, naming exactly the
// missing characteristics.
func TestOpenRequire(t *testing.T) {
	tests := []struct {
		name        string
		giveURL     func(t *testing.T) string
		giveRequire []backend.Characteristic
		wantMissing []string // nil: Open succeeds
	}{
		{
			name:        "mem has what it declares",
			giveURL:     func(t *testing.T) string { return "mem://" + newStore(t) },
			giveRequire: []backend.Characteristic{backend.AcrossThreads, backend.SessionLiveness, backend.PushWatch, backend.StrongFencing, backend.NotEvictable, backend.SharedLockSupport, backend.Linearizable},
		},
		{
			name:        "mem is one process",
			giveURL:     func(t *testing.T) string { return "mem://" + newStore(t) },
			giveRequire: []backend.Characteristic{backend.SessionLiveness, backend.AcrossProcesses, backend.AcrossHosts},
			wantMissing: []string{"distributed-across-processes", "distributed-across-hosts"},
		},
		{
			name:        "polled mem lacks push and shared locks",
			giveURL:     func(t *testing.T) string { return pollScheme + "://" + newStore(t) },
			giveRequire: []backend.Characteristic{backend.PushWatch, backend.SharedLockSupport, backend.AcrossThreads},
			wantMissing: []string{"push-watch", "shared-locks"},
		},
		{
			// Nothing listens on port 1: Open would fail as unavailable if
			// it tried to connect.
			name:        "checked before connecting",
			giveURL:     func(*testing.T) string { return "redis://127.0.0.1:1?timeout=0.2" },
			giveRequire: []backend.Characteristic{backend.SessionLiveness, backend.AcrossHosts},
			wantMissing: []string{"session-liveness"},
		},
		{
			name: "file directory not created",
			giveURL: func(t *testing.T) string {
				return "file://" + filepath.Join(t.TempDir(), "never")
			},
			giveRequire: []backend.Characteristic{backend.AcrossHosts},
			wantMissing: []string{"distributed-across-hosts"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.giveURL(t)
			b, err := backend.Open(testCtx(t), u, backend.Require(tt.giveRequire...))
			if tt.wantMissing == nil {
				must(t, err, "open")
				must(t, b.Close(testCtx(t)), "close")
				return
			}
			if err == nil {
				_ = b.Close(testCtx(t))
				t.Fatal("open succeeded; want ErrUnimplemented")
			}
			wantErr(t, err, backend.ErrUnimplemented, "open")
			for _, m := range tt.wantMissing {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not name %q", err, m)
				}
			}
			for _, c := range tt.giveRequire {
				if !contains(tt.wantMissing, c.String()) && strings.Contains(err.Error(), c.String()) {
					t.Errorf("error %q names %q, which the driver has", err, c)
				}
			}
			if cfg, perr := backend.ParseURL(u); perr == nil && cfg.Scheme == "file" {
				if _, serr := os.Stat(cfg.Path); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("the directory %s was created (stat: %v)", cfg.Path, serr)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestOpenMemberID(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr error
	}{
		{name: "simple", give: "worker-1"},
		{name: "unicode, spaces, slashes and dots", give: "wörker ✓/../x"},
		{name: "1 KiB", give: strings.Repeat("m", backend.MaxNameLen)},
		{name: "1 KiB of two-byte runes", give: strings.Repeat("é", backend.MaxNameLen/2)},
		{name: "over 1 KiB", give: strings.Repeat("m", backend.MaxNameLen+1), wantErr: backend.ErrInvalidArgument},
		{name: "over 1 KiB by a rune", give: strings.Repeat("é", backend.MaxNameLen/2) + "a", wantErr: backend.ErrInvalidArgument},
		{name: "invalid UTF-8", give: "m\xff1", wantErr: backend.ErrInvalidArgument},
		{name: "NUL", give: "m\x001", wantErr: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := backend.Open(testCtx(t), "mem://"+newStore(t), backend.WithMemberID(tt.give))
			wantErr(t, err, tt.wantErr, "open")
			if err != nil {
				return
			}
			defer b.Close(testCtx(t))
			if b.MemberID() != tt.give {
				t.Errorf("MemberID() = %q; want %q", b.MemberID(), tt.give)
			}
		})
	}
}

// Without WithMemberID the member ID is hostname-pid-random, different
// for every Backend; an explicitly empty one is refused.
func TestOpenDefaultMemberID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(host) + "-" + fmt.Sprint(os.Getpid()) + "-[0-9a-f]{8}$")
	store := newStore(t)
	seen := map[string]bool{}
	if _, err := backend.Open(testCtx(t), "mem://"+store, backend.WithMemberID("")); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("Open with an empty member ID = %v; want ErrInvalidArgument", err)
	}
	for _, opts := range [][]backend.Option{nil, nil, nil} {
		b, err := backend.Open(testCtx(t), "mem://"+store, opts...)
		must(t, err, "open")
		id := b.MemberID()
		must(t, b.Close(testCtx(t)), "close")
		if !re.MatchString(id) {
			t.Errorf("default member ID %q does not match %s", id, re)
		}
		if seen[id] {
			t.Errorf("default member ID %q given twice", id)
		}
		seen[id] = true
	}
}

func TestOpenOptions(t *testing.T) {
	tests := []struct {
		name    string
		giveURL string
		give    []backend.Option
		wantErr error
		check   func(t *testing.T, b *backend.Backend)
	}{
		{name: "negative margin", giveURL: "mem://", give: []backend.Option{backend.WithSafetyMargin(-time.Second)}, wantErr: backend.ErrInvalidArgument},
		{name: "negative poll interval", giveURL: "mem://", give: []backend.Option{backend.WithPollInterval(-time.Second)}, wantErr: backend.ErrInvalidArgument},
		{name: "poll interval below 1ms", giveURL: "mem://", give: []backend.Option{backend.WithPollInterval(time.Microsecond)}, wantErr: backend.ErrInvalidArgument},
		{name: "default poll interval", giveURL: pollScheme + "://", check: func(t *testing.T, b *backend.Backend) {
			if b.PollInterval() != backend.DefaultPollInterval || b.Characteristics().PollInterval != backend.DefaultPollInterval {
				t.Errorf("poll interval %v, characteristics %v; want %v", b.PollInterval(), b.Characteristics().PollInterval, backend.DefaultPollInterval)
			}
		}},
		{name: "poll interval of a polling driver", giveURL: pollScheme + "://", give: []backend.Option{backend.WithPollInterval(time.Millisecond)}, check: func(t *testing.T, b *backend.Backend) {
			if b.PollInterval() != time.Millisecond || b.Characteristics().PollInterval != time.Millisecond || b.Characteristics().Watch != driver.WatchPoll {
				t.Errorf("poll interval %v, characteristics %+v", b.PollInterval(), b.Characteristics())
			}
		}},
		{name: "no poll interval for a pushing driver", giveURL: "mem://", give: []backend.Option{backend.WithPollInterval(time.Second)}, check: func(t *testing.T, b *backend.Backend) {
			if c := b.Characteristics(); c.PollInterval != 0 || c.Watch != driver.WatchPush {
				t.Errorf("characteristics %+v; want push without a poll interval", c)
			}
		}},
		{name: "session margin on a session driver", giveURL: "mem://", give: []backend.Option{backend.WithSafetyMargin(time.Hour)}},
		{name: "accessors", giveURL: "MEM://", give: []backend.Option{backend.WithLogger(zap.NewNop())}, check: func(t *testing.T, b *backend.Backend) {
			if b.Config().Scheme != "mem" || b.Logger() == nil || b.Clock() == nil || b.Err() != nil || b.Context().Err() != nil {
				t.Errorf("config %+v logger %v clock %v err %v", b.Config(), b.Logger(), b.Clock(), b.Err())
			}
			if s := b.Session(); s.Liveness != driver.LivenessSession || s.RenewInterval != 0 {
				t.Errorf("session %+v; want a session needing no renewal", s)
			}
			if isClosed(b.Done()) {
				t.Error("Done is closed on a fresh Backend")
			}
		}},
		{name: "injected clock", giveURL: "mem://", give: []backend.Option{backend.WithClock(testClock)}, check: func(t *testing.T, b *backend.Backend) {
			if b.Clock() != backend.Clock(testClock) {
				t.Errorf("Clock() = %v; want the injected clock", b.Clock())
			}
		}},
		{name: "unknown scheme", giveURL: "nosuch://", wantErr: backend.ErrInvalidArgument},
		{name: "driver rejects the URL", giveURL: "mem://u:p@store", wantErr: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.giveURL
			if strings.HasSuffix(u, "://") {
				u += newStore(t)
			}
			b, err := backend.Open(testCtx(t), u, tt.give...)
			wantErr(t, err, tt.wantErr, "open")
			if err != nil {
				return
			}
			defer b.Close(testCtx(t))
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}

// testClock is a clock no test advances.
var testClock = newFakeClock()

// OpenConfig opens a parsed configuration, and the Config is the one given.
func TestOpenConfig(t *testing.T) {
	cfg, err := backend.ParseURL("mem://" + newStore(t))
	must(t, err, "parse")
	b, err := backend.OpenConfig(context.Background(), cfg, backend.WithMemberID("m"))
	must(t, err, "open")
	defer b.Close(testCtx(t))
	if b.Config() != cfg {
		t.Error("Config() is not the configuration given")
	}
}
