package backend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

// sentinels maps every code to its sentinel.
var sentinels = []struct {
	code driver.Code
	err  error
}{
	{driver.CodeNotFound, backend.ErrNotFound},
	{driver.CodeGroupNotFound, backend.ErrGroupNotFound},
	{driver.CodeAlreadyExists, backend.ErrAlreadyExists},
	{driver.CodeGroupExists, backend.ErrGroupExists},
	{driver.CodeMemberExists, backend.ErrMemberExists},
	{driver.CodeGroupNotEmpty, backend.ErrGroupNotEmpty},
	{driver.CodeNotMember, backend.ErrNotMember},
	{driver.CodeNotHeld, backend.ErrNotHeld},
	{driver.CodeUnavailable, backend.ErrUnavailable},
	{driver.CodeDeadlineExceeded, backend.ErrDeadlineExceeded},
	{driver.CodeCanceled, backend.ErrCanceled},
	{driver.CodeUnimplemented, backend.ErrUnimplemented},
	{driver.CodeInvalidArgument, backend.ErrInvalidArgument},
	{driver.CodeLost, backend.ErrLost},
	{driver.CodeInternal, backend.ErrInternal},
}

// An error matches the sentinel of its code and, for the specific
// not-found and already-exists codes, the general one; nothing else.
func TestErrorIsSentinels(t *testing.T) {
	general := map[driver.Code]driver.Code{
		driver.CodeGroupNotFound: driver.CodeNotFound,
		driver.CodeNotMember:     driver.CodeNotFound,
		driver.CodeNotHeld:       driver.CodeNotFound,
		driver.CodeGroupExists:   driver.CodeAlreadyExists,
		driver.CodeMemberExists:  driver.CodeAlreadyExists,
	}
	for _, give := range sentinels {
		t.Run(give.code.String(), func(t *testing.T) {
			native := errors.New("native")
			errs := map[string]error{
				"direct":         &backend.Error{Code: give.code, Op: "op", Err: driver.Wrap(give.code, native)},
				"wrapped again":  fmt.Errorf("outer: %w", &backend.Error{Code: give.code, Op: "op", Err: native}),
				"without detail": &backend.Error{Code: give.code, Op: "op"},
			}
			for how, err := range errs {
				for _, s := range sentinels {
					parent, hasParent := general[give.code]
					want := s.code == give.code || (hasParent && parent == s.code)
					if got := errors.Is(err, s.err); got != want {
						t.Errorf("%s: errors.Is(%v, %v) = %v; want %v", how, err, s.err, got, want)
					}
				}
				if backend.CodeOf(err) != give.code {
					t.Errorf("%s: CodeOf = %v; want %v", how, backend.CodeOf(err), give.code)
				}
			}
			if !errors.Is(errs["direct"], native) {
				t.Error("errors.Is does not reach the native error")
			}
		})
	}
}

func TestErrorSpecialSentinels(t *testing.T) {
	tests := []struct {
		name    string
		give    error
		want    []error
		wantNot []error
	}{
		{name: "closed", give: backend.ErrClosed, want: []error{backend.ErrClosed, backend.ErrCanceled}, wantNot: []error{backend.ErrLost, backend.ErrReleased}},
		{name: "released", give: backend.ErrReleased, want: []error{backend.ErrReleased, backend.ErrCanceled}, wantNot: []error{backend.ErrLost, backend.ErrClosed}},
		{name: "wrapped closed", give: fmt.Errorf("x: %w", backend.ErrClosed), want: []error{backend.ErrClosed, backend.ErrCanceled}},
		{name: "canceled is not closed", give: &backend.Error{Code: driver.CodeCanceled, Op: "op"}, want: []error{backend.ErrCanceled}, wantNot: []error{backend.ErrClosed, backend.ErrReleased}},
		{name: "general does not match specific", give: backend.ErrNotFound, wantNot: []error{backend.ErrGroupNotFound, backend.ErrNotHeld, backend.ErrNotMember}},
		{name: "plain error", give: errors.New("x"), wantNot: []error{backend.ErrInternal, backend.ErrNotFound}},
		{name: "driver error alone", give: driver.Wrap(driver.CodeNotHeld, nil), wantNot: []error{backend.ErrNotHeld}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				if !errors.Is(tt.give, w) {
					t.Errorf("errors.Is(%v, %v) = false", tt.give, w)
				}
			}
			for _, w := range tt.wantNot {
				if errors.Is(tt.give, w) {
					t.Errorf("errors.Is(%v, %v) = true", tt.give, w)
				}
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		give error
		want driver.Code
	}{
		{name: "nil", give: nil, want: driver.CodeInternal},
		{name: "plain", give: errors.New("x"), want: driver.CodeInternal},
		{name: "canceled", give: context.Canceled, want: driver.CodeCanceled},
		{name: "deadline", give: context.DeadlineExceeded, want: driver.CodeDeadlineExceeded},
		{name: "wrapped deadline", give: fmt.Errorf("op: %w", context.DeadlineExceeded), want: driver.CodeDeadlineExceeded},
		{name: "driver error", give: driver.Errorf(driver.CodeGroupNotFound, "g"), want: driver.CodeGroupNotFound},
		{name: "driver code wins over its context error", give: driver.Wrap(driver.CodeUnavailable, context.DeadlineExceeded), want: driver.CodeUnavailable},
		{name: "outermost code wins", give: &backend.Error{Code: driver.CodeLost, Err: driver.Wrap(driver.CodeNotHeld, nil)}, want: driver.CodeLost},
		{name: "backend sentinel", give: backend.ErrClosed, want: driver.CodeCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backend.CodeOf(tt.give); got != tt.want {
				t.Errorf("CodeOf(%v) = %v; want %v", tt.give, got, tt.want)
			}
		})
	}
}

