package consulbackend

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/baton-go/baton/backend/driver"
)

// WatchGroup pushes group's changes with blocking queries on the group's
// prefix: a snapshot first, then, after every reply whose index moved,
// the difference with the previous listing (departures first, then joins
// and updates in the order Consul applied them). Each reply is a complete
// listing, so a member that left and joined again between two replies
// shows as a new incarnation: a departure then a join, never nothing. A
// reply whose index went backwards (a snapshot restore, a restarted dev
// agent) is emitted as a fresh snapshot, and the backend reports a
// resync. GroupDeleted when the group record goes (or was replaced: deleted
// and created again between two replies); CodeGroupNotFound when the group
// does not exist at the start.
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	op := fmt.Sprintf("watch group %q", group)
	pfx := c.keys.group(group)
	st, err := c.group(ctx, op, group)
	if err != nil {
		return err
	}
	if st.record == nil {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: st.members})
	view := byID(st.members)
	created := st.record.CreateIndex
	index := max(st.index, 1)
	for {
		pairs, got, err := c.block(ctx, op, pfx, index)
		if err != nil {
			return err
		}
		var reset bool
		index, reset = nextIndex(index, got)
		next := c.readGroup(group, pairs, got)
		if next.record == nil || (!reset && next.record.CreateIndex != created) {
			// Gone, or deleted and created again in between.
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return nil
		}
		if reset {
			emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: next.members})
			view, created = byID(next.members), next.record.CreateIndex
			continue
		}
		for _, ev := range diff(view, next.members) {
			emit(ev)
		}
		view = byID(next.members)
	}
}

// byID indexes members by ID.
func byID(ms []driver.Member) map[string]driver.Member {
	out := make(map[string]driver.Member, len(ms))
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

// diff returns the events that turn view into now: departures (sorted by
// ID), then joins and updates in the order of their incarnation.
func diff(view map[string]driver.Member, now []driver.Member) []driver.GroupEvent {
	var left, changed []driver.GroupEvent
	seen := make(map[string]bool, len(now))
	for _, m := range now {
		seen[m.ID] = true
		old, ok := view[m.ID]
		switch {
		case !ok:
			changed = append(changed, driver.GroupEvent{Type: driver.MemberJoined, Member: m})
		case old.Incarnation != m.Incarnation:
			left = append(left, driver.GroupEvent{Type: driver.MemberLeft, Member: old})
			changed = append(changed, driver.GroupEvent{Type: driver.MemberJoined, Member: m})
		case !old.UpdatedAt.Equal(m.UpdatedAt) || string(old.Capabilities) != string(m.Capabilities):
			changed = append(changed, driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
		}
	}
	for id, old := range view {
		if !seen[id] {
			left = append(left, driver.GroupEvent{Type: driver.MemberLeft, Member: old})
		}
	}
	sort.Slice(left, func(i, j int) bool { return left[i].Member.ID < left[j].Member.ID })
	sort.SliceStable(changed, func(i, j int) bool { return incarnation(changed[i].Member) < incarnation(changed[j].Member) })
	return append(left, changed...)
}

func incarnation(m driver.Member) uint64 {
	n, _ := strconv.ParseUint(m.Incarnation, 10, 64)
	return n
}
