package etcd2backend

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// A group is a directory /<ns>/g/<group>; its members are keys in it,
// each with the TTL of the session that joined it (renewed with the
// session). Creating a group is creating the directory (prevExist=false),
// and deleting it is deleting the directory without recursive=true, which
// the store refuses while any key is in it: atomic, and a member whose
// TTL ran out is gone from the store and never blocks a delete.
//
// The v2 store creates missing parent directories when a key is written,
// so a Join racing a DeleteGroup could bring the group back. Join
// therefore checks, after writing its member key, whether the directory
// is older than that key; if the key's write created it (same index),
// the group did not exist: the key and the directory are deleted again
// and Join reports CodeGroupNotFound.

// memberRecord is the value of a member key. The times are the writing
// client's wall clock in Unix nanoseconds; Session is the session key
// of the connection that joined.
type memberRecord struct {
	Session      string `json:"s"`
	Joined       int64  `json:"j"`
	Updated      int64  `json:"u"`
	Capabilities []byte `json:"c,omitempty"`
}

func encodeMember(r memberRecord) string {
	b, _ := json.Marshal(r) // strings, integers and bytes always marshal
	return string(b)
}

// decodeMember turns a member key into a Member. The incarnation is the
// key's createdIndex: new at every join.
func decodeMember(n *node) (driver.Member, bool) {
	if n.Dir {
		return driver.Member{}, false
	}
	id, ok := lastSegment(n.Key)
	if !ok {
		return driver.Member{}, false
	}
	m := driver.Member{ID: id, Incarnation: strconv.FormatUint(n.CreatedIndex, 10)}
	var r memberRecord
	if json.Unmarshal([]byte(n.Value), &r) == nil {
		m.Capabilities = r.Capabilities
		if r.Joined != 0 {
			m.JoinedAt = time.Unix(0, r.Joined)
		}
		if r.Updated != 0 {
			m.UpdatedAt = time.Unix(0, r.Updated)
		}
	}
	return m, true
}

// CreateGroup creates the group's directory: CodeGroupExists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("create group %q", group)
	_, err := c.cl.put(ctx, c.keys.group(group), form("dir", "true", "prevExist", "false"))
	if isCode(err, ecodeNodeExist, ecodeNotFile) {
		return driver.Errorf(driver.CodeGroupExists, "%s: exists", op)
	}
	return classify(ctx, op, err)
}

// DeleteGroup deletes the group's directory if it is empty.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("delete group %q", group)
	_, err := c.cl.del(ctx, c.keys.group(group), form("dir", "true"))
	switch {
	case isCode(err, ecodeKeyNotFound):
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	case isCode(err, ecodeDirNotEmpty):
		return driver.Errorf(driver.CodeGroupNotEmpty, "%s: it has members", op)
	}
	return classify(ctx, op, err)
}

// Groups lists the group directories.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	resp, err := c.cl.get(ctx, c.keys.groups(), quorum)
	if isCode(err, ecodeKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(ctx, "list groups", err)
	}
	var out []string
	for _, n := range resp.Node.Nodes {
		if g, ok := lastSegment(n.Key); ok && n.Dir {
			out = append(out, g)
		}
	}
	return out, nil
}

// Join creates this member's key in the group with the session's TTL.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("join group %q", group)
	gk, mk := c.keys.group(group), c.keys.member(group, c.memberID)
	now := time.Now().UnixNano()
	val := encodeMember(memberRecord{Session: c.sessionKey, Joined: now, Updated: now, Capabilities: caps})
	resp, err := c.cl.put(ctx, mk, form("value", val, "ttl", seconds(c.sessionTTL), "prevExist", "false"))
	if isCode(err, ecodeNodeExist) {
		return driver.Errorf(driver.CodeMemberExists, "%s: %q is already a member", op, c.memberID)
	}
	if err != nil {
		return classify(ctx, op, err)
	}
	c.mu.Lock()
	c.members[mk] = val
	c.mu.Unlock()
	created := resp.Node.CreatedIndex
	dir, err := c.cl.get(ctx, gk, quorum)
	if err == nil && dir.Node.CreatedIndex < created {
		return nil
	}
	if err != nil && !isCode(err, ecodeKeyNotFound) {
		// Unknown; the member key stays (it is renewed): the group most
		// likely exists, and a Leave cleans up either way.
		return classify(ctx, op, err)
	}
	// This write created the directory: the group did not exist.
	c.mu.Lock()
	delete(c.members, mk)
	c.mu.Unlock()
	_, _ = c.cl.del(ctx, mk, form("prevIndex", strconv.FormatUint(resp.Node.ModifiedIndex, 10)))
	_, _ = c.cl.del(ctx, gk, form("dir", "true"))
	return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
}

// groupMissing tells CodeGroupNotFound from CodeNotMember after a member
// key was found absent.
func (c *conn) groupMissing(ctx context.Context, op, group string) error {
	_, err := c.cl.get(ctx, c.keys.group(group), quorum)
	switch {
	case isCode(err, ecodeKeyNotFound):
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	case err != nil:
		return classify(ctx, op, err)
	}
	return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
}

// Leave deletes this member's key (whichever connection of the member ID
// wrote it).
func (c *conn) Leave(ctx context.Context, group string) error {
	op := fmt.Sprintf("leave group %q", group)
	mk := c.keys.member(group, c.memberID)
	_, err := c.cl.del(ctx, mk, nil)
	c.mu.Lock()
	delete(c.members, mk)
	c.mu.Unlock()
	if isCode(err, ecodeKeyNotFound) {
		return c.groupMissing(ctx, op, group)
	}
	return classify(ctx, op, err)
}

// Members lists the member keys of the group's directory.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	op := fmt.Sprintf("list members of %q", group)
	resp, err := c.cl.get(ctx, c.keys.group(group), quorum)
	if isCode(err, ecodeKeyNotFound) {
		return nil, driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	var ms []driver.Member
	for _, n := range resp.Node.Nodes {
		if m, ok := decodeMember(n); ok {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// UpdateCapabilities rewrites this member's record with a compare-and-swap
// on its modifiedIndex, keeping its incarnation (createdIndex), its join
// time and its TTL.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("update capabilities in %q", group)
	mk := c.keys.member(group, c.memberID)
	for {
		resp, err := c.cl.get(ctx, mk, quorum)
		if isCode(err, ecodeKeyNotFound) {
			return c.groupMissing(ctx, op, group)
		}
		if err != nil {
			return classify(ctx, op, err)
		}
		var r memberRecord
		_ = json.Unmarshal([]byte(resp.Node.Value), &r) // a damaged record is rewritten whole
		r.Capabilities = caps
		r.Updated = time.Now().UnixNano()
		if r.Joined == 0 {
			r.Joined = r.Updated
		}
		if r.Session == "" {
			r.Session = c.sessionKey
		}
		val := encodeMember(r)
		_, err = c.cl.put(ctx, mk, form("value", val, "ttl", seconds(c.sessionTTL),
			"prevIndex", strconv.FormatUint(resp.Node.ModifiedIndex, 10)))
		if isCode(err, ecodeTestFailed, ecodeKeyNotFound) {
			continue // changed or refreshed in between: read again
		}
		if err != nil {
			return classify(ctx, op, err)
		}
		c.mu.Lock()
		if _, ok := c.members[mk]; ok || r.Session == c.sessionKey {
			c.members[mk] = val
		}
		c.mu.Unlock()
		return nil
	}
}
