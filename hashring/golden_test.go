package hashring

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current placement")

// goldenNodes is the ring the golden files pin: five nodes, mixed
// weights, one UTF-8 name.
var goldenNodes = []weighted{
	{"alpha", 1},
	{"bravo", 2},
	{"charlie", 3},
	{"delta", 1},
	{"эхо", 1},
}

// TestGolden pins placement: owners (n=3, walk order) of "key-0" ..
// "key-999". A diff here means every deployment reshuffles on upgrade.
// xxhash.golden is the default mode at 128 virtual nodes (the former
// default), xxhash-1024.golden the default mode with its defaults.
// testdata/tooz.golden was cross-checked against tooz's algorithm run in
// Python.
func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		giveOpts []Option
		wantFile string
	}{
		{name: "xxhash", giveOpts: []Option{WithVirtualNodes(128)}, wantFile: "xxhash.golden"},
		{name: "xxhash", wantFile: "xxhash-1024.golden"},
		{name: "tooz", giveOpts: []Option{ToozCompatible()}, wantFile: "tooz.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.wantFile, func(t *testing.T) {
			r := mustRing(t, goldenNodes, tt.giveOpts...)
			got := goldenPlacement(r, tt.name)
			path := filepath.Join("testdata", tt.wantFile)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := range min(len(gl), len(wl)) {
					if gl[i] != wl[i] {
						t.Fatalf("placement changed (%s line %d):\n got: %s\nwant: %s", path, i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("placement changed: %s has %d lines, got %d", path, len(wl), len(gl))
			}
		})
	}
}

func goldenPlacement(r *Ring, mode string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# hashring placement, mode=%s vnodes=%d, owners n=3 in walk order\n", mode, r.vnodes)
	fmt.Fprintf(&b, "# nodes:")
	for _, n := range goldenNodes {
		fmt.Fprintf(&b, " %s:%d", n.node, n.weight)
	}
	fmt.Fprintf(&b, "\n")
	for i := range 1000 {
		key := fmt.Sprintf("key-%d", i)
		fmt.Fprintf(&b, "%s %s\n", key, strings.Join(r.Owners([]byte(key), 3), " "))
	}
	return b.Bytes()
}
