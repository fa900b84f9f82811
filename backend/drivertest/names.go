package drivertest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
)

var nameTests = []test{
	{"Groups", testNamesGroups},
	{"Members", testNamesMembers},
	{"Locks", testNamesLocks},
	{"Leaders", testNamesLeaders},
	{"TooLong", testNamesTooLong},
	{"Invalid", testNamesInvalid},
	{"InternalLookalikes", testNamesInternal},
	{"IndependentKinds", testNamesIndependent},
}

// awkwardNames are valid names (non-empty UTF-8 without NUL or control
// characters, at most 1 KiB) that naive encodings mangle, escape the
// namespace with, or collide: separators, dot segments, escapes, case,
// unicode, and exactly 1024-byte names that differ only at the end.
func awkwardNames() []string {
	long := strings.Repeat("x", backend.MaxNameLen)
	// 341 three-byte runes plus one byte: exactly 1024 bytes of UTF-8.
	longUnicode := strings.Repeat("日", 341) + "x"
	return []string{
		"plain", "with space", " leading space", "trailing space ", "a/b/c", "/leading-slash",
		"trailing-slash/", "//", ".", "..", "...", "../../etc", "../../../../etc/passwd", "./x",
		"a/../b", `back\slash`, `..\..\windows`, "%2F", "a%2Fb", "a%20b", "a+b", "a_b", "A_B", "a-b",
		"a:b", "a*b?", `quote'"` + "`", "semi;colon,comma", "#hash", "~tilde", "{braces}[brackets]",
		"<angle>", "$dollar", "ünïcödé", "日本語", "emoji 🚀", "mixed/日本/..", "Ω", "ω",
		"e", "l", "e/x", "l/x", "locks", "leader", "_baton", "baton",
		long, long[:backend.MaxNameLen-1] + "y", long[:backend.MaxNameLen-1], longUnicode,
	}
}

// Every awkward name works as a group ID and round-trips exactly through
// Groups; all of them coexist (no two collide) and each can be joined and
// deleted on its own.
func testNamesGroups(t *testing.T, e *env) {
	b := e.open("m1")
	names := awkwardNames()
	for _, n := range names {
		e.createGroup(b, n)
	}
	e.wantGroups(b, names...)
	for _, n := range names {
		e.join(b, n, []byte(n))
		e.wantMembers(b, n, "m1")
		e.wantCaps(b, n, "m1", []byte(n))
	}
	for i, n := range names {
		e.must(b.Leave(e.ctx, n), "leave "+q(n))
		e.must(b.DeleteGroup(e.ctx, n), "delete group "+q(n))
		e.wantGroups(b, names[i+1:]...)
	}
}

// Every awkward name works as a member ID: each joins one group and
// Members lists exactly them, with their own capabilities; each also
// holds a lock and is reported as its holder.
func testNamesMembers(t *testing.T, e *env) {
	names := awkwardNames()
	var bs []*backend.Backend
	for _, n := range names {
		bs = append(bs, e.open(n))
	}
	e.createGroup(bs[0], "g")
	for _, b := range bs {
		e.join(b, "g", []byte(b.MemberID()))
	}
	e.wantMembers(bs[0], "g", names...)
	for _, n := range names {
		e.wantCaps(bs[0], "g", n, []byte(n))
	}
	for i, b := range bs {
		lock := fmt.Sprintf("lock-%d", i)
		g := e.tryLock(b, lock)
		e.wantHolder(bs[0], lock, b.MemberID(), g.Token())
	}
	for i, b := range bs {
		e.must(b.Leave(e.ctx, "g"), "leave as "+q(b.MemberID()))
		e.wantMembers(bs[0], "g", names[i+1:]...)
	}
}

// Every awkward name works as a lock name: one Backend holds all of them
// at once (two colliding names would make one TryLock fail), another
// Backend is refused each, LockHolder reports each grant, and each is
// free again after its release.
func testNamesLocks(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	names := awkwardNames()
	grants := map[string]*backend.Grant{}
	for _, n := range names {
		grants[n] = e.tryLock(b1, n)
	}
	for _, n := range names {
		e.tryLockBusy(b2, n, backend.LockOptions{})
		e.wantHolder(b2, n, "m1", grants[n].Token())
	}
	for _, n := range names {
		e.release(grants[n])
		e.wantFree(b2, n)
	}
	e.wantGroups(b1)
}

// Every awkward name works as the group of a leadership: one Backend
// leads all of them at once, Leader reports each term, and no leadership
// appears as a group.
func testNamesLeaders(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	names := awkwardNames()
	for _, n := range names {
		g := e.tryCampaign(b1, n)
		e.wantLeader(b2, n, "m1", g.Token())
		e.tryCampaignLoses(b2, n)
	}
	if b2.Characteristics().LeadersInGroups {
		e.wantGroups(b2, names...) // each campaign created its group
		return
	}
	e.wantGroups(b2)
}

// A name one byte over backend.MaxNameLen is refused with
// ErrInvalidArgument everywhere: group, member, lock and leadership.
func testNamesTooLong(t *testing.T, e *env) {
	long := strings.Repeat("x", backend.MaxNameLen+1)
	b := e.open("m1")
	e.createGroup(b, "g")
	checkRefused(e, b, long)
	_, err := e.tryOpen(e.url, long)
	e.wantErr(err, backend.ErrInvalidArgument, "open with a member ID of 1025 bytes")
	e.wantGroups(b, "g")
}

