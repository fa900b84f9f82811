package memcachedbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/baton-go/baton/backend/driver"
)

// groupValue is a group's record: its name, the nonce of its creation and
// its members, each with the incarnation of its join and the session
// (liveness key) that keeps it alive.
type groupValue struct {
	Name    string               `json:"n"`
	Nonce   string               `json:"c"`
	Members map[string]memberRef `json:"m"`
}

type memberRef struct {
	Incarnation string `json:"i"`
	Session     string `json:"s"`
}

// memberValue is one incarnation's record: capabilities and times.
type memberValue struct {
	Group        string `json:"g"`
	Member       string `json:"m"`
	Incarnation  string `json:"i"`
	Capabilities []byte `json:"c"`
	JoinedAt     int64  `json:"j"`
	UpdatedAt    int64  `json:"u"`
}

// groupListValue is the list of groups.
type groupListValue struct {
	Groups []string `json:"g"`
}

func groupNotFound(g string) error {
	return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", g)
}

// getGroup reads a group's record with its CAS value.
func (c *conn) getGroup(ctx context.Context, g string) (*memcache.Item, *groupValue, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, classify(err)
	}
	it, err := c.mc.Get(c.ks.group(g))
	if errors.Is(err, memcache.ErrCacheMiss) {
		c.mu.Lock()
		_, joined := c.joined[g]
		c.mu.Unlock()
		if joined {
			// This member joined it and did not see it deleted.
			return nil, nil, driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist (this member had joined it; deleted by another member, or %w)", g, errEvicted)
		}
		return nil, nil, groupNotFound(g)
	}
	if err != nil {
		return nil, nil, classify(fmt.Errorf("group %q: %w", g, err))
	}
	var v groupValue
	if err := json.Unmarshal(it.Value, &v); err != nil || v.Name != g {
		return nil, nil, driver.Errorf(driver.CodeInternal, "group %q: unexpected record", g)
	}
	if v.Members == nil {
		v.Members = map[string]memberRef{}
	}
	return it, &v, nil
}

// casGroup writes v back over it; conflict reports a concurrent write
// (retry), a deleted record is GroupNotFound.
func (c *conn) casGroup(it *memcache.Item, v *groupValue) (conflict bool, err error) {
	it.Value, _ = json.Marshal(v)
	it.Expiration = 0
	err = c.mc.CompareAndSwap(it)
	switch {
	case errors.Is(err, memcache.ErrCASConflict):
		return true, nil
	case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCacheMiss):
		return false, groupNotFound(v.Name)
	case err != nil:
		return false, classify(err)
	}
	return false, nil
}

// updateGroup runs fn on the group's record in a bounded gets/cas loop;
// fn returns false to leave the record alone.
func (c *conn) updateGroup(ctx context.Context, g string, fn func(v *groupValue) (bool, error)) error {
	for i := 0; i < maxCASRetries; i++ {
		it, v, err := c.getGroup(ctx, g)
		if err != nil {
			return err
		}
		write, err := fn(v)
		if err != nil || !write {
			return err
		}
		conflict, err := c.casGroup(it, v)
		if err != nil || !conflict {
			return err
		}
	}
	return classify(fmt.Errorf("group %q: %w", g, errContended))
}

// updateGroupList adds or removes a name in the list of groups.
func (c *conn) updateGroupList(ctx context.Context, g string, add bool) error {
	key := c.ks.groupList()
	for i := 0; i < maxCASRetries; i++ {
		if err := ctx.Err(); err != nil {
			return classify(err)
		}
		it, err := c.mc.Get(key)
		if errors.Is(err, memcache.ErrCacheMiss) {
			if !add {
				return nil
			}
			b, _ := json.Marshal(groupListValue{Groups: []string{g}})
			err = c.mc.Add(&memcache.Item{Key: key, Value: b})
			if errors.Is(err, memcache.ErrNotStored) {
				continue
			}
			return classify(err)
		}
		if err != nil {
			return classify(err)
		}
		var l groupListValue
		if err := json.Unmarshal(it.Value, &l); err != nil {
			return driver.Errorf(driver.CodeInternal, "list of groups: unexpected record")
		}
		out := l.Groups[:0:0]
		found := false
		for _, n := range l.Groups {
			if n == g {
				found = true
				if !add {
					continue
				}
			}
			out = append(out, n)
		}
		if add == found {
			return nil
		}
		if add {
			out = append(out, g)
		}
		it.Value, _ = json.Marshal(groupListValue{Groups: out})
		err = c.mc.CompareAndSwap(it)
		if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
			continue
		}
		return classify(err)
	}
	return classify(fmt.Errorf("list of groups: %w", errContended))
}

