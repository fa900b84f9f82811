package zkbackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend"
)

// With user:password the connection authenticates with the digest scheme
// and every znode it creates is readable and writable by that user only.
func TestDigestAuth(t *testing.T) {
	raw := standaloneURL(t)
	hosts := strings.TrimPrefix(raw, "zookeeper://")
	// A top-level namespace of its own: its parent would otherwise be
	// created with alice's ACL and lock other tests out.
	ns := "namespace=baton-auth-" + randomName(t)
	owner := openBackend(t, testScheme+"://alice:s3cret@"+hosts+"?"+ns, "alice")
	ctx := testCtx(t, 20*time.Second)
	if err := owner.JoinCreate(ctx, "g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	g, ok, err := owner.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock: %v, %v", ok, err)
	}
	c := connOf(t, owner)
	for _, p := range []string{c.s.root, c.groupsPath(), c.groupPath("g"), c.memberPath("g", "alice"), c.lockPath("l/l")} {
		acl, _, err := c.zk.GetACL(p)
		if err != nil {
			t.Fatalf("acl of %s: %v", p, err)
		}
		if len(acl) != 1 || acl[0].Scheme != "digest" || !strings.HasPrefix(acl[0].ID, "alice:") || acl[0].Perms != zk.PermAll {
			t.Fatalf("acl of %s: %+v, want alice's digest only", p, acl)
		}
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		url  string
	}{
		{name: "anonymous", url: testScheme + "://" + hosts + "?" + ns},
		{name: "wrong password", url: testScheme + "://alice:guess@" + hosts + "?" + ns},
	} {
		t.Run(tt.name, func(t *testing.T) {
			octx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := backend.Open(octx, tt.url, backend.WithMemberID("mallory"))
			if err == nil {
				defer b.Close(octx)
				_, err = b.Members(octx, "g")
			}
			if !errors.Is(err, backend.ErrInvalidArgument) || !strings.Contains(err.Error(), "not authorized") {
				t.Fatalf("read of alice's group as %s: %v, want a not-authorized ErrInvalidArgument", tt.name, err)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "guess") {
				t.Fatalf("error %q shows a password", err)
			}
		})
	}
}
