package drivertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

const (
	// waitTimeout bounds every wait for something that must happen soon
	// (an event, a handed-over lock, a released waiter).
	waitTimeout = 20 * time.Second
	// testTimeout bounds a whole subtest's server calls.
	testTimeout = 2 * time.Minute
	// closeTimeout bounds Close in cleanups.
	closeTimeout = 20 * time.Second
	// pollEvery is how often a condition is re-checked while waiting.
	pollEvery = 10 * time.Millisecond
)

// env is one subtest's namespace and helpers.
type env struct {
	t   *testing.T
	h   Harness
	url string
	ctx context.Context
}

func newEnv(t *testing.T, h Harness) *env {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return &env{t: t, h: h, url: h.NewURL(t), ctx: ctx}
}

// options returns the harness options, then extra, then the member ID,
// in a fresh slice.
func (e *env) options(id string, extra ...backend.Option) []backend.Option {
	all := make([]backend.Option, 0, len(e.h.Options)+len(extra)+1)
	all = append(all, e.h.Options...)
	all = append(all, extra...)
	return append(all, backend.WithMemberID(id))
}

// tryOpen opens a Backend on url as member id and registers its Close.
func (e *env) tryOpen(url, id string, extra ...backend.Option) (*backend.Backend, error) {
	b, err := backend.Open(e.ctx, url, e.options(id, extra...)...)
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { closeBackend(e.t, b) })
	return b, nil
}

// open opens a Backend on the subtest's namespace as member id.
func (e *env) open(id string, extra ...backend.Option) *backend.Backend {
	e.t.Helper()
	url := e.url
	if e.h.MemberURL != nil {
		url = e.h.MemberURL(url, id)
	}
	b, err := e.tryOpen(url, id, extra...)
	if err != nil {
		e.t.Fatalf("open as member %q: %v", id, err)
	}
	return b
}

// closeBackend closes b; an error is a failure unless the session was
// already lost (Close then returns nil anyway).
func closeBackend(t testing.TB, b *backend.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("close member %q: %v", b.MemberID(), err)
	}
}

// close closes b now and fails on error.
func (e *env) close(b *backend.Backend) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		e.t.Fatalf("close member %q: %v", b.MemberID(), err)
	}
}

// sessionWait is how long to wait for something that depends on b's
// session ending or expiring (a TTL backend notices within its TTL).
func sessionWait(bs ...*backend.Backend) time.Duration {
	d := waitTimeout
	for _, b := range bs {
		d = max(d, waitTimeout+2*b.Session().TTL)
	}
	return d
}

// must fails the subtest when err is not nil.
func (e *env) must(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails the subtest unless errors.Is(err, target).
func (e *env) wantErr(err, target error, what string) {
	e.t.Helper()
	if err == nil {
		e.t.Fatalf("%s: got no error, want one matching %v", what, target)
	}
	if !errors.Is(err, target) {
		e.t.Fatalf("%s: got %v, want an error matching %v", what, err, target)
	}
}

// eventually polls cond until it reports true, failing after d. cond's
// error is a failure only if it persists until the deadline.
func (e *env) eventually(d time.Duration, what string, cond func() (bool, error)) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				e.t.Fatalf("%s: not within %v; last error: %v", what, d, err)
			}
			e.t.Fatalf("%s: not within %v", what, d)
		}
		select {
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatalf("%s: subtest context ended: %v", what, e.ctx.Err())
		}
	}
}

// waitDone waits until ch is closed, failing after d.
func (e *env) waitDone(ch <-chan struct{}, d time.Duration, what string) {
	e.t.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		e.t.Fatalf("%s: not within %v", what, d)
	}
}

// result is what a call run in another goroutine returned.
type result[T any] struct {
	v   T
	err error
}

// async runs f in a goroutine and returns the channel its result arrives
// on. The subtest waits for the goroutine before it ends.
func async[T any](e *env, f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err := f()
		ch <- result[T]{v: v, err: err}
	}()
	e.t.Cleanup(func() { <-done })
	return ch
}

// await waits for an async result, failing after d.
func await[T any](e *env, ch <-chan result[T], d time.Duration, what string) (T, error) {
	e.t.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		e.t.Fatalf("%s: did not return within %v", what, d)
		var zero T
		return zero, nil
	}
}

// notYet checks, for a short while, that a blocked call has not returned.
// It cannot prove the call would never return, but a call that returns
// early is caught here or by the caller's ordering checks.
func notYet[T any](e *env, ch <-chan result[T], what string) {
	e.t.Helper()
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case r := <-ch:
		e.t.Fatalf("%s returned while it must block: %v, %v", what, r.v, r.err)
	case <-t.C:
	}
}

// createGroup creates group through b.
func (e *env) createGroup(b *backend.Backend, group string) {
	e.t.Helper()
	e.must(b.CreateGroup(e.ctx, group), "create group "+q(group))
}

