package drivertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

var openTests = []test{
	{"RequireMissing", testOpenRequireMissing},
	{"RequireSatisfied", testOpenRequireSatisfied},
	{"UnknownOption", testOpenUnknownOption},
	{"MemberID", testOpenMemberID},
	{"ConnectFailure", testOpenConnectFailure},
}

var characteristicTests = []test{
	{"Consistent", testCharsConsistent},
	{"WatchKind", testCharsWatchKind},
}

// split returns the characteristics b has and lacks.
func split(b *backend.Backend) (has, lacks []backend.Characteristic) {
	for _, c := range driver.AllCharacteristics() {
		if b.Characteristics().Has(c) {
			has = append(has, c)
		} else {
			lacks = append(lacks, c)
		}
	}
	return has, lacks
}

// Require of a characteristic the driver lacks makes Open fail with
// ErrUnimplemented naming it (each of them, when several are missing).
// A driver that has every characteristic must open with all required.
func testOpenRequireMissing(t *testing.T, e *env) {
	has, lacks := split(e.open("probe"))
	if len(lacks) == 0 {
		_, err := e.tryOpen(e.url, "m1", backend.Require(has...))
		e.must(err, "open requiring every characteristic of a driver that has them all")
		return
	}
	_, err := e.tryOpen(e.url, "m1", backend.Require(lacks[0]))
	e.wantErr(err, backend.ErrUnimplemented, "open requiring "+lacks[0].String())
	if !strings.Contains(err.Error(), lacks[0].String()) {
		t.Fatalf("open requiring %s: error %q does not name it", lacks[0], err)
	}
	_, err = e.tryOpen(e.url, "m2", backend.Require(append(has, lacks...)...))
	e.wantErr(err, backend.ErrUnimplemented, "open requiring every characteristic")
	for _, c := range lacks {
		if !strings.Contains(err.Error(), c.String()) {
			t.Errorf("open requiring every characteristic: error %q does not name missing %s", err, c)
		}
	}
}

// Require of characteristics the driver has opens normally.
func testOpenRequireSatisfied(t *testing.T, e *env) {
	has, _ := split(e.open("probe"))
	b, err := e.tryOpen(e.url, "m1", backend.Require(has...))
	e.must(err, "open requiring the driver's own characteristics")
	e.release(e.tryLock(b, "l"))
}

// An unknown URL option makes Open fail with ErrInvalidArgument naming
// the key.
func testOpenUnknownOption(t *testing.T, e *env) {
	const key = "no_such_option"
	u := e.url
	switch {
	case !strings.Contains(u, "?"):
		u += "?" + key + "=1"
	case strings.HasSuffix(u, "?") || strings.HasSuffix(u, "&"):
		u += key + "=1"
	default:
		u += "&" + key + "=1"
	}
	_, err := e.tryOpen(u, "m1")
	e.wantErr(err, backend.ErrInvalidArgument, "open with an unknown option")
	if !strings.Contains(err.Error(), key) {
		t.Fatalf("open with an unknown option: error %q does not name %q", err, key)
	}
	e.noSecret(err)
}

// noSecret fails when err's message shows the URL's password.
func (e *env) noSecret(err error) {
	e.t.Helper()
	cfg, perr := backend.ParseURL(e.url)
	e.must(perr, "parse the harness URL")
	if cfg.Password != "" && strings.Contains(err.Error(), cfg.Password) {
		e.t.Fatalf("error shows the URL's password: %v", err)
	}
}

// unreachableWait bounds an Open of an unreachable server: a driver
// either fails at once (connection refused) or retries until then.
const unreachableWait = 3 * time.Second

// unreachableURL returns e.url with its host list replaced by a loopback
// port nothing listens on (port 1, tcpmux, is never served here).
func unreachableURL(raw string) string {
	i := strings.Index(raw, "://") + len("://")
	rest := raw[i:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	userinfo := ""
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo = authority[:at+1]
	}
	return raw[:i] + userinfo + "127.0.0.1:1" + rest[end:]
}

