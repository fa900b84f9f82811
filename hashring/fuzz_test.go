package hashring

import (
	"testing"
)

// FuzzOwners applies a fuzzed sequence of Add/Remove/SetWeight to a ring
// and checks the Owners invariants on a fuzzed key, plus the equality of
// the ring with a fresh build.
//
// ops[0] picks the mode; then every two bytes are one operation: the
// first picks the operation and the node from namePool, the second the
// weight. ignoreMask selects ignored names from namePool.
func FuzzOwners(f *testing.F) {
	f.Add([]byte{0, 0, 1, 3, 2, 6, 1}, []byte("fake"), 3, uint16(0))
	f.Add([]byte{1, 0, 1, 3, 1, 0, 2, 1, 0}, []byte("чупакабра"), 2, uint16(1))
	f.Add([]byte{2, 0, 3, 3, 0, 6, 2, 9, 1}, []byte(""), 10, uint16(0x3ff))
	f.Add([]byte{1, 3, 2, 0, 1, 5, 3, 1, 0}, []byte("k"), -1, uint16(2))
	fuzzModes := []struct {
		opts []Option
	}{
		{opts: []Option{WithVirtualNodes(8)}},
		{opts: []Option{ToozCompatible(), WithVirtualNodes(4)}},
		{opts: []Option{WithHash(weakHash), WithVirtualNodes(3)}},
	}
	f.Fuzz(func(t *testing.T, ops, key []byte, n int, ignoreMask uint16) {
		if len(ops) == 0 || len(ops) > 200 {
			return
		}
		opts := fuzzModes[int(ops[0])%len(fuzzModes)].opts
		r, err := New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		var m model
		for i := 1; i+1 < len(ops); i += 2 {
			op := int(ops[i]) % 3
			node := namePool[int(ops[i])/3%len(namePool)]
			weight := int(ops[i+1]) % 4
			if err := m.apply(r, op, node, weight); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.verify(t, r, opts, 0); err != nil {
			t.Fatal(err)
		}

		var ignore []string
		for i, name := range namePool {
			if ignoreMask&(1<<i) != 0 {
				ignore = append(ignore, name)
			}
		}
		if ignoreMask&(1<<15) != 0 {
			ignore = append(ignore, "not-a-member")
		}
		n = n%(len(namePool)+3) - 1 // -1 .. len+1, covering n > members
		got := r.Owners(key, n, ignore...)
		if err := checkOwners(r, key, n, ignore, got); err != nil {
			t.Fatal(err)
		}
	})
}
