package etcdproto

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"go.uber.org/zap"
)

func TestEntriesSlots(t *testing.T) {
	var s Entries
	key := func(slot uint64) string { return "l-" + strconv.FormatUint(slot, 16) }
	a, b := s.New("l", key), s.New("l", key)
	if a.Slot != 0 || b.Slot != 1 || a.Key != "l-0" || b.Key != "l-1" {
		t.Fatalf("New twice = %+v, %+v; want slots 0 and 1", a, b)
	}
	s.Release(a)
	if c := s.New("l", key); c.Slot != 0 {
		t.Fatalf("New after Release of slot 0 = slot %d, want 0", c.Slot)
	}
	s.Remember(7, b)
	if e, ok := s.Granted("l", 7); !ok || e != b {
		t.Fatalf("Granted = %+v, %v; want %+v", e, ok, b)
	}
	if e, ok := s.Forget("l", 7); !ok || e != b {
		t.Fatalf("Forget = %+v, %v; want %+v", e, ok, b)
	}
	if _, ok := s.Granted("l", 7); ok {
		t.Fatal("Granted after Forget = true")
	}
}

// An orphan keeps its slot until a deletion succeeds; Delete orphans an
// entry whose deletion fails.
func TestEntriesOrphans(t *testing.T) {
	var s Entries
	ctx := context.Background()
	key := func(slot uint64) string { return "k" + strconv.FormatUint(slot, 10) }
	fail := func(context.Context, string) error { return errors.New("down") }
	var deleted []string
	ok := func(_ context.Context, k string) error { deleted = append(deleted, k); return nil }

	e := s.New("l", key)
	s.Delete(ctx, e, fail)
	if n := s.InUse("l"); n != 1 {
		t.Fatalf("%d slots in use after a failed Delete, want 1", n)
	}
	s.CleanOrphans(ctx, zap.NewNop(), fail)
	if n := s.InUse("l"); n != 1 {
		t.Fatalf("%d slots in use after a failed CleanOrphans, want 1", n)
	}
	s.CleanOrphans(ctx, zap.NewNop(), ok)
	if n := s.InUse("l"); n != 0 || len(deleted) != 1 || deleted[0] != "k0" {
		t.Fatalf("after CleanOrphans: %d slots in use, deleted %q; want 0 and [k0]", n, deleted)
	}
	s.CleanOrphans(ctx, zap.NewNop(), ok)
	if len(deleted) != 1 {
		t.Fatalf("deleted %q after a second CleanOrphans, want one deletion", deleted)
	}
}
