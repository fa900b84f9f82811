package memcachedbackend

import (
	"crypto/sha256"
	"encoding/base64"
)

// The kinds of key, each with its own letter so that no two kinds meet.
const (
	kindGroupList = "G" // the list of groups
	kindGroup     = "g" // a group's record
	kindMember    = "m" // a member record of one incarnation
	kindSession   = "s" // a connection's liveness key
	kindLock      = "l" // a lock
	kindCounter   = "f" // a lock's fencing counter
)

// maxVerbatim is the longest name kept verbatim in a key.
const maxVerbatim = 64

// safeByte reports whether b may appear verbatim in a key.
func safeByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
}

func validNamespace(ns string) bool {
	if ns == "" || len(ns) > maxVerbatim {
		return false
	}
	for i := 0; i < len(ns); i++ {
		if !safeByte(ns[i]) {
			return false
		}
	}
	return true
}

// encodeName turns a name into a key segment: "v" and the name when it is
// at most 64 safe characters, else "h" and the unpadded base64url SHA-256
// of the name (44 characters in all). The two forms never meet; the full
// name is kept in every value, and checked on read.
func encodeName(name string) string {
	if len(name) <= maxVerbatim && name != "" {
		ok := true
		for i := 0; i < len(name); i++ {
			if !safeByte(name[i]) {
				ok = false
				break
			}
		}
		if ok {
			return "v" + name
		}
	}
	sum := sha256.Sum256([]byte(name))
	return "h" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// keyspace builds the keys of one namespace. The longest key, a member
// record, is 64+1+1+1+65+1+65+1+16 = 215 bytes.
type keyspace struct{ ns string }

func (k keyspace) key(kind string, parts ...string) string {
	s := k.ns + ":" + kind
	for _, p := range parts {
		s += ":" + p
	}
	return s
}

func (k keyspace) groupList() string          { return k.key(kindGroupList) }
func (k keyspace) group(g string) string      { return k.key(kindGroup, encodeName(g)) }
func (k keyspace) session(sid string) string  { return k.key(kindSession, sid) }
func (k keyspace) lock(name string) string    { return k.key(kindLock, encodeName(name)) }
func (k keyspace) counter(name string) string { return k.key(kindCounter, encodeName(name)) }
func (k keyspace) member(g, m, inc string) string {
	return k.key(kindMember, encodeName(g), encodeName(m), inc)
}
