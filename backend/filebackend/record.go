package filebackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A lock file holds one lock record at offset 0:
//
//	magic "BTLK" | payload length (uint32 LE) | CRC-32C of payload (uint32 LE) | payload
//
// and the payload is
//
//	last token (uint64) | mode (byte) | holder count (uint32) |
//	per holder: token (uint64) | session ID (16 bytes) | member length (uint16) | member
//
// all little-endian. Bytes after the payload are ignored (a shorter record
// overwrites a longer one without truncating the file), and zeros where a
// record would start read as no record (a file grown for its mapping). A
// record is written with one pwrite or, by an exclusive grant, through
// the file's mapping (mmap.go), by the exclusive holder or, for shared holds,
// under the key's mutex file; readers that hold nothing check the CRC and
// retry, so a torn read is never mistaken for a record.
const (
	recordMagic  = "BTLK"
	recordHeader = 12
)

// Lock modes of a record.
const (
	modeFree      byte = 0
	modeExclusive byte = 1
	modeShared    byte = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord reports a lock file whose content is not a whole record.
var errBadRecord = errors.New("malformed lock record")

// sessionIDLen is the length of a raw session ID.
const sessionIDLen = 16

// sessionID identifies one connection's session (random).
type sessionID [sessionIDLen]byte

// lockHolder is one grant recorded in a lock file.
type lockHolder struct {
	token   uint64
	session sessionID
	member  string
}

// lockRecord is the decoded content of a lock file.
type lockRecord struct {
	last    uint64 // the last token granted for the key
	mode    byte
	holders []lockHolder
}

// encode appends r's encoding to buf[:0].
func (r *lockRecord) encode(buf []byte) []byte {
	buf = append(buf[:0], recordMagic...)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = binary.LittleEndian.AppendUint64(buf, r.last)
	buf = append(buf, r.mode)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r.holders)))
	for _, h := range r.holders {
		buf = binary.LittleEndian.AppendUint64(buf, h.token)
		buf = append(buf, h.session[:]...)
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(h.member)))
		buf = append(buf, h.member...)
	}
	payload := buf[recordHeader:]
	binary.LittleEndian.PutUint32(buf[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[8:12], crc32.Checksum(payload, crcTable))
	return buf
}

// recordLen returns the total length of the record starting at b[0] as
// its header announces it, or an error when b does not start with one.
// An empty b is a valid empty record (length 0).
func recordLen(b []byte) (int, error) {
	if len(b) == 0 || (len(b) >= 4 && b[0]|b[1]|b[2]|b[3] == 0) {
		// No record yet (zeros: a file grown for its mapping).
		return 0, nil
	}
	if len(b) < recordHeader || string(b[:4]) != recordMagic {
		return 0, errBadRecord
	}
	n := int(binary.LittleEndian.Uint32(b[4:8]))
	if n > 1<<24 {
		return 0, errBadRecord
	}
	return recordHeader + n, nil
}

// decodeRecord parses a whole record; an empty b is the record of a key
// never granted.
func decodeRecord(b []byte) (lockRecord, error) {
	var r lockRecord
	n, err := recordLen(b)
	if err != nil || n == 0 {
		return r, err
	}
	if len(b) < n {
		return r, errBadRecord
	}
	p := b[recordHeader:n]
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(b[8:12]) {
		return r, errBadRecord
	}
	if len(p) < 13 {
		return r, errBadRecord
	}
	r.last = binary.LittleEndian.Uint64(p)
	r.mode = p[8]
	count := binary.LittleEndian.Uint32(p[9:13])
	p = p[13:]
	if r.mode > modeShared || uint64(count) > uint64(len(p)) {
		return r, errBadRecord
	}
	r.holders = make([]lockHolder, 0, count)
	for range count {
		if len(p) < 8+sessionIDLen+2 {
			return r, errBadRecord
		}
		var h lockHolder
		h.token = binary.LittleEndian.Uint64(p)
		copy(h.session[:], p[8:8+sessionIDLen])
		ml := int(binary.LittleEndian.Uint16(p[8+sessionIDLen:]))
		p = p[8+sessionIDLen+2:]
		if len(p) < ml {
			return r, errBadRecord
		}
		h.member = string(p[:ml])
		p = p[ml:]
		r.holders = append(r.holders, h)
	}
	if len(p) != 0 {
		return r, fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(p))
	}
	return r, nil
}

// nextToken returns the token of a new grant after last: the larger of
// last+1 and the wall clock in microseconds since 1970. Counting on from
// the stored token makes tokens strictly increase while the file keeps
// it; the clock keeps them increasing even when the file lost the last
// writes (a host crash without fsync) or was deleted, as long as the clock
// has not been set back by more than the time since those grants.
func nextToken(last uint64, nowMicro int64) uint64 {
	t := last + 1
	if nowMicro > 0 && uint64(nowMicro) > t {
		t = uint64(nowMicro)
	}
	return t
}
