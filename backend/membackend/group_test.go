package membackend_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

func TestGroupErrors(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openConn(t, store, "a", nil)
	a2 := openConn(t, store, "a", nil)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give func() error
		want driver.Code
	}{
		{"create existing", func() error { return a.CreateGroup(ctx, "g") }, driver.CodeGroupExists},
		{"delete missing", func() error { return a.DeleteGroup(ctx, "none") }, driver.CodeGroupNotFound},
		{"delete non-empty", func() error { return a.DeleteGroup(ctx, "g") }, driver.CodeGroupNotEmpty},
		{"join missing", func() error { return a.Join(ctx, "none", nil) }, driver.CodeGroupNotFound},
		{"join twice", func() error { return a.Join(ctx, "g", nil) }, driver.CodeMemberExists},
		{"join twice from another connection", func() error { return a2.Join(ctx, "g", nil) }, driver.CodeMemberExists},
		{"leave missing", func() error { return a.Leave(ctx, "none") }, driver.CodeGroupNotFound},
		{"members of missing", func() error { _, err := a.Members(ctx, "none"); return err }, driver.CodeGroupNotFound},
		{"update in missing", func() error { return a.UpdateCapabilities(ctx, "none", nil) }, driver.CodeGroupNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.give(); code(t, err) != tt.want {
				t.Errorf("got %v; want %v", err, tt.want)
			}
		})
	}
	// Any connection of the member may leave; then it is not a member.
	if err := a2.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave from another connection of the member: %v", err)
	}
	for name, err := range map[string]error{
		"leave":  a.Leave(ctx, "g"),
		"update": a.UpdateCapabilities(ctx, "g", nil),
	} {
		if code(t, err) != driver.CodeNotMember {
			t.Errorf("%s after leaving = %v; want not a member", name, err)
		}
	}
	if err := a.DeleteGroup(ctx, "g"); err != nil {
		t.Errorf("delete emptied group: %v", err)
	}
}

func TestMembersAndInfo(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openBackend(t, store, "a")
	b := openBackend(t, store, "b")
	before := time.Now()
	caps := []byte("cap")
	if err := a.JoinCreate(ctx, "g", caps); err != nil {
		t.Fatal(err)
	}
	caps[0] = 'X' // the store keeps its own copy
	m, err := b.Member(ctx, "g", "a")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Capabilities, []byte("cap")) {
		t.Errorf("capabilities = %q; want cap", m.Capabilities)
	}
	if m.JoinedAt.Before(before.Add(-time.Second)) || m.JoinedAt.After(time.Now()) || !m.UpdatedAt.Equal(m.JoinedAt) {
		t.Errorf("JoinedAt %v, UpdatedAt %v; want now, equal", m.JoinedAt, m.UpdatedAt)
	}
	m.Capabilities[0] = 'Y' // nor does a listing share it
	if err := a.UpdateCapabilities(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	m2, err := b.Member(ctx, "g", "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Capabilities) != 0 || m2.UpdatedAt.Before(m2.JoinedAt) || m2.Incarnation != m.Incarnation {
		t.Errorf("after update: %+v", m2)
	}
	if err := a.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	m3, err := b.Member(ctx, "g", "a")
	if err != nil {
		t.Fatal(err)
	}
	if m3.Incarnation == m.Incarnation || m3.Incarnation == "" {
		t.Errorf("incarnation after rejoin = %q; want a new one (was %q)", m3.Incarnation, m.Incarnation)
	}
	if groups, err := b.Groups(ctx); err != nil || len(groups) != 1 || groups[0] != "g" {
		t.Errorf("Groups = %v, %v; want [g]", groups, err)
	}
	// Closing a leaves its groups; the group itself stays.
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ms, err := b.Members(ctx, "g"); err != nil || len(ms) != 0 {
		t.Errorf("members after a closed = %v, %v; want none", ms, err)
	}
}

// Groups outlive their connections: a store with groups is kept when its
// last connection closes; one without anything is dropped.
func TestStoreLifetime(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openBackend(t, store, "a")
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b := openBackend(t, store, "b")
	if groups, err := b.Groups(ctx); err != nil || len(groups) != 1 {
		t.Fatalf("groups after reopening = %v, %v; want [g]", groups, err)
	}
	if err := b.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if membackend.StoreExists(store) {
		t.Error("an empty store without connections was kept")
	}
}

func TestBackendGroupErrors(t *testing.T) {
	ctx := testCtx(t)
	b := openBackend(t, newStore(t), "a")
	if err := b.Join(ctx, "none", nil); !errors.Is(err, backend.ErrGroupNotFound) {
		t.Errorf("Join = %v; want ErrGroupNotFound", err)
	}
}
