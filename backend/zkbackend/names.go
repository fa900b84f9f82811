package zkbackend

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Data layout, below the root znode (chroot + namespace):
//
//	<root>/groups/<enc(group)>                  persistent, no data
//	<root>/groups/<enc(group)>/<enc(member)>    ephemeral, data = capabilities
//	<root>/locks/<enc(key)>                     container (persistent before ZooKeeper 3.5)
//	<root>/locks/<enc(key)>/w-<guid>-<seq>      ephemeral-sequential exclusive request, data = member ID
//	<root>/locks/<enc(key)>/r-<guid>-<seq>      ephemeral-sequential shared request, data = member ID
//
// Groups, members and lock keys are encoded with enc, so no user-chosen
// name can be ".", "..", contain '/', or collide with "groups"/"locks",
// which live one level up.
const (
	groupsDir = "groups"
	locksDir  = "locks"
)

// encodeName encodes a user-chosen name (group ID, member ID, lock key)
// into a znode name, losslessly: ASCII letters, digits, '-', '_' and '~'
// stay as they are and every other byte becomes %XX (upper-case hex). The
// result is never "." or "..", has no '/', and only has characters
// ZooKeeper accepts.
func encodeName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		const hexDigits = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '~'
}

// decodeName reverses encodeName. It accepts only encodeName's exact
// output (upper-case escapes, no needless escapes), so that foreign nodes
// a tool might have put in baton's directories are ignored instead of
// aliasing a name.
func decodeName(z string) (string, bool) {
	if z == "" {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(z))
	for i := 0; i < len(z); i++ {
		c := z[i]
		switch {
		case unreserved(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(z):
			v, ok := unhex(z[i+1], z[i+2])
			if !ok || unreserved(v) {
				return "", false
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

func unhex(a, b byte) (byte, bool) {
	h := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	x, ok1 := h(a)
	y, ok2 := h(b)
	return x<<4 | y, ok1 && ok2
}

// Paths of the layout.
func (c *conn) groupsPath() string {
	if c.s.tooz {
		return c.s.root // tooz's groups are the root's children
	}
	return c.s.root + "/" + groupsDir
}
func (c *conn) locksPath() string             { return c.s.root + "/" + locksDir }
func (c *conn) groupPath(group string) string { return c.groupsPath() + "/" + c.encodeName(group) }
func (c *conn) lockPath(key string) string {
	if c.s.tooz {
		return c.toozLockPath(key)
	}
	return c.locksPath() + "/" + encodeName(key)
}
func (c *conn) memberPath(group, m string) string { return c.groupPath(group) + "/" + c.encodeName(m) }

// Lock request nodes: "<kind>-<guid>-" then ZooKeeper's sequence suffix.
const (
	kindExclusive = 'w'
	kindShared    = 'r'
	guidLen       = 16 // hex digits
	lockPrefixLen = 2 + guidLen + 1
)

// lockNode is one parsed lock request node.
type lockNode struct {
	name   string
	shared bool
	guid   string
	seq    uint32
}

// newGUID returns guidLen random hex digits, naming one lock request so
// that a request whose reply was lost can still be found.
func newGUID() (string, error) {
	var b [guidLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random lock node name: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// lockNodePrefix returns the name of a lock request before the sequence.
func lockNodePrefix(shared bool, guid string) string {
	kind := kindExclusive
	if shared {
		kind = kindShared
	}
	return string(rune(kind)) + "-" + guid + "-"
}

// parseLockNode parses a lock request node name; foreign names fail.
// ZooKeeper's sequence is a signed 32-bit counter printed as %010d; it is
// read as unsigned so order survives its wrap to negative numbers.
func parseLockNode(name string) (lockNode, bool) {
	if n, ok := parseKazooNode(name); ok {
		return n, true
	}
	if len(name) <= lockPrefixLen || name[1] != '-' || name[lockPrefixLen-1] != '-' {
		return lockNode{}, false
	}
	n := lockNode{name: name, guid: name[2 : 2+guidLen]}
	switch name[0] {
	case kindExclusive:
	case kindShared:
		n.shared = true
	default:
		return lockNode{}, false
	}
	seq, err := strconv.ParseInt(name[lockPrefixLen:], 10, 32)
	if err != nil {
		return lockNode{}, false
	}
	n.seq = uint32(int32(seq))
	return n, true
}

// sortLockNodes parses names and returns the lock requests in queue order.
func sortLockNodes(names []string) []lockNode {
	out := make([]lockNode, 0, len(names))
	for _, name := range names {
		if n, ok := parseLockNode(name); ok {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// holders returns the prefix of the queue that holds the lock: the first
// node when it is exclusive, else every shared node before the first
// exclusive one.
func holders(q []lockNode) []lockNode {
	if len(q) == 0 {
		return nil
	}
	if !q[0].shared {
		return q[:1]
	}
	i := 0
	for i < len(q) && q[i].shared {
		i++
	}
	return q[:i]
}

// blocker returns the node a request at index i must wait for (the
// predecessor for an exclusive request, the last exclusive request before
// it for a shared one), or false when the request holds the lock.
func blocker(q []lockNode, i int) (lockNode, bool) {
	if !q[i].shared {
		if i == 0 {
			return lockNode{}, false
		}
		return q[i-1], true
	}
	for j := i - 1; j >= 0; j-- {
		if !q[j].shared {
			return q[j], true
		}
	}
	return lockNode{}, false
}
