package filebackend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// tooz's files are msgpack as oslo.serialization's msgpackutils writes it
// (msgpack.packb with use_bin_type=True): str for text, bin for bytes,
// and datetime as the extension type 1 holding a msgpack map of its
// fields.

// mpWriter builds msgpack with the smallest encodings, as Python's
// msgpack does.
type mpWriter struct{ bytes.Buffer }

func (w *mpWriter) mapHeader(n int) { w.WriteByte(0x80 | byte(n)) } // n < 16

func (w *mpWriter) str(s string) {
	switch n := len(s); {
	case n < 32:
		w.WriteByte(0xa0 | byte(n))
	case n < 1<<8:
		w.Write([]byte{0xd9, byte(n)})
	case n < 1<<16:
		w.WriteByte(0xda)
		_ = binary.Write(w, binary.BigEndian, uint16(n))
	default:
		w.WriteByte(0xdb)
		_ = binary.Write(w, binary.BigEndian, uint32(n))
	}
	w.WriteString(s)
}

func (w *mpWriter) bin(b []byte) {
	switch n := len(b); {
	case n < 1<<8:
		w.Write([]byte{0xc4, byte(n)})
	case n < 1<<16:
		w.WriteByte(0xc5)
		_ = binary.Write(w, binary.BigEndian, uint16(n))
	default:
		w.WriteByte(0xc6)
		_ = binary.Write(w, binary.BigEndian, uint32(n))
	}
	w.Write(b)
}

func (w *mpWriter) boolean(v bool) {
	if v {
		w.WriteByte(0xc3)
	} else {
		w.WriteByte(0xc2)
	}
}

func (w *mpWriter) uint(v uint64) {
	switch {
	case v < 128:
		w.WriteByte(byte(v))
	case v < 1<<8:
		w.Write([]byte{0xcc, byte(v)})
	case v < 1<<16:
		w.WriteByte(0xcd)
		_ = binary.Write(w, binary.BigEndian, uint16(v))
	case v < 1<<32:
		w.WriteByte(0xce)
		_ = binary.Write(w, binary.BigEndian, uint32(v))
	default:
		w.WriteByte(0xcf)
		_ = binary.Write(w, binary.BigEndian, v)
	}
}

// ext writes an extension value as Python's msgpack packs ExtType.
func (w *mpWriter) ext(typ int8, data []byte) {
	switch n := len(data); n {
	case 1:
		w.WriteByte(0xd4)
	case 2:
		w.WriteByte(0xd5)
	case 4:
		w.WriteByte(0xd6)
	case 8:
		w.WriteByte(0xd7)
	case 16:
		w.WriteByte(0xd8)
	default:
		switch {
		case n < 1<<8:
			w.Write([]byte{0xc7, byte(n)})
		case n < 1<<16:
			w.WriteByte(0xc8)
			_ = binary.Write(w, binary.BigEndian, uint16(n))
		default:
			w.WriteByte(0xc9)
			_ = binary.Write(w, binary.BigEndian, uint32(n))
		}
	}
	w.WriteByte(byte(typ))
	w.Write(data)
}

// datetime writes a naive datetime (oslo's DateTimeHandler, ext 1):
// a map of day, month, year, hour, minute, second and microsecond.
func (w *mpWriter) datetime(t time.Time) {
	var in mpWriter
	in.mapHeader(7)
	for _, f := range []struct {
		k string
		v int
	}{{"day", t.Day()}, {"month", int(t.Month())}, {"year", t.Year()}, {"hour", t.Hour()},
		{"minute", t.Minute()}, {"second", t.Second()}, {"microsecond", t.Nanosecond() / 1000}} {
		in.str(f.k)
		in.uint(uint64(f.v))
	}
	w.ext(1, in.Bytes())
}

// mpMap decodes a msgpack map into its raw values by key. Keys written
// as bin (tooz before 1.36) are accepted as text.
func mpMap(b []byte) (map[string]msgpack.RawMessage, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]msgpack.RawMessage, max(n, 0))
	for range n {
		var k any
		if k, err = d.DecodeInterface(); err != nil {
			return nil, err
		}
		v, err := d.DecodeRaw()
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case string:
			m[k] = v
		case []byte:
			m[string(k)] = v
		}
	}
	return m, nil
}

// mpText decodes a str or bin value as text (tooz's ids: bytes when
// "encoded", else str).
func mpText(raw msgpack.RawMessage) (string, error) {
	var v any
	if err := msgpack.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	}
	return "", fmt.Errorf("not text: %T", v)
}

// mpBytes decodes a bin (or str) value's bytes.
func mpBytes(raw msgpack.RawMessage) ([]byte, error) {
	var v any
	if err := msgpack.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	}
	return nil, fmt.Errorf("not bytes: %T", v)
}

// mpDatetime decodes oslo's datetime extension (naive: local time).
func mpDatetime(raw msgpack.RawMessage) (time.Time, error) {
	if len(raw) < 3 {
		return time.Time{}, errors.New("short datetime")
	}
	var typ byte
	var data []byte
	switch c := raw[0]; {
	case c >= 0xd4 && c <= 0xd8:
		typ, data = raw[1], raw[2:]
	case c == 0xc7:
		typ, data = raw[2], raw[3:]
	case c == 0xc8 && len(raw) >= 4:
		typ, data = raw[3], raw[4:]
	case c == 0xc9 && len(raw) >= 6:
		typ, data = raw[5], raw[6:]
	default:
		return time.Time{}, errors.New("not an extension value")
	}
	if typ != 1 {
		return time.Time{}, fmt.Errorf("extension type %d, want 1 (datetime)", typ)
	}
	var f map[string]int64
	if err := msgpack.Unmarshal(data, &f); err != nil {
		return time.Time{}, err
	}
	return time.Date(int(f["year"]), time.Month(f["month"]), int(f["day"]), int(f["hour"]), int(f["minute"]),
		int(f["second"]), int(f["microsecond"])*1000, time.Local), nil
}

// mpOneObject reports whether b is exactly one msgpack object.
func mpOneObject(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	r := bytes.NewReader(b)
	if err := msgpack.NewDecoder(r).Skip(); err != nil {
		return false
	}
	return r.Len() == 0
}

// mpIsBin reports whether the msgpack object b is a bin.
func mpIsBin(b []byte) bool { return len(b) > 0 && (b[0] == 0xc4 || b[0] == 0xc5 || b[0] == 0xc6) }