// Errors of real operations carry the right sentinel (specific and
// general), are wrapped exactly once, and keep the driver's error and the
// native error reachable.
func TestErrorsOfOperations(t *testing.T) {
	store := newStore(t)
	b := open(t, "mem://"+store, "m1")
	other := open(t, "mem://"+store, "m2")
	ctx := testCtx(t)
	must(t, b.CreateGroup(ctx, "g"), "create group")
	must(t, b.Join(ctx, "g", nil), "join")
	must(t, other.CreateGroup(ctx, "other"), "create group")
	g := tryLock(t, b, "l")
	must(t, g.Release(ctx), "release")
	tests := []struct {
		name string
		op   func() error
		want []error
	}{
		{name: "create existing group", op: func() error { return b.CreateGroup(ctx, "g") }, want: []error{backend.ErrGroupExists, backend.ErrAlreadyExists}},
		{name: "join twice", op: func() error { return b.Join(ctx, "g", nil) }, want: []error{backend.ErrMemberExists, backend.ErrAlreadyExists}},
		{name: "join missing group", op: func() error { return b.Join(ctx, "nope", nil) }, want: []error{backend.ErrGroupNotFound, backend.ErrNotFound}},
		{name: "leave missing group", op: func() error { return b.Leave(ctx, "nope") }, want: []error{backend.ErrGroupNotFound, backend.ErrNotFound}},
		{name: "leave group not joined", op: func() error { return b.Leave(ctx, "other") }, want: []error{backend.ErrNotMember, backend.ErrNotFound}},
		{name: "update caps not joined", op: func() error { return b.UpdateCapabilities(ctx, "other", []byte("x")) }, want: []error{backend.ErrNotMember}},
		{name: "member not joined", op: func() error { _, err := b.Member(ctx, "g", "m2"); return err }, want: []error{backend.ErrNotMember, backend.ErrNotFound}},
		{name: "members of missing group", op: func() error { _, err := b.Members(ctx, "nope"); return err }, want: []error{backend.ErrGroupNotFound}},
		{name: "delete non-empty group", op: func() error { return b.DeleteGroup(ctx, "g") }, want: []error{backend.ErrGroupNotEmpty}},
		{name: "delete missing group", op: func() error { return b.DeleteGroup(ctx, "nope") }, want: []error{backend.ErrGroupNotFound}},
		{name: "release twice", op: func() error { return g.Release(ctx) }, want: []error{backend.ErrNotHeld, backend.ErrNotFound}},
		{name: "watch missing group", op: func() error { _, err := b.WatchGroup(ctx, "nope"); return err }, want: []error{backend.ErrGroupNotFound}},
		{name: "shared lock without shared locks", op: func() error {
			pb := open(t, pollScheme+"://"+store, "p1")
			_, _, err := pb.TryLock(ctx, "l", backend.LockOptions{Shared: true})
			return err
		}, want: []error{backend.ErrUnimplemented}},
		{name: "break lock without breaker", op: func() error {
			pb := open(t, pollScheme+"://"+store, "p2")
			_, err := pb.BreakLock(ctx, "l")
			return err
		}, want: []error{backend.ErrUnimplemented}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			for _, w := range tt.want {
				wantErr(t, err, w, tt.name)
			}
			wantOnce(t, err, tt.name)
		})
	}
}

// errors.As reaches the driver's error and the error the driver wrapped
// through the one *backend.Error.
func TestErrorsAsReachesDriverError(t *testing.T) {
	store := newStore(t)
	b := open(t, "mem://"+store, "m1")
	ctx := testCtx(t)
	must(t, b.CreateGroup(ctx, "g"), "create group")
	must(t, membackend.SetUnreachable(store, "m1", true), "cut off")
	err := b.Join(ctx, "g", nil)
	wantErr(t, err, backend.ErrUnavailable, "join while unreachable")
	wantErr(t, err, membackend.ErrUnreachable, "join while unreachable")
	var be *backend.Error
	if !errors.As(err, &be) || be.Code != driver.CodeUnavailable || be.Op == "" {
		t.Fatalf("errors.As(*backend.Error) on %v: %+v", err, be)
	}
	var de *driver.Error
	if !errors.As(err, &de) || de.Code != driver.CodeUnavailable {
		t.Fatalf("errors.As(*driver.Error) on %v: %+v", err, de)
	}
	if be, de := chainCounts(err); be != 1 || de != 1 {
		t.Fatalf("chain of %v has %d *backend.Error and %d *driver.Error; want 1 and 1", err, be, de)
	}
	must(t, membackend.SetUnreachable(store, "m1", false), "reconnect")
}

// Open wraps an error of the driver's Open once, with the context error
// reachable.
func TestOpenErrorWrapsOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := backend.Open(ctx, "mem://"+newStore(t))
	wantErr(t, err, backend.ErrCanceled, "open with a cancelled context")
	wantErr(t, err, context.Canceled, "open with a cancelled context")
	wantOnce(t, err, "open")
}
