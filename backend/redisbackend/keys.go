package redisbackend

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// keyspace names every key and pub/sub channel of one namespace in one
// database. Names are embedded verbatim (Redis keys are binary-safe):
// every kind has its own fixed prefix ending in ':', and the name is the
// whole rest of the key, so two names of one kind never collide, names of
// different kinds never collide, and no name can reach another namespace's
// prefix of the same length.
//
//	NS:G          hash   group ID -> creation nonce (the list of groups)
//	NS:g:GROUP    hash   "v" -> version; "m:MEMBER" -> member record
//	NS:s:SESSION  string member ID, PX membership_timeout (liveness)
//	NS:l:KEY      string "TOKEN:NONCE:MEMBER", PX lock TTL (an exclusive grant)
//	NS:r:KEY      zset   "TOKEN:NONCE:MEMBER" -> expiry, server ms (shared grants)
//	NS:f:KEY      string fencing counter of KEY, never expires
//	NS:q:KEY      zset   waiter ID -> arrival, server µs (the wait queue of KEY)
//	NS:w:KEY      zset   waiter ID -> expiry, server ms (liveness of the queue's entries)
//
// Pub/sub channels are not scoped by database in Redis, so their names
// carry the database number:
//
//	NS:DB:g:GROUP  changes of GROUP ("VERSION|" + event)
//	NS:DB:l:KEY    changes of lock KEY ("A" acquired, "S" acquired shared,
//	               "R" released, "B" broken); "R" and "B" may be followed
//	               by ">ID", the queued waiter that should try first, or
//	               by ">" alone (other shared grants still block the lock)
type keyspace struct {
	ns string
	db int
}

func (k keyspace) groups() string               { return k.ns + ":G" }
func (k keyspace) group(g string) string        { return k.ns + ":g:" + g }
func (k keyspace) sessionPrefix() string        { return k.ns + ":s:" }
func (k keyspace) session(sid string) string    { return k.sessionPrefix() + sid }
func (k keyspace) lock(key string) string       { return k.ns + ":l:" + key }
func (k keyspace) fence(key string) string      { return k.ns + ":f:" + key }
func (k keyspace) readers(key string) string    { return k.ns + ":r:" + key }
func (k keyspace) queue(key string) string      { return k.ns + ":q:" + key }
func (k keyspace) expiries(key string) string   { return k.ns + ":w:" + key }
func (k keyspace) groupChannel(g string) string { return k.ns + ":" + strconv.Itoa(k.db) + ":g:" + g }
func (k keyspace) lockChannel(key string) string {
	return k.ns + ":" + strconv.Itoa(k.db) + ":l:" + key
}

// pattern returns a SCAN pattern matching every key of the namespace.
func (k keyspace) pattern() string { return globEscape(k.ns) + ":*" }

// globEscape quotes the glob-special characters of s for SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// A member record is the value of the field "m:MEMBER" of a group hash:
//
//	bytes  1-32  session ID (hex): the member is alive while NS:s:SESSION exists
//	bytes 33-64  incarnation (hex), new for every join
//	bytes 65-80  joined time, Unix milliseconds (hex)
//	bytes 81-96  updated time, Unix milliseconds (hex)
//	bytes 97-    capabilities, raw
//
// The Lua scripts rely on these offsets.
const (
	idLen        = 32
	stampLen     = 16
	recordHeader = 2*idLen + 2*stampLen
)

