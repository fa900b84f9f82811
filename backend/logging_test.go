package backend_test

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
)

// The Backend logs with one set of fields and levels: acquired and
// released grants at Debug (name for a lock, group for a leadership, and
// the token), a lost grant at Warn with its cause, a lost session at
// Error with its cause; every line carries backend and member.
func TestLogFieldsAndLevels(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	clk := newFakeClock()
	b := open(t, leaseURL(t, "ttl=30s&lock_ttl=30s"), "m1", backend.WithClock(clk), backend.WithLogger(zap.New(core)))
	ctx := context.Background()

	g := tryLock(t, b, "job")
	must(t, g.Release(ctx), "release")
	l := tryCampaign(t, b, "g")
	failNext(t, b, membackend.OpRefresh, 1000)
	failNext(t, b, membackend.OpRenew, 1000)
	for !isClosed(b.Done()) {
		clk.step(t)
	}
	if !l.Lost() {
		t.Fatal("the leadership was not lost with the session")
	}

	type want struct {
		level  zapcore.Level
		msg    string
		fields []string
	}
	for _, w := range []want{
		{zapcore.DebugLevel, "grant acquired", []string{"backend", "member", "kind", "name", "token"}},
		{zapcore.DebugLevel, "grant released", []string{"backend", "member", "kind", "name", "token"}},
		{zapcore.DebugLevel, "grant acquired", []string{"backend", "member", "kind", "group", "token"}},
		{zapcore.WarnLevel, "grant lost", []string{"backend", "member", "kind", "group", "token", "cause"}},
		{zapcore.ErrorLevel, "session lost", []string{"backend", "member", "cause"}},
	} {
		found := false
		for _, e := range logs.FilterMessage(w.msg).All() {
			ctx := e.ContextMap()
			ok := e.Level == w.level
			for _, f := range w.fields {
				if _, has := ctx[f]; !has {
					ok = false
				}
			}
			if ok {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %v line %q with fields %v; lines with that message: %v", w.level, w.msg, w.fields, logs.FilterMessage(w.msg).All())
		}
	}
	if n := logs.FilterField(zap.String("member", "m1")).Len(); n != logs.Len() {
		t.Errorf("%d of %d lines carry member=m1", n, logs.Len())
	}
}
