package redisbackend

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	joined := time.UnixMilli(1_700_000_000_123)
	updated := joined.Add(time.Hour)
	tests := []struct {
		name string
		caps []byte
	}{
		{"none", nil},
		{"text", []byte("role=worker")},
		{"binary", []byte{0, 0xff, '\n', '|', ':', 0x82}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid, inc := newID(), newID()
			m, err := decodeRecord("m:1", encodeRecord(sid, inc, joined, updated, tt.caps))
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != "m:1" || m.Incarnation != inc || !m.JoinedAt.Equal(joined) || !m.UpdatedAt.Equal(updated) || !bytes.Equal(m.Capabilities, tt.caps) {
				t.Fatalf("decoded %+v", m)
			}
		})
	}
	if _, err := decodeRecord("x", "short"); err == nil {
		t.Fatal("a short record decoded")
	}
}

func TestParseGroupMessage(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	rec := encodeRecord(newID(), newID(), now, now, []byte("c|a:p"))
	tests := []struct {
		name    string
		give    string
		kind    byte
		version int64
		member  string
		wantErr bool
	}{
		{name: "joined", give: "12|J5:a|b:c" + rec, kind: 'J', version: 12, member: "a|b:c"},
		{name: "updated", give: "13|U1:x" + rec, kind: 'U', version: 13, member: "x"},
		{name: "left", give: "14|L3:a\nb" + strings.Repeat("f", 32), kind: 'L', version: 14, member: "a\nb"},
		{name: "deleted", give: "15|D", kind: 'D', version: 15},
		{name: "no version", give: "|D", wantErr: true},
		{name: "bad length", give: "1|J99:a" + rec, wantErr: true},
		{name: "unknown kind", give: "1|Q1:a", wantErr: true},
		{name: "short record", give: "1|J1:abc", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := parseGroupMessage(tt.give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v; want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if ev.kind != tt.kind || ev.version != tt.version || ev.member.ID != tt.member {
				t.Fatalf("parsed %+v", ev)
			}
		})
	}
}

func TestParseLockValue(t *testing.T) {
	v, err := parseLockValue("42:00ff:member:with:colons")
	if err != nil || v.token != 42 || v.nonce != "00ff" || v.member != "member:with:colons" {
		t.Fatalf("parsed %+v, %v", v, err)
	}
	for _, bad := range []string{"", "x:1:m", "1", "1:n"} {
		if _, err := parseLockValue(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestKeysOfDifferentKindsNeverCollide(t *testing.T) {
	ks := keyspace{ns: "_tooz", db: 0}
	seen := map[string]string{}
	add := func(kind, key string) {
		if prev, ok := seen[key]; ok {
			t.Fatalf("%s and %s share the key %q", prev, kind, key)
		}
		seen[key] = kind
	}
	add("groups", ks.groups())
	for _, n := range oddNames {
		add("group "+n, ks.group(n))
		add("session "+n, ks.session(n))
		add("lock "+n, ks.lock(n))
		add("fence "+n, ks.fence(n))
		add("readers "+n, ks.readers(n))
		add("queue "+n, ks.queue(n))
		add("expiries "+n, ks.expiries(n))
	}
	for key := range seen {
		if !strings.HasPrefix(key, "_tooz:") {
			t.Fatalf("key %q escapes the namespace", key)
		}
	}
	if got := (keyspace{ns: "a*b"}).pattern(); got != `a\*b:*` {
		t.Fatalf("pattern %q", got)
	}
}
