package backend_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
)

// The generated reference lists every registered driver with its schemes,
// characteristics and every option of its table; every example parses.
func TestWriteDriverDocs(t *testing.T) {
	var sb strings.Builder
	must(t, backend.WriteDriverDocs(&sb), "write docs")
	doc := sb.String()
	if !strings.HasPrefix(doc, "# Drivers\n") {
		t.Fatalf("docs start with %q", doc[:min(len(doc), 40)])
	}
	infos := backend.Drivers()
	if len(infos) < 4 {
		t.Fatalf("%d drivers registered; want at least mem, mempoll, file, redis", len(infos))
	}
	for i, in := range infos {
		if i > 0 && infos[i-1].CanonicalScheme() >= in.CanonicalScheme() {
			t.Errorf("Drivers() not sorted: %q before %q", infos[i-1].CanonicalScheme(), in.CanonicalScheme())
		}
		section := "## " + in.Name + "\n"
		at := strings.Index(doc, section)
		if at < 0 {
			t.Errorf("no section %q", section)
			continue
		}
		body := doc[at+len(section):]
		if next := strings.Index(body, "\n## "); next >= 0 {
			body = body[:next]
		}
		for _, s := range in.Schemes {
			if !strings.Contains(body, "`"+s+"://`") {
				t.Errorf("%s: scheme %s not documented", in.Name, s)
			}
		}
		if len(in.Options) == 0 && !strings.Contains(body, "takes no query options") {
			t.Errorf("%s: no option table and no statement that there is none", in.Name)
		}
		for _, o := range in.Options {
			if !strings.Contains(body, "| `"+o.Key+"` | "+o.Type.String()+" |") {
				t.Errorf("%s: option %s (%s) not in its table", in.Name, o.Key, o.Type)
			}
		}
		if !strings.Contains(body, "Liveness: "+in.Characteristics.Liveness.String()) {
			t.Errorf("%s: liveness not documented", in.Name)
		}
		for _, ex := range in.Examples {
			if !strings.Contains(body, "- `"+ex+"`") {
				t.Errorf("%s: example %s not listed", in.Name, ex)
			}
			// An example may name TLS files this machine lacks: the
			// driver's check refuses it for that reason alone.
			if _, err := backend.ParseURL(ex); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: example %s does not parse: %v", in.Name, ex, err)
			}
		}
	}
}

type failingWriter struct{}

var errWrite = errors.New("write failed")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteDriverDocsWriteError(t *testing.T) {
	if err := backend.WriteDriverDocs(failingWriter{}); !errors.Is(err, errWrite) {
		t.Fatalf("WriteDriverDocs on a failing writer = %v; want the write error", err)
	}
}

// Explain shows the resolved configuration: every option with its value
// and where it came from, and never a secret.
func TestExplain(t *testing.T) {
	tests := []struct {
		name      string
		give      string
		wantLines []string
		wantNot   []string
	}{
		{
			name:      "set and default options",
			give:      "file:///tmp/x?timeout=5",
			wantLines: []string{"url:     file:///tmp/x?timeout=5", "driver:  File (`file://`)", "path:    /tmp/x", "timeout", "5s", "[set]", "namespace", "baton", "[default]", "liveness: session"},
		},
		{
			name:      "derived defaults and secrets",
			give:      "redis://user:pw1secret@h1,h2?sentinel=m&sentinel_password=pw2secret&timeout=3",
			wantLines: []string{"hosts:   h1, h2", "user:    user", "password: (set)", "lock_timeout", "= timeout", "[derived]", "sentinel_password", "xxxxx", "liveness: ttl"},
			wantNot:   []string{"pw1secret", "pw2secret"},
		},
		{
			name:      "unset options",
			give:      "redis://h",
			wantLines: []string{"sentinel", "(none)", "[unset]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backend.ParseURL(tt.give)
			must(t, err, "parse")
			out := backend.Explain(cfg)
			for _, w := range tt.wantLines {
				if !strings.Contains(out, w) {
					t.Errorf("Explain does not show %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("Explain shows %q:\n%s", w, out)
				}
			}
			for _, o := range cfg.Driver.Options {
				if !strings.Contains(out, "  "+o.Key+" ") {
					t.Errorf("Explain does not list option %s", o.Key)
				}
			}
		})
	}
}
