package drivertest

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

var capabilityTests = []test{
	{"Get", testCapsGet},
	{"Binary", testCapsBinary},
	{"NonexistentGroup", testCapsNonexistentGroup},
	{"NonJoinedMember", testCapsNonJoinedMember},
	{"Multiple", testCapsMultiple},
	{"EmptyGroup", testCapsEmptyGroup},
	{"NoCapabilities", testCapsNone},
	{"Update", testCapsUpdate},
	{"UpdateNonexistentGroup", testCapsUpdateNonexistentGroup},
	{"UpdateNotJoined", testCapsUpdateNotJoined},
	{"Large", testCapsLarge},
	{"MaxSize", testCapsMaxSize},
	{"TooLarge", testCapsTooLarge},
}

var memberInfoTests = []test{
	{"Times", testMemberInfoTimes},
	{"UpdateAdvancesUpdatedAt", testMemberInfoUpdate},
}

// memberCaps reads member's capabilities in group through b.
func (e *env) memberCaps(b *backend.Backend, group, member string) []byte {
	e.t.Helper()
	m, err := b.Member(e.ctx, group, member)
	e.must(err, "member "+q(member)+" of "+q(group))
	return m.Capabilities
}

// wantCaps fails unless member's capabilities in group are want.
func (e *env) wantCaps(b *backend.Backend, group, member string, want []byte) {
	e.t.Helper()
	if got := e.memberCaps(b, group, member); !bytes.Equal(got, want) {
		e.t.Fatalf("capabilities of %s: got %s, want %s", q(member), short(got), short(want))
	}
}

// short describes a byte string for messages.
func short(b []byte) string {
	if len(b) > 64 {
		return q(string(b[:32])) + "…(" + itoa(len(b)) + " bytes)"
	}
	return q(string(b))
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	return b
}

// The capabilities a member joined with are read back, by every member.
func testCapsGet(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("role=worker"))
	e.wantCaps(b1, "g", "m1", []byte("role=worker"))
	e.wantCaps(b2, "g", "m1", []byte("role=worker"))
}

// Capabilities are opaque bytes: every byte value, NULs, invalid UTF-8
// and msgpack-like structures round-trip exactly.
func testCapsBinary(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	all = append(all, 0, 0, 0xff, 0xfe, '\n', '\r', 0x82, 0xa4, 'r', 'o', 'l', 'e')
	e.join(b, "g", all)
	e.wantCaps(b, "g", "m1", all)
}

// Capabilities of a member of a group that does not exist: ErrGroupNotFound.
func testCapsNonexistentGroup(t *testing.T, e *env) {
	b := e.open("m1")
	_, err := b.Member(e.ctx, "nope", "m1")
	e.wantErr(err, backend.ErrGroupNotFound, "member of a missing group")
}

// Capabilities of a member that has not joined: ErrNotMember.
func testCapsNonJoinedMember(t *testing.T, e *env) {
	b1 := e.open("m1")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	_, err := b1.Member(e.ctx, "g", "m2")
	e.wantErr(err, backend.ErrNotMember, "member that has not joined")
}

// Members reports each member with its own capabilities.
func testCapsMultiple(t *testing.T, e *env) {
	b1, b2, b3 := e.open("m1"), e.open("m2"), e.open("m3")
	e.createGroup(b1, "g")
	want := map[string][]byte{"m1": []byte("one"), "m2": []byte("two"), "m3": []byte("three")}
	for _, b := range []*backend.Backend{b1, b2, b3} {
		e.join(b, "g", want[b.MemberID()])
	}
	ms, err := b3.Members(e.ctx, "g")
	e.must(err, "members")
	if len(ms) != len(want) {
		t.Fatalf("members: got %s, want 3", qs(ids(ms)))
	}
	for _, m := range ms {
		if !bytes.Equal(m.Capabilities, want[m.ID]) {
			t.Fatalf("capabilities of %s: got %s, want %s", q(m.ID), short(m.Capabilities), short(want[m.ID]))
		}
	}
}

// An empty group has an empty member list, not an error.
func testCapsEmptyGroup(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	ms, err := b.Members(e.ctx, "g")
	e.must(err, "members of an empty group")
	if len(ms) != 0 {
		t.Fatalf("members of an empty group: got %s", qs(ids(ms)))
	}
}

// A member that joined with nil or empty capabilities has empty ones.
func testCapsNone(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	e.join(b2, "g", []byte{})
	for _, id := range []string{"m1", "m2"} {
		if got := e.memberCaps(b1, "g", id); len(got) != 0 {
			t.Fatalf("capabilities of %s: got %s, want none", q(id), short(got))
		}
	}
}

