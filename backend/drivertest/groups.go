package drivertest

import (
	"fmt"
	"testing"

	"github.com/baton-go/baton/backend"
)

var groupTests = []test{
	{"Create", testGroupCreate},
	{"CreateTwice", testGroupCreateTwice},
	{"List", testGroupList},
	{"Delete", testGroupDelete},
	{"DeleteNonexistent", testGroupDeleteNonexistent},
	{"DeleteNonEmpty", testGroupDeleteNonEmpty},
	{"Join", testGroupJoin},
	{"JoinNonexistent", testGroupJoinNonexistent},
	{"JoinCreate", testGroupJoinCreate},
	{"JoinTwice", testGroupJoinTwice},
	{"MemberAlreadyExists", testGroupMemberAlreadyExists},
	{"Leave", testGroupLeave},
	{"LeaveNonexistent", testGroupLeaveNonexistent},
	{"LeaveNotJoined", testGroupLeaveNotJoined},
	{"Rejoin", testGroupRejoin},
	{"MembersOfTwoBackends", testGroupMembersOfTwo},
	{"MembersNonexistent", testGroupMembersNonexistent},
	{"CloseLeaves", testGroupCloseLeaves},
}

// A fresh namespace has no group; a created group is listed.
func testGroupCreate(t *testing.T, e *env) {
	b := e.open("m1")
	e.wantGroups(b)
	e.createGroup(b, "g")
	e.wantGroups(b, "g")
	e.wantMembers(b, "g")
}

// Creating an existing group fails with ErrGroupExists (an
// ErrAlreadyExists), from the creator and from another member.
func testGroupCreateTwice(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	err := b1.CreateGroup(e.ctx, "g")
	e.wantErr(err, backend.ErrGroupExists, "create the group again")
	e.wantErr(err, backend.ErrAlreadyExists, "create the group again")
	e.wantErr(b2.CreateGroup(e.ctx, "g"), backend.ErrGroupExists, "create the group again from another member")
	e.wantGroups(b1, "g")
}

// Five created groups are all listed, by every member.
func testGroupList(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	var want []string
	for i := range 5 {
		g := fmt.Sprintf("group-%d", i)
		e.createGroup(b1, g)
		want = append(want, g)
	}
	e.wantGroups(b1, want...)
	e.wantGroups(b2, want...)
}

// A deleted group is no longer listed; joining it then fails with
// ErrGroupNotFound, and it can be created again.
func testGroupDelete(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	e.createGroup(b, "other")
	e.must(b.DeleteGroup(e.ctx, "g"), "delete group")
	e.wantGroups(b, "other")
	e.wantErr(b.Join(e.ctx, "g", nil), backend.ErrGroupNotFound, "join the deleted group")
	e.wantErr(b.DeleteGroup(e.ctx, "g"), backend.ErrGroupNotFound, "delete the deleted group")
	e.createGroup(b, "g")
	e.wantGroups(b, "g", "other")
}

// Deleting a group that does not exist fails with ErrGroupNotFound (an
// ErrNotFound).
func testGroupDeleteNonexistent(t *testing.T, e *env) {
	b := e.open("m1")
	err := b.DeleteGroup(e.ctx, "nope")
	e.wantErr(err, backend.ErrGroupNotFound, "delete a missing group")
	e.wantErr(err, backend.ErrNotFound, "delete a missing group")
}

// A group with a member cannot be deleted (ErrGroupNotEmpty, by the
// member or anybody else); once the member left, it can.
func testGroupDeleteNonEmpty(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	e.wantErr(b1.DeleteGroup(e.ctx, "g"), backend.ErrGroupNotEmpty, "delete the group of a member")
	e.wantErr(b2.DeleteGroup(e.ctx, "g"), backend.ErrGroupNotEmpty, "delete another member's group")
	e.wantGroups(b2, "g")
	e.wantMembers(b2, "g", "m1")
	e.must(b1.Leave(e.ctx, "g"), "leave")
	e.must(b2.DeleteGroup(e.ctx, "g"), "delete the emptied group")
	e.wantGroups(b2)
}

// A joined member is listed by Members, seen by every member.
func testGroupJoin(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("caps"))
	e.wantMembers(b1, "g", "m1")
	e.wantMembers(b2, "g", "m1")
}

// Joining a group that does not exist fails with ErrGroupNotFound and
// creates nothing.
func testGroupJoinNonexistent(t *testing.T, e *env) {
	b := e.open("m1")
	e.wantErr(b.Join(e.ctx, "nope", nil), backend.ErrGroupNotFound, "join a missing group")
	e.wantGroups(b)
}