// newID returns 32 random hex digits (a session ID or an incarnation).
func newID() string {
	var b [idLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newNonce returns 16 random hex digits identifying one request.
func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func stamp(t time.Time) string { return fmt.Sprintf("%016x", uint64(t.UnixMilli())) }

func encodeRecord(sid, inc string, joined, updated time.Time, caps []byte) string {
	return sid + inc + stamp(joined) + stamp(updated) + string(caps)
}

func decodeRecord(id, rec string) (driver.Member, error) {
	if len(rec) < recordHeader {
		return driver.Member{}, fmt.Errorf("malformed record of member %q (%d bytes)", id, len(rec))
	}
	j, err1 := strconv.ParseUint(rec[2*idLen:2*idLen+stampLen], 16, 64)
	u, err2 := strconv.ParseUint(rec[2*idLen+stampLen:recordHeader], 16, 64)
	if err1 != nil || err2 != nil {
		return driver.Member{}, fmt.Errorf("malformed times in the record of member %q", id)
	}
	m := driver.Member{
		ID:          id,
		Incarnation: rec[idLen : 2*idLen],
		JoinedAt:    time.UnixMilli(int64(j)),
		UpdatedAt:   time.UnixMilli(int64(u)),
	}
	if len(rec) > recordHeader {
		m.Capabilities = []byte(rec[recordHeader:])
	}
	return m, nil
}

// groupEvent is one decoded message of a group channel.
type groupEvent struct {
	version int64
	kind    byte // 'J' joined, 'L' left, 'U' updated, 'D' deleted
	member  driver.Member
}

var errBadMessage = errors.New("malformed group message")

// parseGroupMessage decodes "VERSION|K" followed, for J/U, by
// "LEN:MEMBER"+record and, for L, by "LEN:MEMBER"+incarnation.
func parseGroupMessage(p string) (groupEvent, error) {
	bar := strings.IndexByte(p, '|')
	if bar <= 0 || bar+1 >= len(p) {
		return groupEvent{}, errBadMessage
	}
	v, err := strconv.ParseInt(p[:bar], 10, 64)
	if err != nil {
		return groupEvent{}, errBadMessage
	}
	ev := groupEvent{version: v, kind: p[bar+1]}
	rest := p[bar+2:]
	if ev.kind == 'D' {
		return ev, nil
	}
	colon := strings.IndexByte(rest, ':')
	if colon <= 0 {
		return groupEvent{}, errBadMessage
	}
	n, err := strconv.Atoi(rest[:colon])
	if err != nil || n <= 0 || colon+1+n > len(rest) {
		return groupEvent{}, errBadMessage
	}
	id, tail := rest[colon+1:colon+1+n], rest[colon+1+n:]
	switch ev.kind {
	case 'J', 'U':
		m, err := decodeRecord(id, tail)
		if err != nil {
			return groupEvent{}, err
		}
		ev.member = m
	case 'L':
		ev.member = driver.Member{ID: id, Incarnation: tail}
	default:
		return groupEvent{}, errBadMessage
	}
	return ev, nil
}

// lockValue is the decoded value of a lock key.
type lockValue struct {
	token  uint64
	nonce  string
	member string
}

func parseLockValue(v string) (lockValue, error) {
	t, rest, ok1 := strings.Cut(v, ":")
	n, member, ok2 := strings.Cut(rest, ":")
	tok, err := strconv.ParseUint(t, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return lockValue{}, fmt.Errorf("malformed lock value")
	}
	return lockValue{token: tok, nonce: n, member: member}, nil
}

// parseLockMessage decodes a message of a lock channel: its kind ('A',
// 'S', 'R', 'B') and, when the message names one ("R>ID"), the queued
// waiter that should try first. named is false for a message naming
// nobody ("R", as every release before queues, and when nobody is
// queued: every waiter tries); it is true with an empty waiter for "R>"
// (the lock is still blocked: nobody tries). Versions before queues wake
// on any message of the channel, whatever follows its kind.
func parseLockMessage(p string) (kind byte, waiter string, named bool) {
	if p == "" {
		return 0, "", false
	}
	rest, named := strings.CutPrefix(p[1:], ">")
	if !named {
		return p[0], "", false
	}
	return p[0], rest, true
}

// tokenPrefix is how a lock value held under token starts.
func tokenPrefix(token uint64) string { return strconv.FormatUint(token, 10) + ":" }