// UpdateCapabilities replaces the caller's capabilities and nobody
// else's; the incarnation stays.
func testCapsUpdate(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("old"))
	e.join(b2, "g", []byte("other"))
	before, err := b1.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	e.must(b1.UpdateCapabilities(e.ctx, "g", []byte("new")), "update capabilities")
	e.wantCaps(b2, "g", "m1", []byte("new"))
	e.wantCaps(b2, "g", "m2", []byte("other"))
	after, err := b1.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	if after.Incarnation != before.Incarnation {
		t.Fatalf("incarnation changed by an update: %q, then %q", before.Incarnation, after.Incarnation)
	}
	e.must(b1.UpdateCapabilities(e.ctx, "g", nil), "clear capabilities")
	if got := e.memberCaps(b2, "g", "m1"); len(got) != 0 {
		t.Fatalf("capabilities after clearing: got %s, want none", short(got))
	}
}

// Updating capabilities in a group that does not exist: ErrGroupNotFound.
func testCapsUpdateNonexistentGroup(t *testing.T, e *env) {
	b := e.open("m1")
	e.wantErr(b.UpdateCapabilities(e.ctx, "nope", []byte("x")), backend.ErrGroupNotFound, "update in a missing group")
	e.wantGroups(b)
}

// Updating capabilities in a group one has not joined: ErrNotMember, and
// no membership appears.
func testCapsUpdateNotJoined(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	e.wantErr(b.UpdateCapabilities(e.ctx, "g", []byte("x")), backend.ErrNotMember, "update in a group not joined")
	e.wantMembers(b, "g")
}

// 64 KiB of random capabilities round-trip, on join and on update.
func testCapsLarge(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	caps := randomBytes(t, 64<<10)
	e.join(b, "g", caps)
	e.wantCaps(b, "g", "m1", caps)
	caps = randomBytes(t, 64<<10)
	e.must(b.UpdateCapabilities(e.ctx, "g", caps), "update capabilities")
	e.wantCaps(b, "g", "m1", caps)
}

// Capabilities of exactly backend.MaxCapabilitiesLen bytes round-trip:
// every driver stores at least that much.
func testCapsMaxSize(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	caps := randomBytes(t, backend.MaxCapabilitiesLen)
	e.join(b, "g", caps)
	e.wantCaps(b, "g", "m1", caps)
}

// One byte more than backend.MaxCapabilitiesLen is refused with
// ErrInvalidArgument, on join and on update, changing nothing.
func testCapsTooLarge(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	caps := make([]byte, backend.MaxCapabilitiesLen+1)
	e.wantErr(b.Join(e.ctx, "g", caps), backend.ErrInvalidArgument, "join with oversized capabilities")
	e.wantErr(b.JoinCreate(e.ctx, "h", caps), backend.ErrInvalidArgument, "join-create with oversized capabilities")
	e.wantMembers(b, "g")
	e.wantGroups(b, "g")
	e.join(b, "g", []byte("small"))
	e.wantErr(b.UpdateCapabilities(e.ctx, "g", caps), backend.ErrInvalidArgument, "update to oversized capabilities")
	e.wantCaps(b, "g", "m1", []byte("small"))
}

// clockSkew is how far a server's clock may be from the test's.
const clockSkew = 5 * time.Second

// JoinedAt and UpdatedAt are set, sane (around the time of the join, not
// in the future), equal for a fresh join, and the incarnation is set.
func testMemberInfoTimes(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	before := time.Now()
	e.join(b, "g", []byte("x"))
	after := time.Now()
	m, err := b.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	for _, tt := range []struct {
		name string
		give time.Time
	}{{"JoinedAt", m.JoinedAt}, {"UpdatedAt", m.UpdatedAt}} {
		if tt.give.Before(before.Add(-clockSkew)) || tt.give.After(after.Add(clockSkew)) {
			t.Errorf("%s = %v, want between %v and %v (give or take %v)", tt.name, tt.give, before, after, clockSkew)
		}
	}
	if m.UpdatedAt.Before(m.JoinedAt) {
		t.Errorf("UpdatedAt %v is before JoinedAt %v", m.UpdatedAt, m.JoinedAt)
	}
	if m.Incarnation == "" {
		t.Errorf("Incarnation is empty")
	}
}

// An update moves UpdatedAt forward and leaves JoinedAt alone.
func testMemberInfoUpdate(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	e.join(b, "g", []byte("x"))
	m1, err := b.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	// Let the clock move past the stores' resolution (milliseconds).
	e.eventually(waitTimeout, "clock to advance", func() (bool, error) {
		return time.Since(m1.UpdatedAt) > 50*time.Millisecond, nil
	})
	e.must(b.UpdateCapabilities(e.ctx, "g", []byte("y")), "update capabilities")
	m2, err := b.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	if !m2.UpdatedAt.After(m1.UpdatedAt) {
		t.Errorf("UpdatedAt after an update: %v, want after %v", m2.UpdatedAt, m1.UpdatedAt)
	}
	if !m2.JoinedAt.Equal(m1.JoinedAt) {
		t.Errorf("JoinedAt changed by an update: %v, then %v", m1.JoinedAt, m2.JoinedAt)
	}
}
