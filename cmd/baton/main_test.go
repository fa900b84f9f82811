package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
)

// url explain refuses exactly what Open refuses before connecting, with
// the same error and exit status 2, and never shows a password.
func TestExplainRefusesWhatOpenRefuses(t *testing.T) {
	const pw = "Zq9pWsecret"
	for _, u := range []string{
		"redis://admin:2024/" + pw + "@h:6379",
		"redis://u:12?db=" + pw + "@h",
		"redis://u:" + pw + "@h:99999",
		"redis://u:" + pw + "@h?bogus=1",
		"redis://h?sentinel_password=" + pw + "&db=x",
		"zake://u:" + pw + "@h",
		"nosuch://h",
		"file:///tmp/x?timout=5",
	} {
		var out, errOut bytes.Buffer
		code := run([]string{"url", "explain", u}, &out, &errOut)
		_, openErr := backend.Open(context.Background(), u)
		if openErr == nil {
			t.Fatalf("Open(%q) succeeded; want a refusal", u)
		}
		if code != 2 || out.Len() != 0 {
			t.Errorf("explain %q: exit %d, stdout %q; want 2 and nothing", u, code, out.String())
		}
		if got, want := strings.TrimSpace(errOut.String()), "baton: "+openErr.Error(); got != want {
			t.Errorf("explain %q: stderr %q; want Open's error %q", u, got, want)
		}
		if strings.Contains(errOut.String(), pw) {
			t.Errorf("explain %q shows the password: %s", u, errOut.String())
		}
	}
}

func TestExplainShowsNoPassword(t *testing.T) {
	const pw = "Zq9pWsecret"
	var out, errOut bytes.Buffer
	if code := run([]string{"url", "explain", "redis://u:" + pw + "@h?sentinel=m&sentinel_password=" + pw}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), pw) || !strings.Contains(out.String(), "xxxxx") {
		t.Errorf("explain shows a secret or hides nothing:\n%s", out.String())
	}
}
