package filebackend

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeName(t *testing.T) {
	tests := []struct {
		name       string
		give       string
		wantPrefix string
	}{
		{name: "plain", give: "plain", wantPrefix: directPrefix},
		{name: "dot dot", give: "..", wantPrefix: directPrefix},
		{name: "path escape", give: "../../etc/passwd", wantPrefix: directPrefix},
		{name: "slashes", give: "/a/b/", wantPrefix: directPrefix},
		{name: "unicode", give: "日本語 🚀", wantPrefix: directPrefix},
		{name: "longest direct", give: strings.Repeat("x", 124), wantPrefix: directPrefix},
		{name: "shortest hashed", give: strings.Repeat("x", 125), wantPrefix: hashPrefix},
		{name: "1 KiB", give: strings.Repeat("日", 341) + "x", wantPrefix: hashPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encodeName(tt.give)
			if !strings.HasPrefix(got, tt.wantPrefix) {
				t.Fatalf("encodeName(%q) = %q, want prefix %q", tt.give, got, tt.wantPrefix)
			}
			if len(got) > maxDirectName || strings.ContainsAny(got, "/.\x00") || strings.ToLower(got) != got {
				t.Fatalf("encodeName(%q) = %q: not a safe file name", tt.give, got)
			}
			dec, err := decodeName(got)
			switch tt.wantPrefix {
			case directPrefix:
				if err != nil || dec != tt.give {
					t.Fatalf("decodeName(%q) = %q, %v; want %q", got, dec, err, tt.give)
				}
			case hashPrefix:
				if !errors.Is(err, errHashedName) {
					t.Fatalf("decodeName(%q): %v, want errHashedName", got, err)
				}
			}
		})
	}
}

func TestDecodeNameRejectsForeignNames(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "internal", give: ".group"},
		{name: "no prefix", give: "abc"},
		{name: "upper case", give: "nMFRGG"},
		{name: "not canonical", give: "nmfrgh"},
		{name: "short hash", give: "habc"},
		{name: "temporary", give: "w-0011"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := decodeName(tt.give); err == nil || errors.Is(err, errHashedName) {
				t.Fatalf("decodeName(%q) = %q, %v; want an error", tt.give, got, err)
			}
		})
	}
}

// FuzzEncodeName checks that distinct names get distinct, safe file names
// and that direct encodings round-trip.
func FuzzEncodeName(f *testing.F) {
	for _, s := range []string{"a", "..", "a/b", strings.Repeat("z", 200), "日本"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || a == "" {
			return
		}
		ea := encodeName(a)
		if strings.ContainsAny(ea, "/.") || len(ea) > maxDirectName || ea == "" {
			t.Fatalf("unsafe encoding %q of %q", ea, a)
		}
		if a != b && ea == encodeName(b) {
			t.Fatalf("%q and %q both encode to %q", a, b, ea)
		}
		if dec, err := decodeName(ea); err == nil && dec != a {
			t.Fatalf("decodeName(encodeName(%q)) = %q", a, dec)
		}
	})
}
