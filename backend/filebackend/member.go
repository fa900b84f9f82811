//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// memberRecord is the content of a member file (JSON; capabilities in
// base64). Session names the session file whose flock keeps the member
// alive.
type memberRecord struct {
	Member      string    `json:"member"`
	Session     string    `json:"session"`
	Incarnation string    `json:"incarnation"`
	Joined      time.Time `json:"joined"`
	Updated     time.Time `json:"updated"`
	Caps        []byte    `json:"caps,omitempty"`
}

func (r *memberRecord) driverMember() driver.Member {
	return driver.Member{
		ID: r.Member, Capabilities: r.Caps, Incarnation: r.Incarnation,
		JoinedAt: r.Joined, UpdatedAt: r.Updated,
	}
}

// readMember reads a member file; os.ErrNotExist when it is missing.
func readMember(path string) (memberRecord, error) {
	var r memberRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("member file %s: %w", path, err)
	}
	return r, nil
}

// sessionAlive probes a member record's session.
func (c *conn) sessionAlive(name string) (bool, error) {
	if name == c.sess.name {
		return c.alive(c.sess.id)
	}
	if _, ok := parseSessionName(name); !ok {
		return false, nil
	}
	return probeSession(c.l, name)
}

// liveMember reads the member file at path and reports whether its member
// is alive. A missing file, or one of another member ID (a SHA-256
// collision, reported), is not a member.
func (c *conn) liveMember(path, member string) (memberRecord, bool, error) {
	r, err := readMember(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, ioErr("read member", err)
	}
	if r.Member != member {
		return r, false, driver.Errorf(driver.CodeInternal, "member %q: SHA-256 of its ID collides with member %q", member, r.Member)
	}
	alive, err := c.sessionAlive(r.Session)
	if err != nil {
		return r, false, ioErr("probe session", err)
	}
	return r, alive, nil
}

// Join writes this member's record into group under the group's flock.
// CodeGroupNotFound; CodeMemberExists while a live record of the member ID
// exists (a dead one is replaced).
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	fd, err := c.lockGroup(ctx, group)
	if err != nil {
		return err
	}
	defer unlockClose(fd)
	path := c.l.memberPath(group, c.member)
	if _, alive, err := c.liveMember(path, c.member); err != nil || alive {
		if err != nil {
			return err
		}
		return driver.Errorf(driver.CodeMemberExists, "member %q has already joined %q", c.member, group)
	}
	now := time.Now().Round(0)
	r := memberRecord{
		Member: c.member, Session: c.sess.name, Incarnation: randomHex(16),
		Joined: now, Updated: now, Caps: append([]byte(nil), caps...),
	}
	if err := c.writeMember(path, &r); err != nil {
		return err
	}
	c.mu.Lock()
	err = c.usableLocked()
	if err == nil {
		c.joined[group] = r.Incarnation
	}
	c.mu.Unlock()
	if err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

func (c *conn) writeMember(path string, r *memberRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return driver.Wrap(driver.CodeInternal, err)
	}
	if err := writeFileAtomic(c.l.tmp, path, b, c.s.fsync); err != nil {
		return ioErr("write member", err)
	}
	return nil
}

// Leave removes this member ID's live record from group, whichever
// connection wrote it. CodeGroupNotFound, CodeNotMember.
func (c *conn) Leave(ctx context.Context, group string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	fd, err := c.lockGroup(ctx, group)
	if err != nil {
		return err
	}
	defer unlockClose(fd)
	path := c.l.memberPath(group, c.member)
	_, alive, err := c.liveMember(path, c.member)
	if err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.joined, group)
	c.mu.Unlock()
	if !alive {
		_ = os.Remove(path) // a dead member's leftover, if any
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined %q", c.member, group)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return ioErr("leave", err)
	}
	return nil
}

