package etcdproto

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// Entry is one lock entry a connection writes: the key
// <ns>/locks/<lock>/<lease>-<slot>. A slot is taken for the whole life of
// an attempt, from before its entry is written until the entry is known
// to be deleted, so two attempts of one connection never share a key
// (locks are not reentrant) and an entry key is never written while an
// older write of it may still exist. Slots are reused afterwards: a lock
// taken and released a million times leaves one key behind in etcd's
// history, not a million (each distinct key stays in etcd's index until
// compaction, and every range over the lock's prefix walks them).
type Entry struct {
	Lock string // the lock's name
	Slot uint64 // the slot the entry holds in Entries
	Key  string // the entry's key
}

// grantID identifies a grant the way the SPI does: lock key and token.
type grantID struct {
	key   string
	token uint64
}

// Entries keeps the lock entries of one connection: the slots in use,
// the granted entries by (lock, token) and the orphans, entries that may
// exist on the server although the operation that wrote them failed. The
// zero value is ready to use; it is safe for concurrent use.
type Entries struct {
	mu      sync.Mutex
	slots   map[string]map[uint64]bool // slots in use, per lock
	held    map[grantID]Entry          // granted entries by (lock, token)
	orphans map[string]Entry           // entries to delete on the next renewal, by key
}

// New takes the lowest free slot of lock and returns its entry, whose key
// is keyOf(slot).
func (s *Entries) New(lock string, keyOf func(slot uint64) string) Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots == nil {
		s.slots = map[string]map[uint64]bool{}
	}
	used := s.slots[lock]
	if used == nil {
		used = map[uint64]bool{}
		s.slots[lock] = used
	}
	slot := uint64(0)
	for used[slot] {
		slot++
	}
	used[slot] = true
	return Entry{Lock: lock, Slot: slot, Key: keyOf(slot)}
}

// InUse returns how many slots of lock are taken.
func (s *Entries) InUse(lock string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.slots[lock])
}

// Release frees the slot of an entry known not to exist on the server.
func (s *Entries) Release(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if used := s.slots[e.Lock]; used != nil {
		delete(used, e.Slot)
		if len(used) == 0 {
			delete(s.slots, e.Lock)
		}
	}
}

// Remember records a granted entry under its token.
func (s *Entries) Remember(token uint64, e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[grantID]Entry{}
	}
	s.held[grantID{e.Lock, token}] = e
}

// Forget removes and returns the entry of a grant.
func (s *Entries) Forget(lock string, token uint64) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := grantID{lock, token}
	e, ok := s.held[id]
	delete(s.held, id)
	return e, ok
}

// Granted returns the entry of a grant.
func (s *Entries) Granted(lock string, token uint64) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.held[grantID{lock, token}]
	return e, ok
}

// Orphan records an entry that may exist on the server although the
// operation that wrote it failed or was abandoned; CleanOrphans deletes
// it, and only then is its slot free again.
func (s *Entries) Orphan(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orphans == nil {
		s.orphans = map[string]Entry{}
	}
	s.orphans[e.Key] = e
}

// CleanOrphans deletes orphaned entries with del, which must be safe to
// repeat, and frees their slots. It blocks for the deletions and stops at
// the first failure, logged at debug level on log (the next call tries
// again).
func (s *Entries) CleanOrphans(ctx context.Context, log *zap.Logger, del func(ctx context.Context, key string) error) {
	s.mu.Lock()
	es := make([]Entry, 0, len(s.orphans))
	for _, e := range s.orphans {
		es = append(es, e)
	}
	s.mu.Unlock()
	for _, e := range es {
		if err := del(ctx, e.Key); err != nil {
			log.Debug("deleting an abandoned lock entry failed; will retry", zap.String("key", e.Key), zap.Error(err))
			return
		}
		s.mu.Lock()
		delete(s.orphans, e.Key)
		s.mu.Unlock()
		s.Release(e)
	}
}

// Delete removes an entry the connection no longer wants (a lost wait,
// an abandoned one) with del, without ctx's cancellation, which may have
// come already: it blocks for del. On failure the entry is orphaned (see
// CleanOrphans); on success its slot is free. Deleting the key is safe to
// repeat: the slot stays the attempt's until the deletion is known.
func (s *Entries) Delete(ctx context.Context, e Entry, del func(ctx context.Context, key string) error) {
	if err := del(context.WithoutCancel(ctx), e.Key); err != nil {
		s.Orphan(e)
		return
	}
	s.Release(e)
}
