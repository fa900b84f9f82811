package drivertest

import (
	"testing"

	"github.com/baton-go/baton/backend"
)

var fencingTests = []test{
	{"SequentialGrants", testFencingSequential},
	{"LeadershipTerms", testFencingTerms},
	{"AfterClose", testFencingAfterClose},
}

// Sequential grants of one name, by three Backends in turn and through
// TryLock and Lock alike, carry strictly increasing tokens, each reported
// by LockHolder.
func testFencingSequential(t *testing.T, e *env) {
	bs := []*backend.Backend{e.open("m1"), e.open("m2"), e.open("m3")}
	var last uint64
	for i := range 12 {
		b := bs[i%len(bs)]
		var g *backend.Grant
		if i%2 == 0 {
			g = e.tryLock(b, "l")
		} else {
			var err error
			g, err = b.Lock(e.ctx, "l", backend.LockOptions{})
			e.must(err, "lock")
		}
		if g.Token() <= last {
			t.Fatalf("grant %d (%s): token %d is not above the previous %d", i, q(b.MemberID()), g.Token(), last)
		}
		last = g.Token()
		e.wantHolder(bs[0], "l", b.MemberID(), g.Token())
		e.release(g)
	}
}

// Leadership terms of one group carry strictly increasing tokens, which
// Leader reports.
func testFencingTerms(t *testing.T, e *env) {
	bs := []*backend.Backend{e.open("m1"), e.open("m2"), e.open("m3")}
	var last uint64
	for i := range 9 {
		b := bs[i%len(bs)]
		g := e.tryCampaign(b, "g")
		if g.Token() <= last {
			t.Fatalf("term %d (%s): token %d is not above the previous %d", i, q(b.MemberID()), g.Token(), last)
		}
		last = g.Token()
		e.wantLeader(bs[0], "g", b.MemberID(), g.Token())
		e.release(g)
	}
}

// Tokens keep increasing when the holders' Backends close and new ones
// take the lock and leadership.
func testFencingAfterClose(t *testing.T, e *env) {
	var lastLock, lastTerm uint64
	for i := range 4 {
		b := e.open("m" + itoa(i))
		g := e.tryLock(b, "l")
		l := e.tryCampaign(b, "g")
		if g.Token() <= lastLock || l.Token() <= lastTerm {
			t.Fatalf("round %d: lock token %d (previous %d), term token %d (previous %d): want both above", i, g.Token(), lastLock, l.Token(), lastTerm)
		}
		lastLock, lastTerm = g.Token(), l.Token()
		e.close(b)
	}
}
