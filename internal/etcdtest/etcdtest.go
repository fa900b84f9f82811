// Package etcdtest holds what the tests of the two etcd v3 drivers
// (etcd3:// over gRPC, etcd3+http:// over the JSON gateway) share that
// needs etcd's own client: a plain client on a URL's servers, for tests
// that act as an operator would. Only tests import it.
package etcdtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
)

// AdminClient returns a plain etcd client on the servers of url, closed
// when the test ends.
func AdminClient(t testing.TB, url string) *clientv3.Client {
	t.Helper()
	cli := NewAdminClient(t, url)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// NewAdminClient returns a plain etcd client on the servers of url; the
// caller closes it.
func NewAdminClient(t testing.TB, url string) *clientv3.Client {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Hosts, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// RevokeMember revokes the lease of every session key under prefix (the
// driver's sessions prefix in the namespace of url) whose value is
// member, as an operator (or an expiry) would: the harness's
// ExpireSession. It returns how many leases it revoked. With
// toleratePassed, a lease already gone (ErrLeaseNotFound: it expired or
// was revoked meanwhile) still counts and is no failure. ctx bounds the
// requests. Its client is closed before it returns (the leak check counts
// goroutines mid-test).
func RevokeMember(t testing.TB, ctx context.Context, url, prefix, member string, toleratePassed bool) int {
	t.Helper()
	cli := NewAdminClient(t, url)
	defer cli.Close()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read sessions: %v", err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		if string(kv.Value) != member {
			continue
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !(toleratePassed && errors.Is(err, rpctypes.ErrLeaseNotFound)) {
			t.Fatalf("revoke lease %x: %v", kv.Lease, err)
		}
		n++
	}
	return n
}

// Count returns how many keys cli finds under prefix.
func Count(ctx context.Context, cli *clientv3.Client, prefix string) (int, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return int(resp.Count), nil
}
