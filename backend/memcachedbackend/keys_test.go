package memcachedbackend

import (
	"strings"
	"testing"
)

// validKey is memcached's rule: at most 250 bytes, no space or control
// character.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 250 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}

func TestKeysValidAndDistinct(t *testing.T) {
	long := strings.Repeat("é", 512)
	names := []string{
		"a", "A", "a_b", "A_B", "a b", " a", "a ", "a\tb", "a\nb", "a:b", "a/b", "../../etc", "%41", "v", "h",
		"vab", "hab", "e/x", "l/x", "✓ unicode 😀", strings.Repeat("x", 64), strings.Repeat("x", 65),
		strings.Repeat("x", 1023) + "a", strings.Repeat("x", 1023) + "b", long,
	}
	ks := keyspace{ns: strings.Repeat("n", 64)}
	seen := map[string]string{}
	for _, n := range names {
		for _, k := range []string{ks.group(n), ks.lock(n), ks.counter(n), ks.member(n, n, "0123456789abcdef")} {
			if !validKey(k) {
				t.Fatalf("name %q: key %q (%d bytes) breaks memcached's key rules", n, k, len(k))
			}
		}
		k := ks.lock(n)
		if prev, ok := seen[k]; ok {
			t.Fatalf("names %q and %q share the key %q", prev, n, k)
		}
		seen[k] = n
	}
	if got := encodeName("job-1.a_b"); got != "vjob-1.a_b" {
		t.Fatalf("a safe name is kept verbatim: got %q", got)
	}
}
