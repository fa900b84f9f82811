package filebackend

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	var s1, s2 sessionID
	s1[0], s2[15] = 1, 2
	tests := []struct {
		name string
		give lockRecord
	}{
		{name: "free", give: lockRecord{last: 7, mode: modeFree, holders: []lockHolder{}}},
		{name: "exclusive", give: lockRecord{last: 9, mode: modeExclusive, holders: []lockHolder{{token: 9, session: s1, member: "m1"}}}},
		{name: "shared", give: lockRecord{last: 12, mode: modeShared, holders: []lockHolder{
			{token: 11, session: s1, member: "m1"}, {token: 12, session: s2, member: strings.Repeat("日", 341) + "x"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.give.encode(nil)
			got, err := decodeRecord(append(b, "trailing bytes of a longer old record"...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.give) {
				t.Fatalf("decoded %+v, want %+v", got, tt.give)
			}
		})
	}
}

func TestDecodeRecordRejectsDamage(t *testing.T) {
	good := (&lockRecord{last: 3, mode: modeExclusive, holders: []lockHolder{{token: 3, member: "m"}}}).encode(nil)
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0xff
		return b
	}
	tests := []struct {
		name string
		give []byte
	}{
		{name: "bad magic", give: flip(0)},
		{name: "bad length", give: flip(5)},
		{name: "bad checksum", give: flip(9)},
		{name: "bad payload", give: flip(len(good) - 1)},
		{name: "truncated", give: good[:len(good)-2]},
		{name: "header only", give: good[:recordHeader-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeRecord(tt.give); !errors.Is(err, errBadRecord) {
				t.Fatalf("decodeRecord: %v, want errBadRecord", err)
			}
		})
	}
	if r, err := decodeRecord(nil); err != nil || r.last != 0 || r.mode != modeFree {
		t.Fatalf("empty file: %+v, %v; want an empty record", r, err)
	}
}

func TestNextToken(t *testing.T) {
	tests := []struct {
		name     string
		giveLast uint64
		giveNow  int64
		want     uint64
	}{
		{name: "clock ahead", giveLast: 5, giveNow: 1000, want: 1000},
		{name: "counter ahead", giveLast: 5000, giveNow: 1000, want: 5001},
		{name: "same microsecond", giveLast: 1000, giveNow: 1000, want: 1001},
		{name: "clock before 1970", giveLast: 5, giveNow: -3, want: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextToken(tt.giveLast, tt.giveNow); got != tt.want {
				t.Fatalf("nextToken(%d, %d) = %d, want %d", tt.giveLast, tt.giveNow, got, tt.want)
			}
		})
	}
}
