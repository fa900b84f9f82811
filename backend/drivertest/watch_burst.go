package drivertest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// burstModel replays watch events and checks that each is a valid
// transition: a member joins only when absent, leaves or changes only
// when present with the same incarnation, incarnations never repeat, and
// the capability versions a member wrote (increasing numbers) are seen in
// increasing order, never twice.
type burstModel struct {
	view    map[string]backend.Member
	lastVer map[string]int
	incs    map[string]bool // every incarnation seen
	log     []string
}

func newBurstModel(initial []backend.Member) *burstModel {
	m := &burstModel{view: map[string]backend.Member{}, lastVer: map[string]int{}, incs: map[string]bool{}}
	for _, x := range initial {
		m.view[x.ID] = x
		m.incs[x.ID+"\x00"+x.Incarnation] = true
	}
	return m
}

// apply applies ev, returning why it is not a valid transition.
func (m *burstModel) apply(ev backend.Event) error {
	m.log = append(m.log, describe(ev))
	id := ev.Member.ID
	cur, present := m.view[id]
	version := func() error {
		v, err := strconv.Atoi(string(ev.Member.Capabilities))
		if err != nil {
			return fmt.Errorf("capabilities %s were never written", short(ev.Member.Capabilities))
		}
		if v <= m.lastVer[id] {
			return fmt.Errorf("capabilities version %d after version %d: reordered or repeated", v, m.lastVer[id])
		}
		m.lastVer[id] = v
		return nil
	}
	switch ev.Type {
	case backend.EventJoined:
		key := id + "\x00" + ev.Member.Incarnation
		switch {
		case present:
			return fmt.Errorf("joined while present (incarnation %q) without a leave", cur.Incarnation)
		case ev.Member.Incarnation == "":
			return fmt.Errorf("joined with an empty incarnation")
		case m.incs[key]:
			return fmt.Errorf("incarnation %q reported joining twice", ev.Member.Incarnation)
		}
		if err := version(); err != nil {
			return err
		}
		m.incs[key] = true
		m.view[id] = ev.Member
	case backend.EventLeft:
		switch {
		case !present:
			return fmt.Errorf("left while absent")
		case ev.Member.Incarnation != cur.Incarnation:
			return fmt.Errorf("left with incarnation %q, present with %q", ev.Member.Incarnation, cur.Incarnation)
		}
		delete(m.view, id)
	case backend.EventCapabilitiesChanged:
		switch {
		case !present:
			return fmt.Errorf("capabilities changed while absent")
		case ev.Member.Incarnation != cur.Incarnation:
			return fmt.Errorf("capabilities changed with incarnation %q, present with %q", ev.Member.Incarnation, cur.Incarnation)
		case bytes.Equal(ev.Member.Capabilities, cur.Capabilities):
			return fmt.Errorf("capabilities changed to the same value")
		}
		if err := version(); err != nil {
			return err
		}
		m.view[id] = ev.Member
	default:
		return fmt.Errorf("unexpected event on a healthy connection")
	}
	return nil
}

// matches reports whether the view equals ms (IDs, incarnations,
// capabilities).
func (m *burstModel) matches(ms []backend.Member) bool {
	if len(ms) != len(m.view) {
		return false
	}
	for _, x := range ms {
		v, ok := m.view[x.ID]
		if !ok || v.Incarnation != x.Incarnation || !bytes.Equal(v.Capabilities, x.Capabilities) {
			return false
		}
	}
	return true
}

// Several members change the group at once, each following its own
// script. A watcher may coalesce changes that fell between two polls,
// but every event must be a valid transition in each member's order,
// nothing is reported twice, and the events up to a later fence join
// bring the watcher's view to the group's final membership.
func testWatchBurst(t *testing.T, e *env) {
	const members = 4
	wb := e.open("watcher")
	bs := make([]*backend.Backend, members)
	for i := range bs {
		bs[i] = e.open(fmt.Sprintf("m%d", i))
	}
	e.createGroup(wb, "g")
	w := e.watch(wb, "g")
	model := newBurstModel(w.Initial())
	var results []<-chan result[struct{}]
	for i, b := range bs {
		results = append(results, async(e, func() (struct{}, error) {
			v := 0
			caps := func() []byte { v++; return []byte(strconv.Itoa(v)) }
			ops := []func() error{
				func() error { return b.Join(e.ctx, "g", caps()) },
				func() error { return b.UpdateCapabilities(e.ctx, "g", caps()) },
				func() error { return b.UpdateCapabilities(e.ctx, "g", caps()) },
				func() error { return b.Leave(e.ctx, "g") },
				func() error { return b.Join(e.ctx, "g", caps()) },
				func() error { return b.UpdateCapabilities(e.ctx, "g", caps()) },
			}
			if i%2 == 0 {
				ops = append(ops, func() error { return b.Leave(e.ctx, "g") })
			}
			for j, op := range ops {
				if err := op(); err != nil {
					return struct{}{}, fmt.Errorf("member %s, operation %d: %w", b.MemberID(), j, err)
				}
			}
			return struct{}{}, nil
		}))
	}
	for _, r := range results {
		_, err := await(e, r, waitTimeout, "a member's script")
		e.must(err, "burst")
	}
	// Every change of the scripts precedes the fence's join. A watcher
	// that diffs listings may report the fence together with (and sorted
	// before) other changes, so the events are read until the view both
	// has the fence and equals the final membership; a second fence then
	// shows that nothing else is queued.
	e.join(e.open("fence"), "g", []byte("1"))
	final, err := wb.Members(e.ctx, "g")
	e.must(err, "members")
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for fenced := false; !fenced || !model.matches(final); {
		var ev backend.Event
		select {
		case x, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended early: %v", w.Err())
			}
			ev = x
		case <-timeout.C:
			t.Fatalf("watcher's view did not reach %s within %v\nevents:\n  %s", qs(ids(final)), waitTimeout, strings.Join(model.log, "\n  "))
		}
		if err := model.apply(ev); err != nil {
			t.Fatalf("invalid event %s: %v\nevents so far:\n  %s", describe(ev), err, strings.Join(model.log, "\n  "))
		}
		fenced = fenced || (ev.Type == backend.EventJoined && ev.Member.ID == "fence")
	}
	e.fence(w, "g", "fence-2")
}
