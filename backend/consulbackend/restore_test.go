package consulbackend

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend"
)

// A snapshot restore takes the store back in time: the next reply of a
// blocking query on the group carries a lower index than the watch
// waited on. The watch starts over from index 0 and re-lists the group: a
// member that joined after the snapshot is reported gone, with a resync,
// and changes after the restore are seen as usual.
func TestWatchResyncsAfterSnapshotRestore(t *testing.T) {
	srv := startPrivate(t, "consul")
	url := nsURL(srv.URL("BATON_TEST_CONSUL_URL"))
	admin, closeIdle := newAdminClient(t, url)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	a := openBackend(t, url, "a")
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	// Snapshots need a management token: bootstrap the private agent's
	// ACL system (its default policy stays "allow" for the Backends).
	boot, _, err := admin.ACL().Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	mgmt := &api.QueryOptions{Token: boot.SecretID}
	snap, _, err := admin.Snapshot().Save(mgmt)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(snap)
	_ = snap.Close()
	if err != nil {
		t.Fatal(err)
	}

	w, err := a.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	next := func(what string) backend.Event {
		t.Helper()
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("%s: the watch ended: %v", what, w.Err())
			}
			return ev
		case <-ctx.Done():
			t.Fatalf("%s: no event", what)
		}
		return backend.Event{}
	}
	b := openBackend(t, url, "b")
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ev := next("b's join"); ev.Type != backend.EventJoined || ev.Member.ID != "b" {
		t.Fatalf("event %v %s; want b joined", ev.Type, ev.Member.ID)
	}

	if err := admin.Snapshot().Restore(&api.WriteOptions{Token: boot.SecretID}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// b's session and key postdate the snapshot: gone, reported as a
	// leave followed by the resync with the restored list.
	if ev := next("b's leave"); ev.Type != backend.EventLeft || ev.Member.ID != "b" {
		t.Fatalf("event %v %s after the restore; want b left", ev.Type, ev.Member.ID)
	}
	ev := next("the resync")
	if ev.Type != backend.EventResync || len(ev.Members) != 1 || ev.Members[0].ID != "a" {
		t.Fatalf("event %v %v after the restore; want a resync listing only a", ev.Type, ev.Members)
	}
	c := openBackend(t, url, "c")
	if err := c.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ev := next("c's join after the restore"); ev.Type != backend.EventJoined || ev.Member.ID != "c" {
		t.Fatalf("event %v %s; want c joined", ev.Type, ev.Member.ID)
	}
}