// join joins group through b.
func (e *env) join(b *backend.Backend, group string, caps []byte) {
	e.t.Helper()
	e.must(b.Join(e.ctx, group, caps), "join "+q(group)+" as "+q(b.MemberID()))
}

// memberIDs lists the IDs of group's members as b sees them.
func (e *env) memberIDs(b *backend.Backend, group string) []string {
	e.t.Helper()
	ms, err := b.Members(e.ctx, group)
	e.must(err, "members of "+q(group))
	return ids(ms)
}

// wantMembers fails unless group has exactly the members want.
func (e *env) wantMembers(b *backend.Backend, group string, want ...string) {
	e.t.Helper()
	got := e.memberIDs(b, group)
	if !sameSet(got, want) {
		e.t.Fatalf("members of %s: got %s, want %s", q(group), qs(got), qs(want))
	}
}

// wantGroups fails unless the namespace has exactly the groups want.
func (e *env) wantGroups(b *backend.Backend, want ...string) {
	e.t.Helper()
	got, err := b.Groups(e.ctx)
	e.must(err, "list groups")
	if !sameSet(got, want) {
		e.t.Fatalf("groups: got %s, want %s", qs(got), qs(want))
	}
}

// tryLock takes lock name through b, failing unless it is granted.
func (e *env) tryLock(b *backend.Backend, name string) *backend.Grant {
	e.t.Helper()
	g, ok, err := b.TryLock(e.ctx, name, backend.LockOptions{})
	e.must(err, "try lock "+q(name)+" as "+q(b.MemberID()))
	if !ok {
		e.t.Fatalf("try lock %s as %s: not acquired, want acquired", q(name), q(b.MemberID()))
	}
	return g
}

// tryLockBusy fails unless TryLock of name through b reports it taken.
func (e *env) tryLockBusy(b *backend.Backend, name string, o backend.LockOptions) {
	e.t.Helper()
	g, ok, err := b.TryLock(e.ctx, name, o)
	e.must(err, "try lock "+q(name)+" as "+q(b.MemberID()))
	if ok {
		e.t.Fatalf("try lock %s as %s: acquired with token %d while it is held elsewhere", q(name), q(b.MemberID()), g.Token())
	}
}

// release releases g, failing on error.
func (e *env) release(g *backend.Grant) {
	e.t.Helper()
	e.must(g.Release(e.ctx), "release "+q(g.Name()))
}

// wantHolder fails unless lock name is held by member with token (token
// 0: any token).
func (e *env) wantHolder(b *backend.Backend, name, member string, token uint64) {
	e.t.Helper()
	h, ok, err := b.LockHolder(e.ctx, name)
	e.must(err, "holder of lock "+q(name))
	switch {
	case !ok:
		e.t.Fatalf("holder of lock %s: none, want %s", q(name), q(member))
	case h.Member != member || (token != 0 && h.Token != token):
		e.t.Fatalf("holder of lock %s: got %s with token %d, want %s with token %d", q(name), q(h.Member), h.Token, q(member), token)
	}
}

// wantFree fails unless lock name is free.
func (e *env) wantFree(b *backend.Backend, name string) {
	e.t.Helper()
	h, ok, err := b.LockHolder(e.ctx, name)
	e.must(err, "holder of lock "+q(name))
	if ok {
		e.t.Fatalf("holder of lock %s: got %s with token %d, want none", q(name), q(h.Member), h.Token)
	}
}

// wantLeader fails unless group's leader is member with token (token 0:
// any token).
func (e *env) wantLeader(b *backend.Backend, group, member string, token uint64) {
	e.t.Helper()
	h, ok, err := b.Leader(e.ctx, group)
	e.must(err, "leader of "+q(group))
	switch {
	case !ok:
		e.t.Fatalf("leader of %s: none, want %s", q(group), q(member))
	case h.Member != member || (token != 0 && h.Token != token):
		e.t.Fatalf("leader of %s: got %s with token %d, want %s with token %d", q(group), q(h.Member), h.Token, q(member), token)
	}
}

// wantNoLeader fails unless group has no leader.
func (e *env) wantNoLeader(b *backend.Backend, group string) {
	e.t.Helper()
	h, ok, err := b.Leader(e.ctx, group)
	e.must(err, "leader of "+q(group))
	if ok {
		e.t.Fatalf("leader of %s: got %s with token %d, want none", q(group), q(h.Member), h.Token)
	}
}

// ids returns the member IDs of ms in order.
func ids(ms []backend.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// sameSet reports whether a and b hold the same strings, ignoring order
// but not multiplicity.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// q quotes a name for messages, shortening very long ones.
func q(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(s[:40]), len(s))
	}
	return strconv.Quote(s)
}

// qs quotes a list of names.
func qs(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = q(s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func itoa(i int) string { return strconv.Itoa(i) }
