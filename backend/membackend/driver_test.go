package membackend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

func TestURLs(t *testing.T) {
	tests := []struct {
		give      string
		wantStore string
		wantErr   error
	}{
		{give: "mem://", wantStore: ""},
		{give: "mem:///", wantStore: ""},
		{give: "MEM://Name", wantStore: "Name"},
		{give: "mem://a.b_c-1:2", wantStore: "a.b_c-1:2"},
		{give: "mem://a,b", wantErr: backend.ErrInvalidArgument},
		{give: "mem://user@a", wantErr: backend.ErrInvalidArgument},
		{give: "mem://:pw@a", wantErr: backend.ErrInvalidArgument},
		{give: "mem://a/b", wantErr: backend.ErrInvalidArgument},
		{give: "mem://a?timeout=10", wantErr: backend.ErrInvalidArgument},
		{give: "mem://a?namespace=x", wantErr: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			b, err := backend.Open(context.Background(), tt.give)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open = %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer b.Close(context.Background())
			if got, ok := membackend.StoreName(b); !ok || got != tt.wantStore {
				t.Errorf("StoreName = %q, %v; want %q", got, ok, tt.wantStore)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	var info driver.Info
	for _, in := range backend.Drivers() {
		if in.CanonicalScheme() == "mem" {
			info = in
		}
	}
	if info.Name == "" {
		t.Fatal("mem is not registered")
	}
	for _, u := range info.Examples {
		if _, err := backend.ParseURL(u); err != nil {
			t.Errorf("example %q: %v", u, err)
		}
	}
	ctx := testCtx(t)
	b := openBackend(t, newStore(t), "a")
	all := []backend.Characteristic{
		backend.AcrossThreads, backend.NonTimeoutBased, backend.Linearizable, backend.Sequential,
		backend.Causal, backend.Serializable, backend.SameViewUnderPartitions, backend.SameViewAcrossClients,
		backend.SessionLiveness, backend.PushWatch, backend.StrongFencing, backend.NotEvictable, backend.SharedLockSupport,
	}
	for _, c := range all {
		if !b.Characteristics().Has(c) {
			t.Errorf("lacks %v", c)
		}
	}
	for _, c := range []backend.Characteristic{backend.AcrossProcesses, backend.AcrossHosts} {
		if b.Characteristics().Has(c) {
			t.Errorf("claims %v", c)
		}
	}
	if s := b.Session(); s.Liveness != driver.LivenessSession || s.RenewInterval != 0 {
		t.Errorf("session = %+v; want a session without renewal", s)
	}
	if _, err := backend.Open(ctx, "mem://", backend.Require(backend.AcrossProcesses)); !errors.Is(err, backend.ErrUnimplemented) {
		t.Errorf("Require(AcrossProcesses) = %v; want ErrUnimplemented", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := backend.Open(canceled, "mem://"); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a canceled context = %v", err)
	}
	if _, ok := membackend.StoreName(b); !ok {
		t.Error("StoreName of a mem Backend failed")
	}
}
