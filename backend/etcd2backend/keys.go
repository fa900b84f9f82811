package etcd2backend

import (
	"fmt"
	"strings"
)

// escape encodes a name as one key segment of the v2 store. Letters,
// digits and '-' stay as they are, '.' too except in the first position;
// every other byte becomes "~XX" (upper-case hexadecimal). The result is
// never empty for a non-empty name, never contains '/', never is "." or
// "..", never starts with '_' (the v2 store hides such keys from listings
// and from recursive watches) and needs no escaping in a URL path. The
// encoding is injective, so two names never share a key.
func escape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "~%02X", c)
		}
	}
	return b.String()
}

// unescape reverses escape; it fails on anything escape cannot produce.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "~") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '~' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("segment %q has a truncated escape", s)
		}
		var v byte
		for _, h := range []byte{s[i+1], s[i+2]} {
			v <<= 4
			switch {
			case h >= '0' && h <= '9':
				v |= h - '0'
			case h >= 'A' && h <= 'F':
				v |= h - 'A' + 10
			default:
				return "", fmt.Errorf("segment %q has a bad escape", s)
			}
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

// keyspace lays out every key the driver writes under one namespace:
//
//	/<ns>/s/<session>             session key: member ID; TTL membership_timeout
//	/<ns>/g/<group>               group: a directory
//	/<ns>/g/<group>/<member>      member record (JSON); TTL membership_timeout
//	/<ns>/l/<lock>                lock: holder record; TTL lock_timeout
//	/<ns>/q/<lock>/<in-order>     queued waiters of a lock; TTL membership_timeout
//	/<ns>/r/<lock>/<in-order>     shared holders of a lock; TTL of the grant
//
// where <ns>, <group>, <member> and <lock> are escaped segments, <session>
// is random hexadecimal and <in-order> the 20-digit names the v2 store
// gives keys created with POST (their creation index, zero-padded, so
// they sort in creation order).
type keyspace struct {
	root    string // "/<escaped namespace>"
	tooz    bool   // compat=tooz: user locks at tooz's keys
	toozDir string // "" or "/<tooz_lock_dir>"
}

func newKeyspace(namespace string) keyspace { return keyspace{root: "/" + escape(namespace)} }

func (k keyspace) sessions() string          { return k.root + "/s" }
func (k keyspace) session(id string) string  { return k.sessions() + "/" + id }
func (k keyspace) groups() string            { return k.root + "/g" }
func (k keyspace) group(g string) string     { return k.groups() + "/" + escape(g) }
func (k keyspace) member(g, m string) string { return k.group(g) + "/" + escape(m) }
func (k keyspace) lock(l string) string {
	if name, ok := strings.CutPrefix(l, "l/"); ok && k.tooz {
		return toozLockKey(k.toozDir, name)
	}
	return k.root + "/l/" + escape(l)
}
func (k keyspace) queue(l string) string   { return k.root + "/q/" + escape(l) }
func (k keyspace) readers(l string) string { return k.root + "/r/" + escape(l) }

// lastSegment returns the name a key's last segment encodes.
func lastSegment(key string) (string, bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 || i == len(key)-1 {
		return "", false
	}
	n, err := unescape(key[i+1:])
	if err != nil || n == "" {
		return "", false
	}
	return n, true
}