// Empty names, names with NUL and invalid UTF-8 are refused with
// ErrInvalidArgument everywhere.
func testNamesInvalid(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	for _, n := range []string{"", "a\x00b", "\x00", "\xff\xfe", "a\xc3"} {
		checkRefused(e, b, n)
		if n == "" {
			continue // an empty member ID asks for the default one
		}
		_, err := e.tryOpen(e.url, n)
		e.wantErr(err, backend.ErrInvalidArgument, "open with member ID "+q(n))
	}
	e.wantGroups(b, "g")
}

// checkRefused checks that every call taking a name refuses n.
func checkRefused(e *env, b *backend.Backend, n string) {
	e.t.Helper()
	ctx := e.ctx
	calls := []struct {
		name string
		call func() error
	}{
		{"create group", func() error { return b.CreateGroup(ctx, n) }},
		{"delete group", func() error { return b.DeleteGroup(ctx, n) }},
		{"join", func() error { return b.Join(ctx, n, nil) }},
		{"join-create", func() error { return b.JoinCreate(ctx, n, nil) }},
		{"leave", func() error { return b.Leave(ctx, n) }},
		{"members", func() error { _, err := b.Members(ctx, n); return err }},
		{"member", func() error { _, err := b.Member(ctx, "g", n); return err }},
		{"update capabilities", func() error { return b.UpdateCapabilities(ctx, n, nil) }},
		{"watch", func() error { _, err := b.WatchGroup(ctx, n); return err }},
		{"try lock", func() error { _, _, err := b.TryLock(ctx, n, backend.LockOptions{}); return err }},
		{"lock", func() error { _, err := b.Lock(ctx, n, backend.LockOptions{}); return err }},
		{"lock holder", func() error { _, _, err := b.LockHolder(ctx, n); return err }},
		{"break lock", func() error { _, err := b.BreakLock(ctx, n); return err }},
		{"try campaign", func() error { _, _, err := b.TryCampaign(ctx, n, backend.LockOptions{}); return err }},
		{"campaign", func() error { _, err := b.Campaign(ctx, n, backend.LockOptions{}); return err }},
		{"leader", func() error { _, _, err := b.Leader(ctx, n); return err }},
		{"observe leader", func() error { _, err := b.ObserveLeader(ctx, n); return err }},
	}
	for _, c := range calls {
		e.wantErr(c.call(), backend.ErrInvalidArgument, c.name+" with name "+q(n))
	}
}

// Names that look like internal bookkeeping ("locks", "leader", "e",
// "l", ".", "..", "_baton", ...) behave as ordinary group and member
// names; after taking locks and leaderships, Groups lists only the real
// groups and Members only the real members (tooz's ZooKeeper driver
// listed its lock directory as a group and its leader node as a member).
func testNamesInternal(t *testing.T, e *env) {
	groups := []string{"locks", "leader", "leaders", "e", "l", "m", "g", "members", "groups", ".", "..", "_baton", "baton", "e/x", "l/x"}
	b1, leader := e.open("m1"), e.open("leader")
	leads := map[string]*backend.Grant{}
	for _, g := range groups {
		e.createGroup(b1, g)
		e.join(leader, g, nil)
		leads[g] = e.tryCampaign(b1, g)
		e.tryLock(b1, g)
		e.tryLock(leader, "e/"+g)
		e.tryLock(leader, "l/"+g)
	}
	elsewhere := e.tryCampaign(b1, "not-a-group")
	e.tryLock(b1, "not-a-group-either")
	inGroups := b1.Characteristics().LeadersInGroups
	if inGroups {
		// The campaign created the group it lives in.
		e.wantGroups(b1, append([]string{"not-a-group"}, groups...)...)
		e.release(elsewhere)
		e.must(b1.DeleteGroup(e.ctx, "not-a-group"), "delete the group a campaign created")
	}
	e.wantGroups(b1, groups...)
	for _, g := range groups {
		e.wantMembers(b1, g, "leader")
		e.wantLeader(leader, g, "m1", 0)
	}
	for _, g := range groups {
		e.must(leader.Leave(e.ctx, g), "leave "+q(g))
		if inGroups {
			e.wantErr(b1.DeleteGroup(e.ctx, g), backend.ErrGroupNotEmpty, "delete group "+q(g)+" while m1 leads it")
			e.release(leads[g])
		}
		e.must(b1.DeleteGroup(e.ctx, g), "delete group "+q(g))
	}
	e.wantGroups(b1)
}

// A group, a lock, a leadership and a member sharing one name are
// independent: taking one does not take, block or list another.
func testNamesIndependent(t *testing.T, e *env) {
	const n = "x"
	b1, b2 := e.open(n), e.open("m2")
	e.createGroup(b1, n)
	e.join(b1, n, nil)
	lock := e.tryLock(b1, n)
	l := e.tryCampaign(b2, n)
	e.wantHolder(b2, n, n, lock.Token())
	e.wantLeader(b1, n, "m2", l.Token())
	e.wantMembers(b2, n, n)
	e.wantGroups(b2, n)
	e.release(lock)
	e.wantLeader(b1, n, "m2", l.Token())
	e.must(b1.Leave(e.ctx, n), "leave")
	if b2.Characteristics().LeadersInGroups {
		// The leadership lives in the group: it keeps the group.
		e.wantErr(b2.DeleteGroup(e.ctx, n), backend.ErrGroupNotEmpty, "delete the group of a live leadership")
		e.wantLeader(b1, n, "m2", l.Token())
		e.release(l)
		e.must(b2.DeleteGroup(e.ctx, n), "delete group after the resignation")
		e.tryLock(b2, n)
		return
	}
	e.must(b2.DeleteGroup(e.ctx, n), "delete group")
	e.wantLeader(b1, n, "m2", l.Token())
	e.tryLock(b2, n)
}
