// Package etcdproto is what the etcd3:// (gRPC) and etcd3+http:// (JSON
// gateway) drivers share about etcd's data: the key layout, the member
// record, the lock-entry slots of a connection and the lease options. A
// gRPC member and an HTTP member of one cluster share locks and groups,
// so both must agree on all of it; one definition keeps them agreeing.
//
// It speaks in plain values (keys, revisions, bytes) and never imports an
// etcd client or gRPC: etcd3+http has no gRPC dependency.
package etcdproto

import (
	"fmt"
	"strconv"
	"strings"
)

// Escape encodes a name for use as one key segment: '%' becomes "%25" and
// '/' becomes "%2F", every other byte stays as it is. The encoding is
// lossless and never produces '/', so a segment can neither escape its
// parent nor be the prefix of a longer path of another name.
func Escape(s string) string {
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

// Unescape reverses Escape; it fails on anything Escape cannot produce.
func Unescape(s string) (string, error) {
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

// Keyspace lays out every key the drivers write under one namespace:
//
//	<ns>/sessions/<lease>                      member ID, on the lease
//	<ns>/groups/<group>/                        group record (no lease)
//	<ns>/groups/<group>/members/<member>        member record, on the lease
//	<ns>/locks/<lock>/<lease>-<slot>            lock holder or waiter, on the lease
//
// where <ns>, <group>, <member> and <lock> are escaped segments and
// <lease> and <slot> are lower-case hexadecimal numbers. The group record
// ends in '/' so that one prefix watch sees the group and its members in
// revision order. WithGroupsAt moves groups and members elsewhere (tooz's
// etcd3gw layout). A Keyspace is a value: safe for concurrent use.
type Keyspace struct {
	root    string // escaped namespace followed by '/'
	groups  string // prefix of group records; "" for root+"groups/"
	flatMem bool   // members directly below the group record
}

// NewKeyspace returns the layout of namespace.
func NewKeyspace(namespace string) Keyspace {
	return Keyspace{root: Escape(namespace) + "/"}
}

// WithGroupsAt returns k with group records at prefix+<group>/ and their
// members directly below them, at prefix+<group>/<member> (tooz's
// etcd3gw layout). Sessions and locks stay under the namespace.
func (k Keyspace) WithGroupsAt(prefix string) Keyspace {
	k.groups, k.flatMem = prefix, true
	return k
}

// Root is the escaped namespace followed by '/': the prefix of every key
// under the namespace.
func (k Keyspace) Root() string { return k.root }

// SessionsPrefix is the prefix of every session key.
func (k Keyspace) SessionsPrefix() string { return k.root + "sessions/" }

// Session is the session key of lease.
func (k Keyspace) Session(lease int64) string {
	return k.SessionsPrefix() + strconv.FormatInt(lease, 16)
}

// GroupsPrefix is the prefix of every group record.
func (k Keyspace) GroupsPrefix() string {
	if k.groups != "" {
		return k.groups
	}
	return k.root + "groups/"
}

// Group is the group record; it is also the prefix of everything the
// group holds.
func (k Keyspace) Group(g string) string { return k.GroupsPrefix() + Escape(g) + "/" }

// MembersPrefix is the prefix of the member records of group g.
func (k Keyspace) MembersPrefix(g string) string {
	if k.flatMem {
		return k.Group(g)
	}
	return k.Group(g) + "members/"
}

// Member is the member record of member m in group g.
func (k Keyspace) Member(g, m string) string { return k.MembersPrefix(g) + Escape(m) }

// GroupOf returns the group a group-record key names; ok is false for
// any other key (member records, foreign keys).
func (k Keyspace) GroupOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.GroupsPrefix())
	if !ok || !strings.HasSuffix(rest, "/") {
		return "", false
	}
	g, err := Unescape(strings.TrimSuffix(rest, "/"))
	if err != nil || g == "" {
		return "", false
	}
	return g, true
}

// MemberOf returns the member ID of a member-record key of group g.
func (k Keyspace) MemberOf(g, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.MembersPrefix(g))
	if !ok {
		return "", false
	}
	m, err := Unescape(rest)
	if err != nil || m == "" {
		return "", false
	}
	return m, true
}

// LockPrefix is the prefix of the entries of lock.
func (k Keyspace) LockPrefix(lock string) string { return k.root + "locks/" + Escape(lock) + "/" }

// LockEntry is the key of one attempt at lock: the lease and a slot that
// no other live attempt of the connection uses (see Entry).
func (k Keyspace) LockEntry(lock string, lease int64, slot uint64) string {
	return k.LockPrefix(lock) + strconv.FormatInt(lease, 16) + "-" + strconv.FormatUint(slot, 16)
}