// A Backend that cannot connect fails Open with an error, never a hang,
// and without showing the password: for a driver distributed across
// hosts, a server nothing listens on gives ErrUnavailable (or
// ErrDeadlineExceeded when the driver retries until the context ends);
// for every driver, an already cancelled context gives an error matching
// context.Canceled.
func testOpenConnectFailure(t *testing.T, e *env) {
	probe := e.open("probe")
	if probe.Characteristics().DistributedAcrossHosts {
		ctx, cancel := context.WithTimeout(e.ctx, unreachableWait)
		defer cancel()
		b, err := backend.Open(ctx, unreachableURL(e.url), e.options("m1")...)
		if err == nil {
			closeBackend(t, b)
			t.Fatalf("open of an unreachable server succeeded")
		}
		if !errors.Is(err, backend.ErrUnavailable) && !errors.Is(err, backend.ErrDeadlineExceeded) {
			t.Fatalf("open of an unreachable server: got %v, want an error matching ErrUnavailable or ErrDeadlineExceeded", err)
		}
		e.noSecret(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	b, err := backend.Open(ctx, e.url, e.options("m2")...)
	if err == nil {
		closeBackend(t, b)
		t.Fatalf("open with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, backend.ErrCanceled) {
		t.Fatalf("open with a cancelled context: got %v, want an error matching context.Canceled", err)
	}
	e.noSecret(err)
}

// The member ID given is the one used: MemberID reports it and it is the
// member listed and the holder reported.
func testOpenMemberID(t *testing.T, e *env) {
	b := e.open("some member")
	if b.MemberID() != "some member" {
		t.Fatalf("MemberID: got %s, want \"some member\"", q(b.MemberID()))
	}
	e.createGroup(b, "g")
	e.join(b, "g", nil)
	e.wantMembers(b, "g", "some member")
	g := e.tryLock(b, "l")
	e.wantHolder(b, "l", "some member", g.Token())
}

// The reported characteristics are consistent with each other, with the
// session and with the driver's registration: the same for every
// Backend of a URL; liveness as the session reports it (a TTL session
// renews before its TTL runs out); a known watch kind and fencing
// strength; a poll interval equal to the Backend's; usable across
// threads (the suite itself shares a namespace between goroutines).
func testCharsConsistent(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	c, s := b1.Characteristics(), b1.Session()
	if c != b2.Characteristics() {
		t.Errorf("two Backends of one URL report different characteristics: %+v and %+v", c, b2.Characteristics())
	}
	static := b1.Config().Driver.CharacteristicsOf(b1.Config().Options)
	static.PollInterval = c.PollInterval
	if static != c {
		t.Errorf("characteristics %+v differ from the registration's %+v", c, static)
	}
	if c.Liveness != s.Liveness {
		t.Errorf("characteristics say liveness %v, the session says %v", c.Liveness, s.Liveness)
	}
	switch s.Liveness {
	case driver.LivenessTTL:
		if s.TTL <= 0 || s.RenewInterval <= 0 || s.RenewInterval >= s.TTL {
			t.Errorf("TTL session: TTL %v, renew interval %v; want 0 < renew interval < TTL", s.TTL, s.RenewInterval)
		}
	case driver.LivenessSession:
		if s.TTL < 0 || s.RenewInterval < 0 {
			t.Errorf("session: TTL %v, renew interval %v; want neither negative", s.TTL, s.RenewInterval)
		}
	default:
		t.Errorf("unknown liveness %v", s.Liveness)
	}
	switch c.Watch {
	case driver.WatchPoll:
		if c.PollInterval != b1.PollInterval() {
			t.Errorf("poll watch: characteristics' poll interval %v, the Backend's %v", c.PollInterval, b1.PollInterval())
		}
	case driver.WatchPush:
	default:
		t.Errorf("unknown watch kind %v", c.Watch)
	}
	switch c.Fencing {
	case driver.FencingStrong, driver.FencingFailover, driver.FencingEvictable, driver.FencingPartial:
	default:
		t.Errorf("unknown fencing strength %v", c.Fencing)
	}
	if !c.DistributedAcrossThreads {
		t.Errorf("DistributedAcrossThreads is false, yet Backends of one namespace in one process exclude each other")
	}
	if c.Has(backend.NotEvictable) == c.Evictable {
		t.Errorf("Has(NotEvictable) disagrees with Evictable")
	}
}

// The watch kind tells the truth: a push watch delivers a change while
// its Backend's poll interval is an hour; a poll watch reports its
// Backend's poll interval and delivers within a few intervals.
func testCharsWatchKind(t *testing.T, e *env) {
	b1 := e.open("m1")
	interval := time.Hour
	if b1.Characteristics().Watch == driver.WatchPoll {
		interval = 50 * time.Millisecond
	}
	wb := e.open("watcher", backend.WithPollInterval(interval))
	if wb.Characteristics().Watch == driver.WatchPoll && wb.Characteristics().PollInterval != interval {
		t.Fatalf("poll watch: characteristics' poll interval %v, want the configured %v", wb.Characteristics().PollInterval, interval)
	}
	e.createGroup(b1, "g")
	w := e.watch(wb, "g")
	e.join(b1, "g", nil)
	e.expect(w, backend.EventJoined, "m1")
}
