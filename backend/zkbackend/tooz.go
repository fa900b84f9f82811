package zkbackend

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: tooz's KazooDriver layout and kazoo's Lock recipe, so that
// baton and tooz processes share groups, members, leaders and locks on one
// ensemble:
//
//	/<ns>                              root (namespace, tooz by default)
//	/<ns>/<group>                      persistent, no data
//	/<ns>/<group>/<member>             ephemeral, data = capabilities (msgpack)
//	/<ns>/<group>/leader               kazoo Lock of the group's leader
//	/<ns>/locks/<name>                 kazoo Lock of lock <name>
//	<lock dir>/<uuid4hex>__lock__<seq> ephemeral-sequential contender, data = member ID
//
// A lock (or leadership) is held by the contender with the lowest
// sequence, ordered as kazoo orders them (the 10-digit sequence as a
// string); a waiter watches its predecessor. Baton's handover window and
// confirmation are off: kazoo never confirms its turn.

// toozNamespace is tooz's default root znode.
const toozNamespace = "tooz"

// Names of tooz's layout that are not groups or members: the locks
// directory sits among the groups, the leader lock among the members.
const (
	toozLocksDir  = "locks"
	toozLeaderDir = "leader"
)

// toozEmptyCaps is msgpack's encoding of b"", tooz's default capabilities.
var toozEmptyCaps = []byte{0xc4, 0x00}

const compatDoc = "With tooz, baton shares tooz's root (/tooz unless namespace is set), groups /<ns>/<group>, ephemeral members holding msgpack capabilities, kazoo's Lock recipe for locks (/<ns>/locks/<name>) and leaders (/<ns>/<group>/leader); it gives up shared locks (kazoo's exclusive Lock would not see them) and strong fencing (tooz holders take no token: fencing is partial), and a campaign creates the group's znode, as in tooz."

// characteristicsFor gives the characteristics of a connection opened
// with v: in compat=tooz mode fencing is partial (tooz holders have no
// token) and there are no shared locks.
func characteristicsFor(v driver.Values) driver.Characteristics {
	ch := Info().Characteristics
	if v.String("compat") == driver.CompatTooz {
		ch.Fencing = driver.FencingPartial
		ch.SharedLocks = false
		ch.LeadersInGroups = true // tooz's leader lock is /<ns>/<group>/leader
	}
	return ch
}

// toozIface is what a compat=tooz connection offers: everything but
// SharedLocker.
type toozIface interface {
	driver.Conn
	driver.LockWaiter
	driver.LockBreaker
	driver.GroupWatcher
	driver.HolderWatcher
}

// toozConn hides TryLockShared from the backend.
type toozConn struct{ toozIface }

var _ toozIface = (*conn)(nil)

// toozRaw reports whether byte b can stay as it is in a tooz znode name:
// printable ASCII (tooz decodes ids as ASCII) except '/' and '%'.
func toozRaw(b byte) bool { return b >= 0x20 && b <= 0x7e && b != '/' && b != '%' }

// toozReserved are names that collide with the layout or are not valid
// znode names.
func toozReserved(s string) bool {
	return s == "" || s == "." || s == ".." || s == toozLocksDir || s == toozLeaderDir
}

