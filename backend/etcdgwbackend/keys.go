package etcdgwbackend

import (
	"fmt"
	"strconv"
	"strings"
)

// escape encodes a name for use as one key segment: '%' becomes "%25" and
// '/' becomes "%2F", every other byte stays as it is. The encoding is
// lossless and never produces '/', so a segment can neither escape its
// parent nor be the prefix of a longer path of another name.
func escape(s string) string {
	if !strings.ContainsAny(s, "%/") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b.WriteString("%25")
		case '/':
			b.WriteString("%2F")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescape reverses escape; it fails on anything escape cannot produce.
func unescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%/") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			return "", fmt.Errorf("segment %q contains '/'", s)
		case c != '%':
			b.WriteByte(c)
		case strings.HasPrefix(s[i:], "%25"):
			b.WriteByte('%')
			i += 2
		case strings.HasPrefix(s[i:], "%2F"):
			b.WriteByte('/')
			i += 2
		default:
			return "", fmt.Errorf("segment %q has a bad escape", s)
		}
	}
	return b.String(), nil
}

// keyspace lays out every key the driver writes under one namespace:
//
//	<ns>/sessions/<lease>                      member ID, on the lease
//	<ns>/groups/<group>/                        group record (no lease)
//	<ns>/groups/<group>/members/<member>        member record, on the lease
//	<ns>/locks/<lock>/<lease>-<slot>            lock holder or waiter, on the lease
//
// where <ns>, <group>, <member> and <lock> are escaped segments and
// <lease> and <slot> are lower-case hexadecimal numbers. The group record
// ends in '/' so that one prefix watch sees the group and its members in
// revision order.
type keyspace struct {
	root  string // escaped namespace followed by '/'
	tooz  bool   // compat=tooz: groups and user locks at tooz's keys (tooz.go)
	tzPfx string // tooz_prefix
}

func newKeyspace(namespace string) keyspace {
	return keyspace{root: escape(namespace) + "/"}
}

func (k keyspace) sessionsPrefix() string { return k.root + "sessions/" }

func (k keyspace) session(lease int64) string {
	return k.sessionsPrefix() + strconv.FormatInt(lease, 16)
}

func (k keyspace) groupsPrefix() string {
	if k.tooz {
		return k.tzPfx + toozGroupsPrefix
	}
	return k.root + "groups/"
}

// group is the group record; it is also the prefix of everything the
// group holds.
func (k keyspace) group(g string) string { return k.groupsPrefix() + escape(g) + "/" }

func (k keyspace) membersPrefix(g string) string {
	if k.tooz {
		return k.group(g) // tooz's members sit next to the group record
	}
	return k.group(g) + "members/"
}

func (k keyspace) member(g, m string) string { return k.membersPrefix(g) + escape(m) }

// groupOf returns the group a group-record key names; ok is false for
// any other key (member records, foreign keys).
func (k keyspace) groupOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.groupsPrefix())
	if !ok || !strings.HasSuffix(rest, "/") {
		return "", false
	}
	g, err := unescape(strings.TrimSuffix(rest, "/"))
	if err != nil || g == "" {
		return "", false
	}
	return g, true
}

// memberOf returns the member ID of a member-record key of group g.
func (k keyspace) memberOf(g, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.membersPrefix(g))
	if !ok {
		return "", false
	}
	m, err := unescape(rest)
	if err != nil || m == "" {
		return "", false
	}
	return m, true
}

func (k keyspace) lockPrefix(lock string) string { return k.root + "locks/" + escape(lock) + "/" }

// lockEntry is the key of one attempt at lock: the lease and a slot that
// no other live attempt of the connection uses (see entry).
func (k keyspace) lockEntry(lock string, lease int64, slot uint64) string {
	return k.lockPrefix(lock) + strconv.FormatInt(lease, 16) + "-" + strconv.FormatUint(slot, 16)
}