// CreateGroup adds the group's record, then lists it.
func (c *conn) CreateGroup(ctx context.Context, g string) error {
	if err := ctx.Err(); err != nil {
		return classify(err)
	}
	b, _ := json.Marshal(groupValue{Name: g, Nonce: newNonce(), Members: map[string]memberRef{}})
	err := c.mc.Add(&memcache.Item{Key: c.ks.group(g), Value: b})
	if errors.Is(err, memcache.ErrNotStored) {
		// Make sure an existing group is listed (the list may have been
		// evicted), then report it.
		if lerr := c.updateGroupList(ctx, g, true); lerr != nil {
			return lerr
		}
		return driver.Errorf(driver.CodeGroupExists, "group %q already exists", g)
	}
	if err != nil {
		return classify(fmt.Errorf("create group %q: %w", g, err))
	}
	return c.updateGroupList(ctx, g, true)
}

// liveness reads the liveness keys of v's members and the records of
// their incarnations: a member is alive while its liveness key holds its
// ID and its record exists.
func (c *conn) liveness(ctx context.Context, g string, v *groupValue) (alive map[string]*memberValue, err error) {
	if err := ctx.Err(); err != nil {
		return nil, classify(err)
	}
	keys := make([]string, 0, 2*len(v.Members))
	for id, ref := range v.Members {
		keys = append(keys, c.ks.session(ref.Session), c.ks.member(g, id, ref.Incarnation))
	}
	items := map[string]*memcache.Item{}
	if len(keys) > 0 {
		if items, err = c.mc.GetMulti(keys); err != nil {
			return nil, classify(fmt.Errorf("members of %q: %w", g, err))
		}
	}
	alive = map[string]*memberValue{}
	for id, ref := range v.Members {
		s, ok := items[c.ks.session(ref.Session)]
		if !ok || string(s.Value) != id {
			continue
		}
		m, ok := items[c.ks.member(g, id, ref.Incarnation)]
		if !ok {
			c.log.Warn("memcached: a member record is gone (evicted?); the member is dropped from its group")
			continue
		}
		var mv memberValue
		if json.Unmarshal(m.Value, &mv) != nil || mv.Member != id || mv.Incarnation != ref.Incarnation {
			continue
		}
		alive[id] = &mv
	}
	return alive, nil
}

// prune drops from the group's record the members not in alive (one
// compare-and-swap; a conflict leaves it to the next lister) and deletes
// their records.
func (c *conn) prune(g string, it *memcache.Item, v *groupValue, alive map[string]*memberValue) {
	var dead []string
	for id, ref := range v.Members {
		if alive[id] == nil {
			dead = append(dead, c.ks.member(g, id, ref.Incarnation))
			delete(v.Members, id)
		}
	}
	if len(dead) == 0 {
		return
	}
	if conflict, err := c.casGroup(it, v); err != nil || conflict {
		return
	}
	for _, k := range dead {
		_ = c.mc.Delete(k)
	}
}

// DeleteGroup deletes the record of a group without live members by
// compare-and-delete, then unlists it.
func (c *conn) DeleteGroup(ctx context.Context, g string) error {
	key := c.ks.group(g)
	addr, err := c.pick(key)
	if err != nil {
		return classify(err)
	}
	for i := 0; i < maxCASRetries; i++ {
		it, v, err := c.getGroup(ctx, g)
		if err != nil {
			return err
		}
		alive, err := c.liveness(ctx, g, v)
		if err != nil {
			return err
		}
		if len(alive) > 0 {
			return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has %d members", g, len(alive))
		}
		r, err := c.meta.do(ctx, addr, func(*metaConn) (string, []byte, error) {
			return fmt.Sprintf("md %s C%d", key, it.CasID), nil, nil
		})
		if err != nil {
			return classify(fmt.Errorf("delete group %q: %w", g, err))
		}
		switch r.status {
		case "EX":
			continue
		case "NF":
			return groupNotFound(g)
		case "HD":
		default:
			return classify(protocolError("md: " + r.status))
		}
		for id, ref := range v.Members {
			_ = c.mc.Delete(c.ks.member(g, id, ref.Incarnation))
		}
		return c.updateGroupList(ctx, g, false)
	}
	return classify(fmt.Errorf("delete group %q: %w", g, errContended))
}

// Groups lists the groups of the list whose record exists; a listed group
// without a record (deleted half-way, or evicted) is dropped from the
// list.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, classify(err)
	}
	it, err := c.mc.Get(c.ks.groupList())
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(fmt.Errorf("list groups: %w", err))
	}
	var l groupListValue
	if err := json.Unmarshal(it.Value, &l); err != nil {
		return nil, driver.Errorf(driver.CodeInternal, "list of groups: unexpected record")
	}
	keys := make([]string, len(l.Groups))
	for i, g := range l.Groups {
		keys[i] = c.ks.group(g)
	}
	items := map[string]*memcache.Item{}
	if len(keys) > 0 {
		if items, err = c.mc.GetMulti(keys); err != nil {
			return nil, classify(fmt.Errorf("list groups: %w", err))
		}
	}
	out := make([]string, 0, len(l.Groups))
	for i, g := range l.Groups {
		if _, ok := items[keys[i]]; ok {
			out = append(out, g)
		}
	}
	return out, nil
}

func (c *conn) memberExists(g string) error {
	return driver.Errorf(driver.CodeMemberExists, "member %q already joined group %q", c.member, g)
}