// toozEncode maps a group or member ID to its znode name: the ID itself
// when tooz could have written it (printable ASCII without '/' or '%', not
// "locks" or "leader"), else every other byte as %XX (and the first byte
// too for a reserved name), so escaped names always contain '%' and never
// meet a raw one.
func toozEncode(s string) string {
	plain := !toozReserved(s)
	for i := 0; plain && i < len(s); i++ {
		plain = toozRaw(s[i])
	}
	if plain {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if toozRaw(c) && !(i == 0 && toozReserved(s)) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// toozDecode reverses toozEncode. The layout's own nodes (locks, leader)
// are not names. A name with '%' that toozEncode did not produce (tooz
// wrote it) is returned as it is.
func toozDecode(z string) (string, bool) {
	if z == toozLocksDir || z == toozLeaderDir || z == "" {
		return "", false
	}
	if !strings.Contains(z, "%") {
		return z, true
	}
	var b strings.Builder
	for i := 0; i < len(z); i++ {
		c := z[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(z) {
			return z, true
		}
		v, ok := unhex(z[i+1], z[i+2])
		if !ok {
			return z, true
		}
		b.WriteByte(v)
		i += 2
	}
	if d := b.String(); toozEncode(d) == z {
		return d, true
	}
	return z, true
}

// encodeName and decodeName map group and member IDs for the connection's
// layout.
func (c *conn) encodeName(s string) string {
	if c.s.tooz {
		return toozEncode(s)
	}
	return encodeName(s)
}

func (c *conn) decodeName(z string) (string, bool) {
	if c.s.tooz {
		return toozDecode(z)
	}
	return decodeName(z)
}

// toozLockPath maps a backend lock key to its kazoo lock directory: user
// locks under /<ns>/locks (a name of '/'-separated plain segments nests,
// as in tooz), leaders in their group's leader directory.
func (c *conn) toozLockPath(key string) string {
	if name, ok := strings.CutPrefix(key, "l/"); ok {
		return c.locksPath() + "/" + toozLockName(name)
	}
	if group, ok := strings.CutPrefix(key, "e/"); ok {
		return c.groupPath(group) + "/" + toozLeaderDir
	}
	return c.locksPath() + "/" + toozEncode(key)
}

// toozLockName is the path of lock name below /<ns>/locks: the name itself
// when tooz could use it (plain segments), else its escaped form.
func toozLockName(name string) string {
	for _, seg := range strings.Split(name, "/") {
		plain := seg != "" && seg != "." && seg != ".." && !strings.Contains(seg, "__lock__") && !strings.Contains(seg, "__rlock__")
		for i := 0; plain && i < len(seg); i++ {
			plain = toozRaw(seg[i])
		}
		if !plain {
			return toozEncode(name)
		}
	}
	return name
}

// ensurePath creates dir and its missing parents below the root as
// persistent znodes, as kazoo's ensure_path does.
func (c *conn) ensurePath(dir string) error {
	rest, ok := strings.CutPrefix(dir, c.s.root+"/")
	if !ok {
		return errors.New("path " + dir + " is outside the root")
	}
	create := func(p string) error {
		_, err := c.zk.Create(p, nil, zk.FlagPersistent, c.acl)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	}
	p := c.s.root
	for i, seg := range strings.Split(rest, "/") {
		p += "/" + seg
		err := create(p)
		if i == 0 && errors.Is(err, zk.ErrNoNode) { // the root was removed
			if err = create(c.s.root); err == nil {
				err = create(p)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteLeaderDir removes the group's idle leader directory before the
// group is deleted (kazoo creates it with the first campaign or leader
// query, and ZooKeeper refuses to delete a group that has it). With
// contenders inside it stays, and the group is reported not empty.
func (c *conn) deleteLeaderDir(group string) {
	if c.s.tooz {
		_ = c.zk.Delete(group+"/"+toozLeaderDir, -1)
	}
}

// capsOut is what the member znode stores: the capabilities, or tooz's
// default (msgpack b"") when there are none, which tooz can decode.
func (c *conn) capsOut(caps []byte) []byte {
	if c.s.tooz && len(caps) == 0 {
		return toozEmptyCaps
	}
	return caps
}

// memberOf builds a Member from its znode; in compat=tooz mode tooz's
// default capabilities (msgpack b"") read as none.
func (c *conn) memberOf(id string, data []byte, st *zk.Stat) driver.Member {
	if c.s.tooz && bytes.Equal(data, toozEmptyCaps) {
		data = nil
	}
	return memberOf(id, data, st)
}

// newLockNodePrefix names a new lock request (before its sequence).
// compat=tooz: kazoo's "<uuid4 hex>__lock__".
func (c *conn) newLockNodePrefix(shared bool) (string, error) {
	guid, err := newGUID()
	if err != nil {
		return "", err
	}
	if !c.s.tooz {
		return lockNodePrefix(shared, guid), nil
	}
	if shared {
		return "", driver.Errorf(driver.CodeUnimplemented, "compat=tooz has no shared locks")
	}
	more, err := newGUID()
	if err != nil {
		return "", err
	}
	return guid + more + "__lock__", nil
}

// parseKazooNode parses a kazoo Lock contender, "<anything>__lock__" then
// a 10-digit sequence (kazoo's pattern `__lock__(-?\d{10})$`). seq orders
// contenders as kazoo does, by the sequence's text: negative sequences
// (after the counter wrapped) by increasing magnitude, then the others.
func parseKazooNode(name string) (lockNode, bool) {
	i := strings.LastIndex(name, "__lock__")
	if i < 0 {
		return lockNode{}, false
	}
	digits := name[i+len("__lock__"):]
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	if len(digits) != 10 {
		return lockNode{}, false
	}
	for j := 0; j < len(digits); j++ {
		if digits[j] < '0' || digits[j] > '9' {
			return lockNode{}, false
		}
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || v > 1<<31 {
		return lockNode{}, false
	}
	n := lockNode{name: name, guid: name[:i]}
	if neg {
		if v == 0 {
			v = 1
		}
		n.seq = uint32(v - 1)
	} else {
		n.seq = uint32(v) | 1<<31
	}
	return n, true
}
