package backend_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
)

// Every operation taking a name checks it the same way, before it reaches
// the driver: non-empty UTF-8 without NUL, at most 1 KiB.
func TestNames(t *testing.T) {
	store := newStore(t)
	b := open(t, "mem://"+store, "m1")
	ctx := testCtx(t)
	ops := []struct {
		name string
		op   func(name string) error
	}{
		{"TryLock", func(n string) error {
			g, _, err := b.TryLock(ctx, n, backend.LockOptions{})
			release(g)
			return err
		}},
		{"Lock", func(n string) error {
			g, err := b.Lock(ctx, n, backend.LockOptions{})
			release(g)
			return err
		}},
		{"LockHolder", func(n string) error { _, _, err := b.LockHolder(ctx, n); return err }},
		{"BreakLock", func(n string) error { _, err := b.BreakLock(ctx, n); return err }},
		{"CreateGroup", func(n string) error { return b.CreateGroup(ctx, n) }},
		{"Join", func(n string) error { return b.Join(ctx, n, nil) }},
		{"Members", func(n string) error { _, err := b.Members(ctx, n); return err }},
		{"Member (group)", func(n string) error { _, err := b.Member(ctx, n, "m1"); return err }},
		{"Member (member)", func(n string) error { _, err := b.Member(ctx, "g", n); return err }},
		{"UpdateCapabilities", func(n string) error { return b.UpdateCapabilities(ctx, n, nil) }},
		{"WatchGroup", func(n string) error {
			w, err := b.WatchGroup(ctx, n)
			if w != nil {
				w.Close()
			}
			return err
		}},
		{"Leave", func(n string) error { return b.Leave(ctx, n) }},
		{"DeleteGroup", func(n string) error { return b.DeleteGroup(ctx, n) }},
		{"TryCampaign", func(n string) error {
			g, _, err := b.TryCampaign(ctx, n, backend.LockOptions{})
			release(g)
			return err
		}},
		{"Campaign", func(n string) error {
			g, err := b.Campaign(ctx, n, backend.LockOptions{})
			release(g)
			return err
		}},
		{"Leader", func(n string) error { _, _, err := b.Leader(ctx, n); return err }},
		{"ObserveLeader", func(n string) error {
			w, err := b.ObserveLeader(ctx, n)
			if w != nil {
				w.Close()
			}
			return err
		}},
	}
	must(t, b.CreateGroup(ctx, "g"), "create group")
	must(t, b.Join(ctx, "g", nil), "join")
	tests := []struct {
		name    string
		give    string
		wantErr error // nil: the name is valid (the operation may still fail otherwise)
	}{
		{name: "simple", give: "n"},
		{name: "odd characters", give: " a/../b ✓ : * ? \t "},
		{name: "1 KiB", give: strings.Repeat("n", backend.MaxNameLen)},
		{name: "1 KiB of three-byte runes and a byte", give: strings.Repeat("✓", backend.MaxNameLen/3) + "n"},
		{name: "empty", give: "", wantErr: backend.ErrInvalidArgument},
		{name: "over 1 KiB", give: strings.Repeat("n", backend.MaxNameLen+1), wantErr: backend.ErrInvalidArgument},
		{name: "over 1 KiB by a rune", give: strings.Repeat("n", backend.MaxNameLen-1) + "é", wantErr: backend.ErrInvalidArgument},
		{name: "invalid UTF-8", give: "n\xc3", wantErr: backend.ErrInvalidArgument},
		{name: "NUL", give: "a\x00b", wantErr: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, o := range ops {
				err := o.op(tt.give)
				if tt.wantErr != nil {
					wantErr(t, err, tt.wantErr, o.name)
					wantOnce(t, err, o.name)
				} else if errors.Is(err, backend.ErrInvalidArgument) {
					t.Errorf("%s(%q): %v; the name is valid", o.name, tt.give, err)
				}
			}
		})
	}
}

func release(g *backend.Grant) {
	if g != nil {
		_ = g.Release(context.Background())
	}
}

// Capabilities of exactly MaxCapabilitiesLen bytes are stored whole; one
// byte more is refused by Join and UpdateCapabilities.
func TestCapabilitiesSize(t *testing.T) {
	b := open(t, "mem://"+newStore(t), "m1")
	ctx := testCtx(t)
	must(t, b.CreateGroup(ctx, "g"), "create group")
	max := bytes.Repeat([]byte{0xfe}, backend.MaxCapabilitiesLen)
	over := append(bytes.Clone(max), 1)
	wantErr(t, b.Join(ctx, "g", over), backend.ErrInvalidArgument, "join with too large capabilities")
	must(t, b.Join(ctx, "g", max), "join with the largest capabilities")
	m, err := b.Member(ctx, "g", "m1")
	must(t, err, "member")
	if !bytes.Equal(m.Capabilities, max) {
		t.Fatalf("capabilities of %d bytes read back as %d bytes", len(max), len(m.Capabilities))
	}
	wantErr(t, b.UpdateCapabilities(ctx, "g", over), backend.ErrInvalidArgument, "update with too large capabilities")
	must(t, b.UpdateCapabilities(ctx, "g", []byte("small")), "update")
	must(t, b.UpdateCapabilities(ctx, "g", max), "update with the largest capabilities")
}

// Lock names, leadership and groups live in separate key spaces: a lock,
// a leadership and a group of the same name never collide, and internal
// keys never show up as groups.
func TestKeySpaces(t *testing.T) {
	b := open(t, "mem://"+newStore(t), "m1")
	ctx := testCtx(t)
	for _, n := range []string{"x", "l/x", "e/x"} {
		tryLock(t, b, n)
		tryCampaign(t, b, n)
		must(t, b.CreateGroup(ctx, n), "create group")
	}
	h, ok, err := b.Leader(ctx, "x")
	must(t, err, "leader")
	lh, lok, err := b.LockHolder(ctx, "x")
	must(t, err, "lock holder")
	if !ok || !lok || h.Token == lh.Token {
		t.Fatalf("leader %+v (%v) and lock holder %+v (%v) of the same name share a grant", h, ok, lh, lok)
	}
	gs, err := b.Groups(ctx)
	must(t, err, "groups")
	if strings.Join(gs, ",") != "e/x,l/x,x" {
		t.Fatalf("groups = %q; want exactly the three created, sorted", gs)
	}
}
