package backend

import (
	"context"
	"fmt"
	"sort"

	"github.com/baton-go/baton/backend/driver"
)

// Member is one live member of a group, with its capabilities (opaque
// bytes) and info.
type Member = driver.Member

// CreateGroup creates group. ErrGroupExists if it exists.
func (b *Backend) CreateGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("create group %q", group)
	if err := b.pre("group ID", group); err != nil {
		return err
	}
	return wrap(op, b.conn.CreateGroup(ctx, group))
}

// DeleteGroup deletes an empty group. ErrGroupNotFound, ErrGroupNotEmpty.
func (b *Backend) DeleteGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("delete group %q", group)
	if err := b.pre("group ID", group); err != nil {
		return err
	}
	return wrap(op, b.conn.DeleteGroup(ctx, group))
}

// Groups lists every group, sorted.
func (b *Backend) Groups(ctx context.Context) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	gs, err := b.conn.Groups(ctx)
	if err != nil {
		return nil, wrap("list groups", err)
	}
	sort.Strings(gs)
	return gs, nil
}

// Join makes this member a member of group with capabilities caps (at
// most MaxCapabilitiesLen bytes). ErrGroupNotFound, ErrMemberExists.
func (b *Backend) Join(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("join group %q", group)
	if err := b.pre("group ID", group); err != nil {
		return err
	}
	if err := checkCaps(caps); err != nil {
		return err
	}
	if err := b.conn.Join(ctx, group, caps); err != nil {
		return wrap(op, err)
	}
	b.mu.Lock()
	b.joined[group] = struct{}{}
	b.mu.Unlock()
	return nil
}

// JoinCreate joins group, creating it first when it does not exist.
func (b *Backend) JoinCreate(ctx context.Context, group string, caps []byte) error {
	for {
		err := b.Join(ctx, group, caps)
		if CodeOf(err) != driver.CodeGroupNotFound {
			return err
		}
		if err := b.CreateGroup(ctx, group); err != nil && CodeOf(err) != driver.CodeGroupExists {
			return err
		}
		if ctx.Err() != nil {
			return wrap(fmt.Sprintf("join group %q", group), ctx.Err())
		}
	}
}

// Leave removes this member from group. ErrGroupNotFound, ErrNotMember.
func (b *Backend) Leave(ctx context.Context, group string) error {
	op := fmt.Sprintf("leave group %q", group)
	if err := b.pre("group ID", group); err != nil {
		return err
	}
	err := b.conn.Leave(ctx, group)
	if err == nil || CodeOf(err) == driver.CodeNotMember || CodeOf(err) == driver.CodeGroupNotFound {
		b.mu.Lock()
		delete(b.joined, group)
		b.mu.Unlock()
	}
	return wrap(op, err)
}

// Members lists the live members of group, sorted by ID.
// ErrGroupNotFound.
func (b *Backend) Members(ctx context.Context, group string) ([]Member, error) {
	op := fmt.Sprintf("list members of %q", group)
	if err := b.pre("group ID", group); err != nil {
		return nil, err
	}
	ms, err := b.conn.Members(ctx, group)
	if err != nil {
		return nil, wrap(op, err)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms, nil
}

// Member returns one member of group. ErrGroupNotFound, ErrNotMember.
func (b *Backend) Member(ctx context.Context, group, member string) (Member, error) {
	op := fmt.Sprintf("get member %q of %q", member, group)
	if err := checkName("member ID", member); err != nil {
		return Member{}, err
	}
	ms, err := b.Members(ctx, group)
	if err != nil {
		return Member{}, err
	}
	for _, m := range ms {
		if m.ID == member {
			return m, nil
		}
	}
	return Member{}, newError(driver.CodeNotMember, op, fmt.Errorf("%q has not joined %q", member, group))
}

// UpdateCapabilities replaces this member's capabilities in group.
// ErrGroupNotFound, ErrNotMember.
func (b *Backend) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("update capabilities in %q", group)
	if err := b.pre("group ID", group); err != nil {
		return err
	}
	if err := checkCaps(caps); err != nil {
		return err
	}
	return wrap(op, b.conn.UpdateCapabilities(ctx, group, caps))
}

func (b *Backend) pre(what, name string) error {
	if err := checkName(what, name); err != nil {
		return err
	}
	return b.check()
}
