package consulbackend

import (
	"fmt"
	"strings"
)

// safe reports whether byte c stays as it is in a key segment.
func safe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// escape encodes a name as one Consul key segment: ASCII letters, digits
// and "-_.~" stay; every other byte becomes %XX (upper-case hex), and so
// does every dot of a segment made of dots only ("." and ".." would be
// path segments to the HTTP layer). The result is never empty for a
// non-empty name, never contains '/', and is unique per name (lossless),
// so a segment cannot escape its parent nor prefix another name's path.
func escape(s string) string {
	dots := strings.Trim(s, ".") == ""
	plain := !dots
	for i := 0; plain && i < len(s); i++ {
		plain = safe(s[i])
	}
	if plain {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safe(c) && !(dots && c == '.') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unescape reverses escape; it fails on anything escape cannot produce.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		if s == "" || strings.ContainsRune(s, '/') || strings.Trim(s, ".") == "" {
			return "", fmt.Errorf("segment %q cannot be an escaped name", s)
		}
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if !safe(c) {
				return "", fmt.Errorf("segment %q has an unescaped byte", s)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("segment %q has a bad escape", s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("segment %q has a bad escape", s)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// keyspace lays out every key the driver writes under one namespace:
//
//	<ns>/groups/<group>/                  group record (no session)
//	<ns>/groups/<group>/members/<member>  member record, acquired with the session
//	<ns>/locks/<lock>/x                   exclusive holder, acquired with the session
//	<ns>/locks/<lock>/s/<session>.<slot>  one shared holder, acquired with the session
//
// where <ns>, <group>, <member> and <lock> are escaped segments (leader
// records are locks whose names the backend prefixes). One blocking query
// on "<ns>/groups/<group>/" sees the group record and its members; one on
// "<ns>/locks/<lock>/" sees every holder of the lock.
type keyspace struct {
	root string // escaped namespace followed by '/'
}

func newKeyspace(namespace string) keyspace { return keyspace{root: escape(namespace) + "/"} }

func (k keyspace) groupsPrefix() string { return k.root + "groups/" }

// group is the group record; it is also the prefix of the group's keys.
func (k keyspace) group(g string) string { return k.groupsPrefix() + escape(g) + "/" }

func (k keyspace) membersPrefix(g string) string { return k.group(g) + "members/" }

func (k keyspace) member(g, m string) string { return k.membersPrefix(g) + escape(m) }

// groupOf returns the group a group-record key names; ok is false for any
// other key.
func (k keyspace) groupOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.groupsPrefix())
	if !ok || !strings.HasSuffix(rest, "/") {
		return "", false
	}
	g, err := unescape(strings.TrimSuffix(rest, "/"))
	if err != nil {
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
	if err != nil {
		return "", false
	}
	return m, true
}

func (k keyspace) lockPrefix(lock string) string { return k.root + "locks/" + escape(lock) + "/" }

func (k keyspace) exclusive(lock string) string { return k.lockPrefix(lock) + "x" }

func (k keyspace) sharedPrefix(lock string) string { return k.lockPrefix(lock) + "s/" }

func (k keyspace) shared(lock, session string, slot uint64) string {
	return fmt.Sprintf("%s%s.%d", k.sharedPrefix(lock), session, slot)
}

// sessionName is the name of a member's Consul session: it lets an
// operator (and the tests) find a member's session in a namespace.
func sessionName(namespace, member string) string {
	return "baton " + escape(namespace) + " " + escape(member)
}
