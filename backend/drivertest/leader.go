package drivertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

var leaderTests = []test{
	{"NoneBeforeCampaign", testLeaderNone},
	{"TryCampaign", testLeaderTryCampaign},
	{"FirstWins", testLeaderFirstWins},
	{"StandDown", testLeaderStandDown},
	{"CloseHandsOver", testLeaderCloseHandsOver},
	{"CampaignWaits", testLeaderCampaignWaits},
	{"CampaignTimeout", testLeaderCampaignTimeout},
	{"NotListedAsMember", testLeaderNotMember},
	{"Observe", testLeaderObserve},
}

// tryCampaign makes b the leader of group, failing unless it wins.
func (e *env) tryCampaign(b *backend.Backend, group string) *backend.Grant {
	e.t.Helper()
	g, ok, err := b.TryCampaign(e.ctx, group, backend.LockOptions{})
	e.must(err, "campaign in "+q(group)+" as "+q(b.MemberID()))
	if !ok {
		e.t.Fatalf("campaign in %s as %s: lost, want won", q(group), q(b.MemberID()))
	}
	return g
}

// tryCampaignLoses fails unless b's TryCampaign in group loses.
func (e *env) tryCampaignLoses(b *backend.Backend, group string) {
	e.t.Helper()
	g, ok, err := b.TryCampaign(e.ctx, group, backend.LockOptions{})
	e.must(err, "campaign in "+q(group)+" as "+q(b.MemberID()))
	if ok {
		e.t.Fatalf("campaign in %s as %s: won with token %d while another member leads", q(group), q(b.MemberID()), g.Token())
	}
}

// There is no leader before anyone campaigns, also after members joined,
// and also in a group that does not exist.
func testLeaderNone(t *testing.T, e *env) {
	b := e.open("m1")
	e.wantNoLeader(b, "nope")
	e.createGroup(b, "g")
	e.join(b, "g", nil)
	e.wantNoLeader(b, "g")
}

// TryCampaign wins an uncontested group (which need not exist); Leader
// then reports the member with the term's token; campaigning again from
// the leader loses (leadership is not reentrant).
func testLeaderTryCampaign(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g := e.tryCampaign(b1, "g")
	if g.Name() != "g" || g.Context().Err() != nil {
		t.Fatalf("leadership grant: name %q, context error %v; want \"g\" and a live context", g.Name(), g.Context().Err())
	}
	e.wantLeader(b1, "g", "m1", g.Token())
	e.wantLeader(b2, "g", "m1", g.Token())
	e.tryCampaignLoses(b1, "g")
	e.wantLeader(b2, "g", "m1", g.Token())
}

// With several candidates the first wins, and the others lose until it
// steps down.
func testLeaderFirstWins(t *testing.T, e *env) {
	b1, b2, b3 := e.open("m1"), e.open("m2"), e.open("m3")
	g := e.tryCampaign(b1, "g")
	e.tryCampaignLoses(b2, "g")
	e.tryCampaignLoses(b3, "g")
	e.wantLeader(b3, "g", "m1", g.Token())
}

// Releasing leadership stands down: another candidate then wins at once,
// and leadership can go back and forth.
func testLeaderStandDown(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryCampaign(b1, "g")
	e.tryCampaignLoses(b2, "g")
	e.release(g1)
	e.wantNoLeader(b2, "g")
	g2 := e.tryCampaign(b2, "g")
	e.tryCampaignLoses(b1, "g")
	e.wantLeader(b1, "g", "m2", g2.Token())
	e.release(g2)
	g3 := e.tryCampaign(b1, "g")
	e.wantLeader(b2, "g", "m1", g3.Token())
}

// Closing the leader's Backend ends its leadership at once: a waiting
// candidate wins and becomes the leader.
func testLeaderCloseHandsOver(t *testing.T, e *env) {
	b1, b2, b3 := e.open("m1"), e.open("m2"), e.open("m3")
	g1 := e.tryCampaign(b1, "g")
	won := async(e, func() (*backend.Grant, error) { return b2.Campaign(e.ctx, "g", backend.LockOptions{}) })
	notYet(e, won, "Campaign while another member leads")
	e.close(b1)
	g2, err := await(e, won, waitTimeout, "Campaign after the leader closed")
	e.must(err, "campaign after the leader closed")
	if g2.Token() <= g1.Token() {
		t.Fatalf("new term's token %d is not above the old term's %d", g2.Token(), g1.Token())
	}
	e.wantLeader(b3, "g", "m2", g2.Token())
}

// Campaign blocks while another member leads and wins once it resigns.
func testLeaderCampaignWaits(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryCampaign(b1, "g")
	won := async(e, func() (*backend.Grant, error) { return b2.Campaign(e.ctx, "g", backend.LockOptions{}) })
	notYet(e, won, "Campaign while another member leads")
	e.release(g1)
	g2, err := await(e, won, waitTimeout, "Campaign after the leader resigned")
	e.must(err, "campaign after the leader resigned")
	e.wantLeader(b1, "g", "m2", g2.Token())
}

