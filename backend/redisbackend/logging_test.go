package redisbackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/baton-go/baton/backend"
)

// go-redis's own log lines (here: its dial failures against a dead
// address) go through the Backend's logger, not to stderr, and Open says
// why it failed, coded unavailable.
func TestClientLogThroughZap(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := backend.Open(ctx, "redis://127.0.0.1:1?timeout=2", backend.WithLogger(zap.New(core)))
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Open against a dead address = %v; want ErrUnavailable", err)
	}
	if n := logs.FilterMessage("go-redis").Len(); n == 0 {
		t.Fatalf("no go-redis line reached the Backend's logger; got %v", logs.All())
	}
}