// removeMember removes this connection's membership of group, identified
// by its incarnation, when it is still there (Close, session loss).
func (c *conn) removeMember(ctx context.Context, group, incarnation string) error {
	fd, err := c.lockGroup(ctx, group)
	if err != nil {
		return err
	}
	defer unlockClose(fd)
	path := c.l.memberPath(group, c.member)
	r, err := readMember(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && r.Incarnation != incarnation) {
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined %q", c.member, group)
	}
	if err != nil {
		return ioErr("read member", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return ioErr("leave", err)
	}
	return nil
}

// UpdateCapabilities rewrites this member ID's live record in group with
// new capabilities (atomically, by rename). CodeGroupNotFound,
// CodeNotMember.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	fd, err := c.lockGroup(ctx, group)
	if err != nil {
		return err
	}
	defer unlockClose(fd)
	path := c.l.memberPath(group, c.member)
	r, alive, err := c.liveMember(path, c.member)
	if err != nil {
		return err
	}
	if !alive {
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined %q", c.member, group)
	}
	r.Caps = append([]byte(nil), caps...)
	r.Updated = time.Now().Round(0)
	if !r.Updated.After(r.Joined) {
		r.Updated = r.Joined
	}
	return c.writeMember(path, &r)
}

// Members lists group's live members. Records of dead sessions are left
// out and removed (under the group's flock, re-checked there).
// CodeGroupNotFound.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	return c.members(ctx, group)
}

func (c *conn) members(ctx context.Context, group string) ([]driver.Member, error) {
	dir := c.l.groupDir(group)
	if err := c.checkGroupName(dir, group); err != nil {
		return nil, err
	}
	ms, dead, err := c.scanMembers(group)
	if err != nil {
		return nil, err
	}
	if len(dead) > 0 {
		c.removeDead(ctx, group, dead)
	}
	return ms, nil
}

// listMembersLocked lists group's live members and deletes dead
// members' files; the caller holds the group's flock.
func (c *conn) listMembersLocked(group string) ([]driver.Member, error) {
	ms, dead, err := c.scanMembers(group)
	if err != nil {
		return nil, err
	}
	for _, r := range dead {
		c.removeIfDead(group, r)
	}
	return ms, nil
}

// scanMembers reads every member file of group without locking: live
// members, and the records of dead ones.
func (c *conn) scanMembers(group string) ([]driver.Member, []memberRecord, error) {
	dir := c.l.groupDir(group)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, groupErr(group, "list members of", err)
	}
	var ms []driver.Member
	var dead []memberRecord
	probed := map[string]bool{}
	for _, e := range ents {
		if e.Name()[0] == '.' {
			continue
		}
		r, err := readMember(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // left meanwhile
		}
		if err != nil || encodeName(r.Member) != e.Name() {
			c.log.Debug("ignoring a foreign file in a group directory", zap.String("file", e.Name()), zap.Error(err))
			continue
		}
		alive, ok := probed[r.Session]
		if !ok {
			if alive, err = c.sessionAlive(r.Session); err != nil {
				return nil, nil, ioErr("probe session", err)
			}
			probed[r.Session] = alive
		}
		if alive {
			ms = append(ms, r.driverMember())
		} else {
			dead = append(dead, r)
		}
	}
	return ms, dead, nil
}

// removeDead deletes dead members' files under the group's flock; a
// failure only delays the cleanup to the next listing.
func (c *conn) removeDead(ctx context.Context, group string, dead []memberRecord) {
	fd, err := c.lockGroup(ctx, group)
	if err != nil {
		return
	}
	defer unlockClose(fd)
	for _, r := range dead {
		c.removeIfDead(group, r)
	}
}

// removeIfDead deletes a member file when it still holds the dead
// incarnation r (the member may have joined again meanwhile). The caller
// holds the group's flock.
func (c *conn) removeIfDead(group string, r memberRecord) {
	path := c.l.memberPath(group, r.Member)
	cur, err := readMember(path)
	if err != nil || cur.Incarnation != r.Incarnation {
		return
	}
	if err := os.Remove(path); err == nil {
		c.log.Debug("removed a dead member", zap.String("group", group), zap.String("member", r.Member),
			zap.String("session", r.Session))
	}
}
