package etcdbackend

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// Open against a dead etcd fails within its dial timeout, long before the
// caller's deadline, classified unavailable and with the refused dial as
// its cause.
func TestOpenDeadServerSaysWhy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "etcd3://127.0.0.1:" + testutil.DeadPort(t) + ",127.0.0.1:" + testutil.DeadPort(t) + "?timeout=2"
	b, err := backend.Open(ctx, url)
	if err == nil {
		_ = b.Close(ctx)
		t.Fatal("Open of a dead etcd succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("Open waited for the caller's deadline: %v", err)
	}
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Open of a dead etcd: %v, want ErrUnavailable", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Open of a dead etcd: %v, want the refused dial as its cause", err)
	}
}
