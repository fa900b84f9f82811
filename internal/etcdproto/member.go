package etcdproto

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// MemberRecord is the value of a member key, the same for both drivers
// (members of either read each other's records). The times are the
// writing client's wall clock in Unix nanoseconds.
type MemberRecord struct {
	Capabilities []byte `json:"caps,omitempty"`
	Joined       int64  `json:"joined"`
	Updated      int64  `json:"updated"`
}

// EncodeMember returns the value of a member key holding r.
func EncodeMember(r MemberRecord) []byte {
	b, _ := json.Marshal(r) // a struct of bytes and integers always marshals
	return b
}

// DecodeMember returns member id as stored in a member key created at
// revision createRev with value val. The incarnation is the create
// revision: a new one for every join. A value that does not decode
// leaves the capabilities and times empty.
func DecodeMember(id string, createRev int64, val []byte) driver.Member {
	m := driver.Member{ID: id, Incarnation: strconv.FormatInt(createRev, 10)}
	var r MemberRecord
	if len(val) > 0 && json.Unmarshal(val, &r) == nil {
		m.Capabilities = r.Capabilities
		if r.Joined != 0 {
			m.JoinedAt = time.Unix(0, r.Joined)
		}
		if r.Updated != 0 {
			m.UpdatedAt = time.Unix(0, r.Updated)
		}
	}
	return m
}