// JoinCreate creates a missing group and joins it; on an existing group
// it just joins.
func testGroupJoinCreate(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.must(b1.JoinCreate(e.ctx, "g", []byte("one")), "join-create a missing group")
	e.wantGroups(b1, "g")
	e.must(b2.JoinCreate(e.ctx, "g", []byte("two")), "join-create an existing group")
	e.wantMembers(b1, "g", "m1", "m2")
}

// Joining a group twice from one Backend fails with ErrMemberExists (an
// ErrAlreadyExists) and leaves the first membership alone.
func testGroupJoinTwice(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	e.join(b, "g", []byte("first"))
	err := b.Join(e.ctx, "g", []byte("second"))
	e.wantErr(err, backend.ErrMemberExists, "join twice")
	e.wantErr(err, backend.ErrAlreadyExists, "join twice")
	m, err := b.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	if string(m.Capabilities) != "first" {
		t.Fatalf("capabilities after a refused second join: got %q, want %q", m.Capabilities, "first")
	}
}

// A second Backend with the same member ID cannot join a group the first
// one joined (ErrMemberExists).
func testGroupMemberAlreadyExists(t *testing.T, e *env) {
	b1, twin := e.open("m1"), e.open("m1")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	e.wantErr(twin.Join(e.ctx, "g", nil), backend.ErrMemberExists, "join as a member ID already joined")
	e.wantMembers(b1, "g", "m1")
}

// A member that left is no longer listed; the others are.
func testGroupLeave(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	e.join(b2, "g", nil)
	e.must(b1.Leave(e.ctx, "g"), "leave")
	e.wantMembers(b2, "g", "m2")
	e.wantGroups(b2, "g")
}

// Leaving a group that does not exist fails with ErrGroupNotFound.
func testGroupLeaveNonexistent(t *testing.T, e *env) {
	b := e.open("m1")
	e.wantErr(b.Leave(e.ctx, "nope"), backend.ErrGroupNotFound, "leave a missing group")
}

// Leaving a group one has not joined fails with ErrNotMember (an
// ErrNotFound), also after having left it.
func testGroupLeaveNotJoined(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b2, "g", nil)
	err := b1.Leave(e.ctx, "g")
	e.wantErr(err, backend.ErrNotMember, "leave a group not joined")
	e.wantErr(err, backend.ErrNotFound, "leave a group not joined")
	e.wantMembers(b1, "g", "m2")
	e.must(b2.Leave(e.ctx, "g"), "leave")
	e.wantErr(b2.Leave(e.ctx, "g"), backend.ErrNotMember, "leave twice")
}

// A member that leaves can join again; the new membership has a new
// incarnation and the new capabilities.
func testGroupRejoin(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	e.join(b, "g", []byte("one"))
	first, err := b.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	e.must(b.Leave(e.ctx, "g"), "leave")
	e.join(b, "g", []byte("two"))
	second, err := b.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	if first.Incarnation == "" || first.Incarnation == second.Incarnation {
		t.Fatalf("incarnations of two joins: %q and %q, want two different non-empty ones", first.Incarnation, second.Incarnation)
	}
	if string(second.Capabilities) != "two" {
		t.Fatalf("capabilities after rejoining: got %q, want %q", second.Capabilities, "two")
	}
}

// Two Backends that joined are exactly the members, as both see it.
func testGroupMembersOfTwo(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	e.join(b2, "g", nil)
	e.wantMembers(b1, "g", "m1", "m2")
	e.wantMembers(b2, "g", "m1", "m2")
	ms, err := b1.Members(e.ctx, "g")
	e.must(err, "members")
	if ms[0].ID != "m1" || ms[1].ID != "m2" {
		t.Fatalf("members: got %s, want them sorted by ID", qs(ids(ms)))
	}
}

// Listing the members of a group that does not exist fails with
// ErrGroupNotFound.
func testGroupMembersNonexistent(t *testing.T, e *env) {
	b := e.open("m1")
	_, err := b.Members(e.ctx, "nope")
	e.wantErr(err, backend.ErrGroupNotFound, "members of a missing group")
}

// Closing a Backend leaves its groups at once (tooz's disconnect test);
// the groups themselves stay.
func testGroupCloseLeaves(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.createGroup(b1, "h")
	e.join(b1, "g", nil)
	e.join(b2, "g", nil)
	e.join(b2, "h", nil)
	e.close(b2)
	e.wantMembers(b1, "g", "m1")
	e.wantMembers(b1, "h")
	e.wantGroups(b1, "g", "h")
}
