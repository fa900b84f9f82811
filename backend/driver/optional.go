package driver

import (
	"context"
	"time"
)

// LockWaiter is implemented by drivers that can wait for a lock natively
// (a predecessor watch, a revision watch, a blocking query, a blocking
// database call) instead of being polled with TryLock.
type LockWaiter interface {
	// WaitLock blocks until req.Key is granted or ctx is done, in which
	// case it returns ctx's error (and holds nothing).
	WaitLock(ctx context.Context, req LockRequest) (Lease, error)
}

// SharedLocker is implemented by drivers offering shared (read) locks.
// A shared grant excludes exclusive grants of the same key and coexists
// with other shared grants. It is released with Conn.Unlock.
type SharedLocker interface {
	TryLockShared(ctx context.Context, req LockRequest) (lease Lease, acquired bool, err error)
}

// LockBreaker is implemented by drivers that can force-release a lock
// whoever holds it (an administrative operation; tooz's break_).
type LockBreaker interface {
	// BreakLock reports whether a grant was broken.
	BreakLock(ctx context.Context, key string) (bool, error)
}

// GroupWatcher is implemented by drivers that can push membership changes.
type GroupWatcher interface {
	// WatchGroup blocks, calling emit for each change of group, in order,
	// until ctx is done (it then returns ctx.Err()) or the watch cannot go
	// on (it returns the error; the backend restarts it and reports a
	// resync). The first call of emit carries a Snapshot of the members;
	// after it, a driver emits deltas. A further snapshot means the driver
	// had a gap (it reconnected, or its event history was compacted): the
	// backend diffs it against its view and reports a resync. emit does not block for long and must not be called
	// after WatchGroup returned. CodeGroupNotFound if the group does not
	// exist when the watch starts; once it ran, deletion is an event.
	WatchGroup(ctx context.Context, group string, emit func(GroupEvent)) error
}

// GroupEventType says what a GroupEvent reports.
type GroupEventType int

// The kinds of GroupEvent.
const (
	// GroupSnapshot carries the complete member list in Members.
	GroupSnapshot GroupEventType = iota + 1
	// MemberJoined carries the new member (a new incarnation) in Member.
	MemberJoined
	// MemberLeft carries the departed member's ID and incarnation.
	MemberLeft
	// MemberUpdated carries the member with its new capabilities.
	MemberUpdated
	// GroupDeleted says the group is gone; the watch then ends.
	GroupDeleted
)

// GroupEvent is one change of a watched group.
type GroupEvent struct {
	Type    GroupEventType
	Member  Member
	Members []Member
}

// HolderWatcher is implemented by drivers that can push changes of a
// lock's holder, which the backend uses to observe leaders natively.
type HolderWatcher interface {
	// WatchHolder blocks, calling emit with the current holder (held is
	// false when nobody holds key) first and again after every change,
	// until ctx is done (returns ctx.Err()) or the watch breaks (returns
	// the error; the backend restarts it).
	WatchHolder(ctx context.Context, key string, emit func(h Holder, held bool)) error
}

// BatchRefresher is implemented by drivers that can refresh many own
// leases (grants whose Lease.TTL was positive) in one round trip: a
// pipeline, one script over many keys. The backend's refresh scheduler
// uses it when several grants are due together, and gathers the grants
// due within half a refresh interval into one batch, so that a process
// holding many locks sends about one request per renewal period instead
// of one per lock. Drivers whose locks are bound to the session (etcd3's
// locks ride the session lease, ZooKeeper's are ephemeral nodes of the
// session) need none: one renewal of the session keeps all their locks.
type BatchRefresher interface {
	// RefreshLocks extends every lease of locks as RefreshLock would
	// each, each by its own TTL from the time of the call, in as few
	// round trips as the store allows (one where it can). It sets errs[i]
	// (len(errs) == len(locks)) to the outcome of locks[i]: nil when
	// extended, an error coded CodeNotHeld (or CodeLost) when that grant
	// is gone. It returns an error, and leaves errs alone, only when the
	// request as a whole failed and no outcome is known; the backend then
	// retries every lease of the batch. Neither slice is kept after the
	// call returns.
	RefreshLocks(ctx context.Context, locks []LockRef, errs []error) error
}

// LockRef names one own lease for BatchRefresher: the key and token of
// the grant, and the TTL to extend it by.
type LockRef struct {
	Key   string
	Token uint64
	TTL   time.Duration
}
