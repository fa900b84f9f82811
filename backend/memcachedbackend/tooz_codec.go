package memcachedbackend

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// toozEmptyCaps is msgpack's b"", tooz's default capabilities; baton's
// empty capabilities are stored as it and read back as empty.
var toozEmptyCaps = []byte{0xc4, 0x00}

// mpField is one entry of a msgpack map kept as read: its key (bin or
// str, as written) and its raw value.
type mpField struct {
	key string
	bin bool
	val msgpack.RawMessage
}

// toozMember is one member of a group value: its ID and its dict.
type toozMember struct {
	id     string
	bin    bool
	fields []mpField
}

func (m *toozMember) field(key string) (msgpack.RawMessage, bool) {
	for _, f := range m.fields {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

func (m *toozMember) set(key string, val msgpack.RawMessage) {
	for i := range m.fields {
		if m.fields[i].key == key {
			m.fields[i].val = val
			return
		}
	}
	m.fields = append(m.fields, mpField{key: key, bin: true, val: val})
}

func decodeKey(d *msgpack.Decoder) (string, bool, error) {
	c, err := d.PeekCode()
	if err != nil {
		return "", false, err
	}
	if msgpcode.IsBin(c) {
		b, err := d.DecodeBytes()
		return string(b), true, err
	}
	s, err := d.DecodeString()
	return s, false, err
}

func encodeKey(e *msgpack.Encoder, k string, bin bool) error {
	if bin {
		return e.EncodeBytes([]byte(k))
	}
	return e.EncodeString(k)
}

// decodeGroupValue decodes tooz's group value {member: {b"capabilities":
// caps, ...}}; nilValue reports msgpack nil (tooz's delete_group writes
// it before deleting the key).
func decodeGroupValue(b []byte) (ms []toozMember, nilValue bool, err error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	if c, err := d.PeekCode(); err == nil && c == msgpcode.Nil {
		return nil, true, nil
	}
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, false, err
	}
	for range max(n, 0) {
		var m toozMember
		if m.id, m.bin, err = decodeKey(d); err != nil {
			return nil, false, err
		}
		fn, err := d.DecodeMapLen()
		if err != nil {
			return nil, false, err
		}
		for range max(fn, 0) {
			var f mpField
			if f.key, f.bin, err = decodeKey(d); err != nil {
				return nil, false, err
			}
			if f.val, err = d.DecodeRaw(); err != nil {
				return nil, false, err
			}
			m.fields = append(m.fields, f)
		}
		ms = append(ms, m)
	}
	return ms, false, nil
}

func encodeGroupValue(ms []toozMember) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	_ = e.EncodeMapLen(len(ms))
	for _, m := range ms {
		_ = encodeKey(e, m.id, m.bin)
		_ = e.EncodeMapLen(len(m.fields))
		for _, f := range m.fields {
			_ = encodeKey(e, f.key, f.bin)
			buf.Write(f.val)
		}
	}
	return buf.Bytes()
}

// listEntry is one group ID of tooz's group list.
type listEntry struct {
	id  string
	bin bool
}

func decodeGroupList(b []byte) ([]listEntry, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	var out []listEntry
	for range max(n, 0) {
		id, bin, err := decodeKey(d)
		if err != nil {
			return nil, err
		}
		out = append(out, listEntry{id, bin})
	}
	return out, nil
}

func encodeGroupList(l []listEntry) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	_ = e.EncodeArrayLen(len(l))
	for _, g := range l {
		_ = encodeKey(e, g.id, g.bin)
	}
	return buf.Bytes()
}

// toozCaps returns what is stored as a member's capabilities: caps as
// they are when they are one msgpack value (as membership encodes them,
// and as tooz reads them), msgpack b"" for empty capabilities, and any
// other bytes wrapped as a msgpack bin (tooz reads them as those bytes;
// wrapped tells baton's record to unwrap them), so that no value breaks
// tooz's decoding of the whole group.
func toozCaps(caps []byte) (raw msgpack.RawMessage, wrapped bool) {
	if len(caps) == 0 {
		return toozEmptyCaps, false
	}
	r := bytes.NewReader(caps)
	if _, err := msgpack.NewDecoder(r).DecodeRaw(); err == nil && r.Len() == 0 {
		return caps, false
	}
	b, _ := msgpack.Marshal(caps)
	return b, true
}

// memberName is a member ID as tooz's layout holds it: verbatim when
// tooz's client (pymemcache) accepts _TOOZ_MEMBER_ID as a key (printable
// ASCII, no space, not too long), else keyName's hashed form, with the
// real ID in the member's dict (field b"baton_id"). tooz builds the
// liveness key from the ID in the group value and would fail on the
// whole group for an ID it refuses; no tooz process can have such an ID.
func memberName(id string) string {
	ok := len(id) <= 200 && !strings.HasPrefix(id, "#")
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] > ' ' && id[i] < 0x7f
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "#" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// keyName is a group or lock name as tooz's keys embed it: verbatim when
// memcached accepts it (tooz's layout), else "#" and the base64url
// SHA-256 of the name: such a name cannot be in tooz's layout at all
// (tooz's request fails), so no tooz process shares it.
func keyName(name string) string {
	ok := len(name) <= 200
	for i := 0; ok && i < len(name); i++ {
		ok = name[i] > ' ' && name[i] != 0x7f
	}
	if ok {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "#" + base64.RawURLEncoding.EncodeToString(sum[:])
}
