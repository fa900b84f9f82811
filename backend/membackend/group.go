package membackend

import (
	"context"
	"strconv"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// group is one group of a store.
type group struct {
	members  map[string]*member
	watchers map[*groupWatch]struct{}
}

// member is one membership; owner is the connection that joined.
type member struct {
	m     driver.Member
	owner *conn
}

// cloneCaps returns a copy of caps that nobody else holds; nil when empty
// (nil and empty capabilities are equivalent).
func cloneCaps(caps []byte) []byte {
	if len(caps) == 0 {
		return nil
	}
	return append([]byte(nil), caps...)
}

// copyMember returns m with capabilities the caller may keep and modify.
func copyMember(m driver.Member) driver.Member {
	m.Capabilities = cloneCaps(m.Capabilities)
	return m
}

// now returns the wall-clock time, without a monotonic reading, as a
// server would report it.
// now is the connection's clock without its monotonic reading: member
// times are data, compared with ==.
func (c *conn) now() time.Time { return c.clock.Now().Round(0) }

// emitLocked queues ev for every watcher of gr.
func (gr *group) emitLocked(ev driver.GroupEvent) {
	for w := range gr.watchers {
		e := ev
		e.Member = copyMember(ev.Member)
		w.pushLocked(e)
	}
}

// removeMemberLocked drops member id of group name and reports it. Its
// owner has no other membership in the group (a member ID joins a group at
// most once), so the group leaves the owner's joined set.
func removeMemberLocked(name string, gr *group, id string) {
	m := gr.members[id]
	delete(gr.members, id)
	delete(m.owner.joined, name)
	gr.emitLocked(driver.GroupEvent{Type: driver.MemberLeft, Member: driver.Member{ID: id, Incarnation: m.m.Incarnation}})
}

func groupNotFound(name string) error {
	return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", name)
}

// CreateGroup creates an empty group.
func (c *conn) CreateGroup(ctx context.Context, name string) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	if _, ok := s.groups[name]; ok {
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", name)
	}
	s.groups[name] = &group{members: map[string]*member{}, watchers: map[*groupWatch]struct{}{}}
	return nil
}

// DeleteGroup deletes an empty group and ends its watches.
func (c *conn) DeleteGroup(ctx context.Context, name string) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	gr, ok := s.groups[name]
	switch {
	case !ok:
		return groupNotFound(name)
	case len(gr.members) > 0:
		return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has %d members", name, len(gr.members))
	}
	for w := range gr.watchers {
		w.deleted = true
		w.pushLocked(driver.GroupEvent{Type: driver.GroupDeleted})
	}
	delete(s.groups, name)
	return nil
}

// Groups lists the store's groups.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	s := c.s
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.groups))
	for name := range s.groups {
		out = append(out, name)
	}
	return out, nil
}

// Join adds c's member to a group with a fresh incarnation.
func (c *conn) Join(ctx context.Context, name string, caps []byte) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	gr, ok := s.groups[name]
	switch {
	case !ok:
		return groupNotFound(name)
	case gr.members[c.member] != nil:
		return driver.Errorf(driver.CodeMemberExists, "member %q already joined %q", c.member, name)
	}
	t := c.now()
	m := driver.Member{
		ID:           c.member,
		Capabilities: cloneCaps(caps),
		Incarnation:  strconv.FormatUint(nextIncarnation(), 10),
		JoinedAt:     t,
		UpdatedAt:    t,
	}
	gr.members[c.member] = &member{m: m, owner: c}
	c.joined[name] = struct{}{}
	gr.emitLocked(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
	return nil
}

// Leave removes c's member from a group, whichever of the member's
// connections joined it.
func (c *conn) Leave(ctx context.Context, name string) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	gr, ok := s.groups[name]
	switch {
	case !ok:
		return groupNotFound(name)
	case gr.members[c.member] == nil:
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined %q", c.member, name)
	}
	removeMemberLocked(name, gr, c.member)
	return nil
}

// Members lists a group's members.
func (c *conn) Members(ctx context.Context, name string) ([]driver.Member, error) {
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	s := c.s
	defer s.mu.Unlock()
	gr, ok := s.groups[name]
	if !ok {
		return nil, groupNotFound(name)
	}
	return gr.snapshot(), nil
}

// snapshot copies the member list.
func (gr *group) snapshot() []driver.Member {
	out := make([]driver.Member, 0, len(gr.members))
	for _, m := range gr.members {
		out = append(out, copyMember(m.m))
	}
	return out
}

// UpdateCapabilities replaces c's member's capabilities in a group.
func (c *conn) UpdateCapabilities(ctx context.Context, name string, caps []byte) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	gr, ok := s.groups[name]
	switch {
	case !ok:
		return groupNotFound(name)
	case gr.members[c.member] == nil:
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined %q", c.member, name)
	}
	m := gr.members[c.member]
	m.m.Capabilities = cloneCaps(caps)
	if t := c.now(); t.After(m.m.UpdatedAt) {
		m.m.UpdatedAt = t // never goes back, should the wall clock
	}
	gr.emitLocked(driver.GroupEvent{Type: driver.MemberUpdated, Member: m.m})
	return nil
}