// Campaign with a context that times out returns an error matching
// context.DeadlineExceeded and leaves the member without leadership.
func testLeaderCampaignTimeout(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryCampaign(b1, "g")
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	g, err := b2.Campaign(ctx, "g", backend.LockOptions{})
	if err == nil {
		t.Fatalf("campaign with a short deadline won with token %d while another member leads", g.Token())
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backend.ErrDeadlineExceeded) {
		t.Fatalf("campaign with a short deadline: got %v, want an error matching context.DeadlineExceeded and ErrDeadlineExceeded", err)
	}
	e.wantLeader(b2, "g", "m1", g1.Token())
	e.release(g1)
	e.wantNoLeader(b2, "g")
	e.tryCampaign(b2, "g")
}

// Leadership is not membership: the leader of a group is not listed as a
// member of it, and a leadership record is never listed as a group.
func testLeaderNotMember(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b1, "g")
	e.join(b2, "g", nil)
	e.tryCampaign(b1, "g")
	e.tryCampaign(b1, "elsewhere")
	e.wantMembers(b1, "g", "m2")
	if b1.Characteristics().LeadersInGroups {
		// The campaign created the group it lives in, without a member.
		e.wantGroups(b1, "elsewhere", "g")
		e.wantMembers(b1, "elsewhere")
		return
	}
	e.wantGroups(b1, "g")
}

// leaderWatcher reads a LeaderWatch and checks that consecutive states
// differ.
type leaderWatcher struct {
	e    *env
	w    *backend.LeaderWatch
	last *backend.LeaderChange
}

// until reads changes until one satisfies ok, failing after waitTimeout.
// Intermediate states may be skipped (the newest state wins) but never
// repeated.
func (lw *leaderWatcher) until(what string, ok func(backend.LeaderChange) bool) backend.LeaderChange {
	e := lw.e
	e.t.Helper()
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	for {
		select {
		case c, open := <-lw.w.Changes():
			if !open {
				e.t.Fatalf("leader watch ended while waiting for %s: %v", what, lw.w.Err())
			}
			if lw.last != nil && *lw.last == c {
				e.t.Fatalf("leader watch repeated the state %+v", c)
			}
			lw.last = &c
			if ok(c) {
				return c
			}
		case <-t.C:
			e.t.Fatalf("leader watch: no %s within %v (last state %+v)", what, waitTimeout, lw.last)
		}
	}
}

func noLeader(c backend.LeaderChange) bool { return !c.Held }

func leaderIs(member string, token uint64) func(backend.LeaderChange) bool {
	return func(c backend.LeaderChange) bool {
		return c.Held && c.Leader.Member == member && c.Leader.Token == token
	}
}

// ObserveLeader starts with the current state and follows every change:
// no leader, a leader with its token, a successor, no leader again; it
// ends with Err matching ErrCanceled when closed.
func testLeaderObserve(t *testing.T, e *env) {
	b1, b2, ob := e.open("m1"), e.open("m2"), e.open("observer")
	w, err := ob.ObserveLeader(e.ctx, "g")
	e.must(err, "observe leader")
	t.Cleanup(w.Close)
	lw := &leaderWatcher{e: e, w: w}
	lw.until("no leader", noLeader)
	g1 := e.tryCampaign(b1, "g")
	lw.until(fmt.Sprintf("leader m1 with token %d", g1.Token()), leaderIs("m1", g1.Token()))
	won := async(e, func() (*backend.Grant, error) { return b2.Campaign(e.ctx, "g", backend.LockOptions{}) })
	notYet(e, won, "Campaign while another member leads")
	e.release(g1)
	g2, err := await(e, won, waitTimeout, "Campaign after the leader resigned")
	e.must(err, "campaign after the leader resigned")
	lw.until(fmt.Sprintf("leader m2 with token %d", g2.Token()), leaderIs("m2", g2.Token()))
	e.release(g2)
	lw.until("no leader", noLeader)

	// A second observer starts with the current leader.
	g3 := e.tryCampaign(b1, "g")
	w2, err := ob.ObserveLeader(e.ctx, "g")
	e.must(err, "observe leader")
	t.Cleanup(w2.Close)
	first := (&leaderWatcher{e: e, w: w2}).until("a first state", func(backend.LeaderChange) bool { return true })
	if !leaderIs("m1", g3.Token())(first) {
		t.Fatalf("first state of a new observer: %+v, want leader m1 with token %d", first, g3.Token())
	}
	w2.Close()
	for range w2.Changes() {
	}
	e.wantErr(w2.Err(), backend.ErrCanceled, "leader watch error after Close")
}
