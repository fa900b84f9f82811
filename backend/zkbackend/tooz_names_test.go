package zkbackend

import (
	"slices"
	"sort"
	"testing"
)

// IDs tooz can write are their own znode names; every other ID is escaped
// (always with a '%'), and decoding inverts encoding.
func TestToozNames(t *testing.T) {
	for _, id := range []string{"plain", "with space", "a-b_c~d", "a:b", "tooz-1", "UPPER"} {
		if got := toozEncode(id); got != id {
			t.Errorf("toozEncode(%q) = %q, want it unchanged", id, got)
		}
	}
	for _, id := range []string{"locks", "leader", ".", "..", "a/b", "50%", "ünï", "日本", "tab\there", "a%2Fb"} {
		z := toozEncode(id)
		if z == id || !slices.Contains([]byte(z), '%') {
			t.Errorf("toozEncode(%q) = %q, want an escaped name", id, z)
		}
		if got, ok := toozDecode(z); !ok || got != id {
			t.Errorf("toozDecode(toozEncode(%q) = %q) = %q, %v", id, z, got, ok)
		}
	}
	for _, z := range []string{"locks", "leader"} {
		if _, ok := toozDecode(z); ok {
			t.Errorf("toozDecode(%q) is a name; it is tooz's layout", z)
		}
	}
	if got, ok := toozDecode("50%off"); !ok || got != "50%off" {
		t.Errorf("toozDecode of a tooz ID with a stray %%: %q, %v", got, ok)
	}
}

// Lock names of plain segments nest as in tooz; others are escaped whole.
func TestToozLockName(t *testing.T) {
	for name, want := range map[string]string{
		"plain":        "plain",
		"a/b":          "a/b",
		"/lead":        "%2Flead",
		"a//b":         "a%2F%2Fb",
		"a/../b":       "a%2F..%2Fb",
		"x/y__lock__0": "x%2Fy__lock__0",
	} {
		if got := toozLockName(name); got != want {
			t.Errorf("toozLockName(%q) = %q, want %q", name, got, want)
		}
	}
}

// Contenders are ordered as kazoo orders them: by the sequence's text.
func TestToozKazooOrder(t *testing.T) {
	names := []string{
		"bbbb__lock__0000000010",
		"aaaa__lock__0000000002",
		"cccc__lock__-0000000001",
		"dddd__rlock__0000000001", // kazoo's read lock: not a contender of Lock
		"w-0123456789abcdef-0000000001",
		"eeee__lock__-0000000003",
	}
	var kazoo []string
	for _, n := range names {
		if k, ok := parseKazooNode(n); ok {
			kazoo = append(kazoo, k.name)
		}
	}
	want := slices.Clone(kazoo)
	sort.Slice(want, func(i, j int) bool { return seqText(want[i]) < seqText(want[j]) })
	var got []string
	for _, n := range sortLockNodes(kazoo) {
		got = append(got, n.name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want kazoo's %v", got, want)
	}
	if _, ok := parseKazooNode("dddd__rlock__0000000001"); ok {
		t.Fatal("a read-lock contender parsed as a Lock contender")
	}
}

func seqText(name string) string {
	i := len(name) - 10
	if name[i-1] == '-' {
		i--
	}
	return name[i:]
}
