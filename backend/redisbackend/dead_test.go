package redisbackend

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// Open against a dead server, or a Sentinel set none of which answers,
// fails within the connect timeout, long before the caller's deadline,
// classified unavailable and with the refused dial as its cause.
func TestOpenDeadServerSaysWhy(t *testing.T) {
	for name, url := range map[string]string{
		"server":    "redis://127.0.0.1:" + testutil.DeadPort(t) + "?timeout=3",
		"sentinels": "redis://127.0.0.1:" + testutil.DeadPort(t) + "?sentinel=mymaster&sentinel_fallback=127.0.0.1:" + testutil.DeadPort(t) + "&timeout=3",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := backend.Open(ctx, url)
			if err == nil {
				_ = b.Close(ctx)
				t.Fatal("Open of a dead server succeeded")
			}
			if ctx.Err() != nil {
				t.Fatalf("Open waited for the caller's deadline: %v", err)
			}
			if !errors.Is(err, backend.ErrUnavailable) {
				t.Errorf("Open: %v, want ErrUnavailable", err)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("Open: %v, want the refused dial as its cause", err)
			}
		})
	}
}
