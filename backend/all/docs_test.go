package all_test

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
)

var update = flag.Bool("update", false, "rewrite docs/drivers.md")

// TestDriverDocsUpToDate fails when docs/drivers.md differs from what the
// option tables generate (run `make docs`).
func TestDriverDocsUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := backend.WriteDriverDocs(&buf); err != nil {
		t.Fatal(err)
	}
	const path = "../../docs/drivers.md"
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make docs`)", err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Fatal("docs/drivers.md is stale: run `make docs` and commit the result")
	}
}

// TestExamplesParse checks every documented example connection string of
// every driver, and that each driver's option table is sane.
func TestExamplesParse(t *testing.T) {
	for _, d := range backend.Drivers() {
		t.Run(d.CanonicalScheme(), func(t *testing.T) {
			if len(d.Examples) == 0 {
				t.Error("driver documents no example URL")
			}
			for _, u := range d.Examples {
				// An example may name TLS files this machine lacks: the
				// driver's check refuses it for that reason alone.
				if _, err := backend.ParseURL(u); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("example %q: %v", u, err)
				}
			}
			seen := map[string]bool{}
			for _, o := range d.Options {
				if o.Key == "" || o.Doc == "" || o.Type == 0 {
					t.Errorf("option %q lacks a key, a type or a doc", o.Key)
				}
				if seen[o.Key] {
					t.Errorf("option %q declared twice", o.Key)
				}
				seen[o.Key] = true
				if strings.Contains(strings.ToLower(o.Key), "password") && !o.Secret {
					t.Errorf("option %q must be Secret", o.Key)
				}
			}
		})
	}
}