func (c *conn) notMember(g string, cause error) error {
	if cause != nil {
		return driver.Errorf(driver.CodeNotMember, "member %q is not in group %q: %w", c.member, g, cause)
	}
	return driver.Errorf(driver.CodeNotMember, "member %q is not in group %q", c.member, g)
}

// Join writes the record of a new incarnation, then adds it to the
// group's record (replacing a dead incarnation of the same member).
func (c *conn) Join(ctx context.Context, g string, caps []byte) error {
	inc := newNonce()
	now := c.now().UnixNano()
	mkey := c.ks.member(g, c.member, inc)
	b, _ := json.Marshal(memberValue{Group: g, Member: c.member, Incarnation: inc, Capabilities: caps, JoinedAt: now, UpdatedAt: now})
	if err := ctx.Err(); err != nil {
		return classify(err)
	}
	if err := c.mc.Set(&memcache.Item{Key: mkey, Value: b}); err != nil {
		return classify(fmt.Errorf("join %q: %w", g, err))
	}
	err := c.updateGroup(ctx, g, func(v *groupValue) (bool, error) {
		if ref, ok := v.Members[c.member]; ok {
			alive, err := c.liveness(ctx, g, &groupValue{Name: g, Members: map[string]memberRef{c.member: ref}})
			if err != nil {
				return false, err
			}
			if alive[c.member] != nil {
				return false, c.memberExists(g)
			}
			_ = c.mc.Delete(c.ks.member(g, c.member, ref.Incarnation))
		}
		v.Members[c.member] = memberRef{Incarnation: inc, Session: c.sid}
		return true, nil
	})
	if err != nil {
		_ = c.mc.Delete(mkey)
		return err
	}
	c.mu.Lock()
	c.joined[g] = inc
	c.mu.Unlock()
	return nil
}

// Leave removes this member from the group's record (whichever connection
// joined it), then deletes its record.
func (c *conn) Leave(ctx context.Context, g string) error {
	return c.leave(ctx, g, "")
}

// leave removes the member's incarnation inc (any when inc is empty).
func (c *conn) leave(ctx context.Context, g, inc string) error {
	var gone memberRef
	err := c.updateGroup(ctx, g, func(v *groupValue) (bool, error) {
		ref, ok := v.Members[c.member]
		if !ok || inc != "" && ref.Incarnation != inc {
			return false, c.notMember(g, nil)
		}
		gone = ref
		delete(v.Members, c.member)
		return true, nil
	})
	c.mu.Lock()
	if cur, ok := c.joined[g]; ok && (err == nil && cur == gone.Incarnation || inc != "" && cur == inc) {
		delete(c.joined, g)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_ = c.mc.Delete(c.ks.member(g, c.member, gone.Incarnation))
	return nil
}

// Members lists the live members, pruning the dead ones.
func (c *conn) Members(ctx context.Context, g string) ([]driver.Member, error) {
	it, v, err := c.getGroup(ctx, g)
	if err != nil {
		return nil, err
	}
	alive, err := c.liveness(ctx, g, v)
	if err != nil {
		return nil, err
	}
	c.prune(g, it, v, alive)
	out := make([]driver.Member, 0, len(alive))
	for id, mv := range alive {
		out = append(out, driver.Member{
			ID: id, Capabilities: mv.Capabilities, Incarnation: mv.Incarnation,
			JoinedAt: time.Unix(0, mv.JoinedAt), UpdatedAt: time.Unix(0, mv.UpdatedAt),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// UpdateCapabilities rewrites the record of this member's incarnation
// (gets/cas), keeping its join time.
func (c *conn) UpdateCapabilities(ctx context.Context, g string, caps []byte) error {
	_, v, err := c.getGroup(ctx, g)
	if err != nil {
		return err
	}
	ref, ok := v.Members[c.member]
	if !ok {
		return c.notMember(g, nil)
	}
	mkey := c.ks.member(g, c.member, ref.Incarnation)
	for i := 0; i < maxCASRetries; i++ {
		if err := ctx.Err(); err != nil {
			return classify(err)
		}
		it, err := c.mc.Get(mkey)
		if errors.Is(err, memcache.ErrCacheMiss) {
			return c.notMember(g, errEvicted)
		}
		if err != nil {
			return classify(fmt.Errorf("update capabilities in %q: %w", g, err))
		}
		var mv memberValue
		if err := json.Unmarshal(it.Value, &mv); err != nil {
			return driver.Errorf(driver.CodeInternal, "member record in %q: unexpected value", g)
		}
		mv.Capabilities = caps
		mv.UpdatedAt = max(c.now().UnixNano(), mv.JoinedAt)
		it.Value, _ = json.Marshal(mv)
		err = c.mc.CompareAndSwap(it)
		switch {
		case errors.Is(err, memcache.ErrCASConflict):
			continue
		case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCacheMiss):
			return c.notMember(g, nil)
		}
		return classify(err)
	}
	return classify(fmt.Errorf("update capabilities in %q: %w", g, errContended))
}
