package driver

import (
	"context"
	"time"
)

// Conn is one connection to a coordination service acting as one member.
// The backend serializes nothing: every method may be called concurrently
// from many goroutines. Every blocking method honours ctx.
type Conn interface {
	// Session describes how this member is kept alive. It is called once,
	// right after the driver's Open returns.
	Session() SessionInfo

	// Renew proves to the backend that the server heard this member: one
	// round trip that extends its liveness (TTL keys, a lease keep-alive,
	// a session touch) or, for session drivers, a ping on the session's
	// own connection. The backend notes the time (from Config.Clock)
	// before the call and, on success, assumes liveness until that time
	// plus SessionInfo.TTL; grants are put in doubt a safety margin before
	// that deadline, for TTL and session drivers alike. An error coded
	// CodeLost means the session is gone for good; any other error is
	// retried on the timing model's schedule.
	Renew(ctx context.Context) error

	// Close ends the session: every lock this connection holds is released
	// and every group it joined is left, on the server where possible.
	// The backend has already released grants and left groups it knows
	// of; Close must still clean up whatever remains, and must return
	// only when every goroutine the driver started has exited.
	Close(ctx context.Context) error

	// TryLock tries once to take the exclusive lock req.Key. It returns
	// acquired=false with a nil error when someone else holds it, including
	// another Conn of the same member or another grant of this Conn (locks
	// are not reentrant). On success the lease carries a fencing token
	// greater than every token previously granted for this key on this
	// backend (within the driver's documented FencingStrength).
	TryLock(ctx context.Context, req LockRequest) (lease Lease, acquired bool, err error)

	// Unlock releases the grant of key identified by token. It returns an
	// error coded CodeNotHeld when that grant no longer holds the lock
	// (expired, broken, released, or never granted).
	Unlock(ctx context.Context, key string, token uint64) error

	// RefreshLock extends a lease whose Lease.TTL was positive by ttl from
	// the time of the call. It returns CodeNotHeld when the grant was lost.
	// It is never called for leases bound to the session (TTL 0).
	RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error

	// Holder reports who holds key now. It returns an error coded
	// CodeNotFound when nobody holds it. For a shared hold it reports one
	// of the holders.
	Holder(ctx context.Context, key string) (Holder, error)

	// CreateGroup creates a group; CodeGroupExists if it exists.
	CreateGroup(ctx context.Context, group string) error
	// DeleteGroup deletes an empty group: CodeGroupNotFound if absent,
	// CodeGroupNotEmpty while it has live members. Members whose liveness
	// expired do not count.
	DeleteGroup(ctx context.Context, group string) error
	// Groups lists every group, in no particular order. Internal
	// bookkeeping (locks, leader records) never appears.
	Groups(ctx context.Context) ([]string, error)
	// Join makes this Conn's member a member of group with capabilities
	// caps (nil and empty are equivalent): CodeGroupNotFound,
	// CodeMemberExists when the member ID is already joined (from this or
	// another Conn). Each join gets a fresh Member.Incarnation.
	Join(ctx context.Context, group string, caps []byte) error
	// Leave removes this member from group: CodeGroupNotFound,
	// CodeNotMember.
	Leave(ctx context.Context, group string) error
	// Members lists the live members of group with their capabilities and
	// info: CodeGroupNotFound. Members whose liveness expired are omitted
	// (and cleaned up when the store needs it).
	Members(ctx context.Context, group string) ([]Member, error)
	// UpdateCapabilities replaces this member's capabilities in group:
	// CodeGroupNotFound, CodeNotMember.
	UpdateCapabilities(ctx context.Context, group string, caps []byte) error
}

// LockRequest asks for a lock.
type LockRequest struct {
	// Key names the lock. The backend prefixes user lock names so they
	// never collide with internal keys.
	Key string
	// Member is recorded as the holder, for Holder and leader lookups.
	Member string
	// TTL is the lease a TTL-based store puts on the lock. Drivers whose
	// locks are bound to the session ignore it and return Lease.TTL == 0.
	TTL time.Duration
	// Unordered asks a LockWaiter not to queue: the waiter races for the
	// lock each time it is freed and keeps nothing on the server while it
	// waits, so a waiter that dies leaves nothing a live one must get
	// past, and a release hands over within a round trip of its
	// notification. Campaign sets it: leadership needs no first-come
	// order, and a resignation must not wait on a dead candidate. Drivers
	// whose waits race anyway ignore it.
	Unordered bool
	// MaxPoll caps the wait between attempts of a LockWaiter that waits
	// by polling (lock.WithMaxPollInterval); zero lets the driver choose.
	MaxPoll time.Duration
}

// Lease is a granted lock.
type Lease struct {
	// Token is the fencing token of this grant; it also identifies the
	// grant in Unlock and RefreshLock.
	Token uint64
	// TTL is zero when the lock lives exactly as long as the session
	// (ephemeral node, lease-attached key, flock, database session), and
	// positive when it expires TTL after the acquiring request was sent
	// unless refreshed with RefreshLock.
	TTL time.Duration
	// Sent is when the request that acquired the lock was sent, for
	// drivers that wait internally (LockWaiter). Zero means "when the
	// backend's call started", which is always safe for TryLock.
	Sent time.Time
}

// Holder is the current holder of a lock.
type Holder struct {
	Member string
	Token  uint64
}

// Member is one live member of a group.
type Member struct {
	ID           string
	Capabilities []byte
	// Incarnation is unique per join: a member that leaves and joins
	// again gets a different one, so a watcher that polls can tell a
	// rejoin from "still there".
	Incarnation string
	// JoinedAt is when this incarnation joined; UpdatedAt when its
	// capabilities were last written (JoinedAt if never updated). Zero
	// when the store cannot tell.
	JoinedAt  time.Time
	UpdatedAt time.Time
}

// SessionInfo tells the backend how a Conn's member stays alive. The
// backend's timing model (backend.Timing) validates it together with the
// safety margin and the RTT allowance, and refuses at Open a combination
// that leaves no room to renew before grants would be cancelled.
type SessionInfo struct {
	// Liveness is LivenessSession when the store keeps a session that the
	// driver monitors and reports through the SessionObserver, and
	// LivenessTTL when liveness expires TTL after the last successful
	// Renew was sent.
	Liveness Liveness
	// TTL is how long the store keeps this member alive without hearing
	// from it: the session timeout or the lease/key TTL. Zero means the
	// session cannot expire while the process lives (a held flock, an
	// in-process store): nothing is renewed and no margin applies.
	TTL time.Duration
	// RenewInterval is how often the backend calls Renew. Zero lets the
	// timing model choose (a third of TTL); drivers set it only from an
	// explicit option of their URL (tooz's heartbeat settings).
	RenewInterval time.Duration
}

// SessionObserver receives session state changes. Drivers whose Liveness
// is LivenessSession must report Suspended, Resumed and Lost; any driver
// may report Lost as soon as it learns the session is gone (a revoked
// lease seen by a watch), ahead of the next Renew. Methods must not
// block.
type SessionObserver interface {
	// Suspended: the connection was lost; the session may or may not
	// survive. Every grant bound to the session is in doubt.
	Suspended(cause error)
	// Resumed: the connection is back and the session survived.
	Resumed()
	// Lost: the session is gone for good (expired, closed by the server).
	Lost(cause error)
}
