package zkbackend

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeName(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "plain-name_1~", want: "plain-name_1~"},
		{give: ".", want: "%2E"},
		{give: "..", want: "%2E%2E"},
		{give: "a/b", want: "a%2Fb"},
		{give: "with space", want: "with%20space"},
		{give: "100%", want: "100%25"},
		{give: "locks", want: "locks"},
		{give: "zookeeper", want: "zookeeper"},
		{give: "é", want: "%C3%A9"},
		{give: "\x01", want: "%01"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got := encodeName(tt.give)
			if got != tt.want {
				t.Fatalf("encodeName(%q) = %q, want %q", tt.give, got, tt.want)
			}
			back, ok := decodeName(got)
			if !ok || back != tt.give {
				t.Fatalf("decodeName(%q) = %q, %v; want %q, true", got, back, ok, tt.give)
			}
		})
	}
}

func TestDecodeNameRejectsForeign(t *testing.T) {
	tests := []struct {
		give string
	}{
		{give: ""},
		{give: "a.b"},
		{give: "%2e"}, // lower-case escape: not encodeName's output
		{give: "%41"}, // needless escape of 'A'
		{give: "%4"},  // truncated
		{give: "%ZZ"}, // not hex
		{give: "a b"}, // raw space
		{give: "a%2"}, // truncated at the end
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if got, ok := decodeName(tt.give); ok {
				t.Fatalf("decodeName(%q) = %q, true; want false", tt.give, got)
			}
		})
	}
}

// FuzzEncodeName checks that the encoding is lossless and yields valid,
// distinct znode names.
func FuzzEncodeName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "/", "%", "é", "l/x", "e/x", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return
		}
		z := encodeName(s)
		if z == "." || z == ".." || strings.Contains(z, "/") || !utf8.ValidString(z) {
			t.Fatalf("encodeName(%q) = %q: not a valid znode name", s, z)
		}
		if err := checkSegment(z); err != nil {
			t.Fatalf("encodeName(%q) = %q: %v", s, z, err)
		}
		back, ok := decodeName(z)
		if !ok || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, ok)
		}
	})
}

func TestParseLockNode(t *testing.T) {
	tests := []struct {
		give       string
		wantOK     bool
		wantShared bool
		wantSeq    uint32
	}{
		{give: "w-0123456789abcdef-0000000007", wantOK: true, wantSeq: 7},
		{give: "r-0123456789abcdef-0000000010", wantOK: true, wantShared: true, wantSeq: 10},
		{give: "w-0123456789abcdef--2147483648", wantOK: true, wantSeq: 1 << 31},
		{give: "x-0123456789abcdef-0000000007"},
		{give: "w-0123456789abcdef-"},
		{give: "w-0123456789abcdef-12a"},
		{give: "lock-0000000001"},
		{give: "_c_abc-lock-0000000001"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			n, ok := parseLockNode(tt.give)
			if ok != tt.wantOK || (ok && (n.shared != tt.wantShared || n.seq != tt.wantSeq)) {
				t.Fatalf("parseLockNode(%q) = %+v, %v; want shared %v seq %d ok %v", tt.give, n, ok, tt.wantShared, tt.wantSeq, tt.wantOK)
			}
		})
	}
}

func TestQueue(t *testing.T) {
	node := func(kind byte, seq string) string { return string(kind) + "-0123456789abcdef-" + seq }
	tests := []struct {
		name        string
		give        []string
		wantHolders int
		wantBlocked []bool // per queue position
	}{
		{name: "empty", give: nil, wantHolders: 0},
		{name: "one writer", give: []string{node('w', "0000000003")}, wantHolders: 1, wantBlocked: []bool{false}},
		{name: "writers in order", give: []string{node('w', "0000000009"), node('w', "0000000002")},
			wantHolders: 1, wantBlocked: []bool{false, true}},
		{name: "readers share", give: []string{node('r', "0000000001"), node('r', "0000000002"), node('w', "0000000003"), node('r', "0000000004")},
			wantHolders: 2, wantBlocked: []bool{false, false, true, true}},
		{name: "writer first", give: []string{node('w', "0000000001"), node('r', "0000000002")},
			wantHolders: 1, wantBlocked: []bool{false, true}},
		{name: "foreign ignored", give: []string{"junk", node('r', "0000000005")}, wantHolders: 1, wantBlocked: []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := sortLockNodes(tt.give)
			if got := len(holders(q)); got != tt.wantHolders {
				t.Fatalf("holders: got %d, want %d (queue %+v)", got, tt.wantHolders, q)
			}
			for i, want := range tt.wantBlocked {
				if _, got := blocker(q, i); got != want {
					t.Fatalf("position %d blocked: got %v, want %v (queue %+v)", i, got, want, q)
				}
			}
		})
	}
}
