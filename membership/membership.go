// Package membership manages groups of members on any baton backend: join
// and leave, capabilities (opaque bytes, or msgpack-encoded values that
// tooz members can read), member lists with info, and ordered watch
// streams of joins, leaves and capability changes.
package membership

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-go/baton/backend"
)

// Group is a handle on one group of a backend. It does no I/O until a
// method is called and is safe for concurrent use.
type Group struct {
	b  *backend.Backend
	id string
}

// NewGroup returns a handle on group id.
func NewGroup(b *backend.Backend, id string) (*Group, error) {
	if b == nil {
		return nil, fmt.Errorf("group %q: nil backend: %w", id, backend.ErrInvalidArgument)
	}
	if id == "" {
		return nil, fmt.Errorf("group: empty ID: %w", backend.ErrInvalidArgument)
	}
	return &Group{b: b, id: id}, nil
}

// ID returns the group's ID.
func (g *Group) ID() string { return g.id }

// Create creates the group; an error matching backend.ErrGroupExists when
// it exists.
func (g *Group) Create(ctx context.Context) error { return g.b.CreateGroup(ctx, g.id) }

// Delete deletes the group, which must be empty (backend.ErrGroupNotEmpty)
// and exist (backend.ErrGroupNotFound).
func (g *Group) Delete(ctx context.Context) error { return g.b.DeleteGroup(ctx, g.id) }

// Join makes this backend's member a member of the group. Options set the
// capabilities and whether to create a missing group.
func (g *Group) Join(ctx context.Context, opts ...JoinOption) error {
	var o joinOptions
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.err != nil {
		return fmt.Errorf("join group %q: %w", g.id, o.err)
	}
	if o.create {
		return g.b.JoinCreate(ctx, g.id, o.caps)
	}
	return g.b.Join(ctx, g.id, o.caps)
}

// Leave removes this member from the group.
func (g *Group) Leave(ctx context.Context) error { return g.b.Leave(ctx, g.id) }

// UpdateCapabilities replaces this member's capabilities with raw bytes.
func (g *Group) UpdateCapabilities(ctx context.Context, caps []byte) error {
	return g.b.UpdateCapabilities(ctx, g.id, caps)
}

// UpdateCapabilitiesValue replaces this member's capabilities with v,
// msgpack-encoded.
func (g *Group) UpdateCapabilitiesValue(ctx context.Context, v any) error {
	caps, err := EncodeCapabilities(v)
	if err != nil {
		return err
	}
	return g.b.UpdateCapabilities(ctx, g.id, caps)
}

// Members lists the live members, sorted by ID.
func (g *Group) Members(ctx context.Context) ([]Member, error) {
	ms, err := g.b.Members(ctx, g.id)
	if err != nil {
		return nil, err
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = fromBackend(m)
	}
	return out, nil
}

// Member returns one member (backend.ErrNotMember when absent).
func (g *Group) Member(ctx context.Context, id string) (Member, error) {
	m, err := g.b.Member(ctx, g.id, id)
	if err != nil {
		return Member{}, err
	}
	return fromBackend(m), nil
}

// Member is one live member of a group.
type Member struct {
	ID string
	// Capabilities are the raw bytes the member joined or updated with.
	Capabilities []byte
	// Incarnation changes each time the member joins again.
	Incarnation string
	// JoinedAt and UpdatedAt are zero when the backend cannot tell.
	JoinedAt  time.Time
	UpdatedAt time.Time
}

// Decode decodes msgpack-encoded capabilities into v.
func (m Member) Decode(v any) error { return DecodeCapabilities(m.Capabilities, v) }

func fromBackend(m backend.Member) Member {
	return Member{ID: m.ID, Capabilities: m.Capabilities, Incarnation: m.Incarnation, JoinedAt: m.JoinedAt, UpdatedAt: m.UpdatedAt}
}

// JoinOption configures Join.
type JoinOption interface{ apply(*joinOptions) }

type joinOptFunc func(*joinOptions)

func (f joinOptFunc) apply(o *joinOptions) { f(o) }

type joinOptions struct {
	caps   []byte
	create bool
	err    error
}

// WithCapabilities joins with raw capabilities.
func WithCapabilities(caps []byte) JoinOption {
	return joinOptFunc(func(o *joinOptions) { o.caps = caps })
}

// WithCapabilitiesValue joins with v encoded as msgpack.
func WithCapabilitiesValue(v any) JoinOption {
	return joinOptFunc(func(o *joinOptions) { o.caps, o.err = EncodeCapabilities(v) })
}

// CreateIfMissing creates the group when it does not exist (tooz's
// join_group_create).
func CreateIfMissing() JoinOption { return joinOptFunc(func(o *joinOptions) { o.create = true }) }
