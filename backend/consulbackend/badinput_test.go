package consulbackend

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

// A token the agent does not know is refused at Open with
// ErrInvalidArgument, and the error does not show the token; the same
// token from CONSUL_HTTP_TOKEN is refused the same way.
func TestWrongACLToken(t *testing.T) {
	const secret = "0b5c3e5e-6d0e-4f4e-9a7c-000000000bad"
	tests := []struct {
		name    string
		giveURL string
		giveEnv string
	}{
		{name: "option", giveURL: nsURL(singleURL(t), "acl_token="+secret)},
		{name: "environment", giveURL: nsURL(singleURL(t)), giveEnv: secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, tt.giveEnv)
			b, err := backend.Open(testCtx(t), tt.giveURL, backend.WithMemberID("m"))
			if err == nil {
				_ = b.Close(testCtx(t))
				t.Fatal("Open with an unknown ACL token succeeded")
			}
			if !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("Open = %v, want ErrInvalidArgument", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the token: %v", err)
			}
			if !strings.Contains(err.Error(), "ACL not found") {
				t.Fatalf("the error does not say why: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

// Capabilities of backend.MaxCapabilitiesLen (256 KiB) round-trip (the
// conformance suite checks it through the backend); past Consul's own
// limits a join is refused by the agent, coded CodeInvalidArgument, with
// nothing written. The backend never sends more than 256 KiB.
func TestCapabilitiesBeyondConsulLimit(t *testing.T) {
	url := nsURL(singleURL(t))
	c, _ := openConn(t, url, "m")
	ctx := testCtx(t)
	if err := c.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	max := bytes.Repeat([]byte{0xa5}, backend.MaxCapabilitiesLen)
	if err := c.Join(ctx, "g", max); err != nil {
		t.Fatalf("join with %d bytes: %v", len(max), err)
	}
	ms, err := c.Members(ctx, "g")
	if err != nil || len(ms) != 1 || !bytes.Equal(ms[0].Capabilities, max) {
		t.Fatalf("members = %d, %v; want the 256 KiB capabilities back", len(ms), err)
	}
	if err := c.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte{0x5a}, 600<<10)
	err = c.Join(ctx, "g", huge)
	if !testutil.CodeIs(err, driver.CodeInvalidArgument) {
		t.Fatalf("join with %d bytes = %v, want CodeInvalidArgument", len(huge), err)
	}
	t.Logf("600 KiB: %v", err)
	if ms, err := c.Members(ctx, "g"); err != nil || len(ms) != 0 {
		t.Fatalf("members after the refused join = %v, %v; want none", ms, err)
	}
}
