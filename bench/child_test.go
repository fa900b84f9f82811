package bench

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperLeader is the body of a crash round's leader process: it
// campaigns with the side and target its parent names, says when it
// leads, and leads until it is killed. It does nothing in a normal run.
func TestHelperLeader(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	em := testutil.NewEmitter(name)
	tb := emittingTB{TB: t, em: em}
	tg := targetNamed(os.Getenv("BENCH_TARGET"))
	if tg == nil {
		tb.Fatalf("unknown target %q", os.Getenv("BENCH_TARGET"))
	}
	s := &site{t: tg, url: os.Getenv("BENCH_SERVER_URL"), dir: os.Getenv("BENCH_DIR")}
	if s.url != "" {
		cfg, err := backend.ParseURL(s.url)
		if err != nil {
			tb.Fatal(err)
		}
		s.hosts = cfg.Hosts
	}
	sd := side{peer: os.Getenv("BENCH_SIDE") == "peer", url: os.Getenv("BENCH_URL"), name: os.Getenv("BENCH_NAME"), crash: true}
	e := sd.candidate(tb, s, name)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := e.lead(ctx, func(time.Time) { em.Emit(testutil.Event{Kind: "start"}) }); err != nil {
		tb.Fatal(err)
	}
}

// emittingTB reports a helper's fatal errors to its parent as "error"
// events (the parent reads only events from the helper's output).
type emittingTB struct {
	testing.TB
	em *testutil.Emitter
}

func (e emittingTB) Fatal(args ...any) {
	e.em.Emit(testutil.Event{Kind: "error", Note: fmt.Sprint(args...)})
	e.TB.Fatal(args...)
}

func (e emittingTB) Fatalf(format string, args ...any) {
	e.em.Emit(testutil.Event{Kind: "error", Note: fmt.Sprintf(format, args...)})
	e.TB.Fatalf(format, args...)
}
