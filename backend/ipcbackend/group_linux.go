//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Groups and members live in the segment's state, changed under the
// namespace mutex. A member is alive while the session that joined it is.

func groupNotFound(group string) error {
	return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
}

func notMember(member, group string) error {
	return driver.Errorf(driver.CodeNotMember, "member %q has not joined %q", member, group)
}

// CreateGroup creates group: CodeGroupExists when it exists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	return c.update(ctx, func(s *state) error {
		if _, ok := s.Groups[group]; ok {
			return driver.Errorf(driver.CodeGroupExists, "group %q already exists", group)
		}
		s.Groups[group] = &groupRec{Created: time.Now().Round(0)}
		return nil
	})
}

// DeleteGroup deletes group unless a live member remains: members of dead
// sessions are dropped and never block it.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	return c.update(ctx, func(s *state) error {
		g, ok := s.Groups[group]
		if !ok {
			return groupNotFound(group)
		}
		for _, m := range g.Members {
			if c.alive(s, m.Session) {
				return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has live members", group)
			}
		}
		delete(s.Groups, group)
		return nil
	})
}

// Groups lists every group.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	s, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(s.Groups))
	for g := range s.Groups {
		out = append(out, g)
	}
	return out, nil
}

// Join adds this member to group with a fresh incarnation:
// CodeGroupNotFound, CodeMemberExists while a live member of this ID is
// in the group (a dead one is replaced).
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	return c.update(ctx, func(s *state) error {
		g, ok := s.Groups[group]
		if !ok {
			return groupNotFound(group)
		}
		if m, ok := g.Members[c.member]; ok && c.alive(s, m.Session) {
			return driver.Errorf(driver.CodeMemberExists, "member %q has already joined %q", c.member, group)
		}
		if g.Members == nil {
			g.Members = map[string]*memberRec{}
		}
		now := time.Now().Round(0)
		g.Members[c.member] = &memberRec{Session: c.sessHex, Incarnation: randomHex(16), Joined: now, Updated: now,
			Caps: append([]byte(nil), caps...)}
		return nil
	})
}

// Leave removes this member ID's live membership of group, whichever
// connection joined it: CodeGroupNotFound, CodeNotMember.
func (c *conn) Leave(ctx context.Context, group string) error {
	return c.update(ctx, func(s *state) error {
		g, ok := s.Groups[group]
		if !ok {
			return groupNotFound(group)
		}
		m, ok := g.Members[c.member]
		if !ok || !c.alive(s, m.Session) {
			return notMember(c.member, group)
		}
		delete(g.Members, c.member)
		return nil
	})
}

// UpdateCapabilities replaces this member's capabilities in group:
// CodeGroupNotFound, CodeNotMember.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	return c.update(ctx, func(s *state) error {
		g, ok := s.Groups[group]
		if !ok {
			return groupNotFound(group)
		}
		m, ok := g.Members[c.member]
		if !ok || !c.alive(s, m.Session) {
			return notMember(c.member, group)
		}
		m.Caps = append([]byte(nil), caps...)
		m.Updated = time.Now().Round(0)
		if m.Updated.Before(m.Joined) {
			m.Updated = m.Joined
		}
		return nil
	})
}

// Members lists group's live members: CodeGroupNotFound.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	s, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	g, ok := s.Groups[group]
	if !ok {
		return nil, groupNotFound(group)
	}
	out := make([]driver.Member, 0, len(g.Members))
	probed := map[string]bool{}
	for id, m := range g.Members {
		alive, ok := probed[m.Session]
		if !ok {
			alive = c.alive(s, m.Session)
			probed[m.Session] = alive
		}
		if alive {
			out = append(out, driver.Member{ID: id, Capabilities: append([]byte(nil), m.Caps...),
				Incarnation: m.Incarnation, JoinedAt: m.Joined, UpdatedAt: m.Updated})
		}
	}
	return out, nil
}

// read returns the current state (not to be changed) for a call of c.
func (c *conn) read(ctx context.Context) (*state, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	if c.st.mem == nil {
		return nil, c.check(ctx)
	}
	return c.st.read(ctx)
}

// update changes the state for a call of c, under the namespace mutex.
func (c *conn) update(ctx context.Context, edit func(*state) error) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	if c.st.mem == nil {
		return c.check(ctx)
	}
	return c.st.update(ctx, edit)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
