package driver

import "time"

// Liveness is how a member is kept alive.
type Liveness int

const (
	// LivenessSession: the store holds a session (ZooKeeper session,
	// database connection, held flock, in-process registration) whose
	// loss the driver reports.
	LivenessSession Liveness = iota + 1
	// LivenessTTL: liveness is a lease or key that expires unless renewed.
	LivenessTTL
)

// String returns "session" or "ttl".
func (l Liveness) String() string {
	switch l {
	case LivenessSession:
		return "session"
	case LivenessTTL:
		return "ttl"
	default:
		return "unknown"
	}
}

// WatchKind is how membership changes reach a watcher.
type WatchKind int

const (
	// WatchPoll: the backend polls listings and diffs them.
	WatchPoll WatchKind = iota + 1
	// WatchPush: the store pushes changes.
	WatchPush
)

// String returns "poll" or "push".
func (w WatchKind) String() string {
	switch w {
	case WatchPoll:
		return "poll"
	case WatchPush:
		return "push"
	default:
		return "unknown"
	}
}

// FencingStrength says how far a driver's fencing tokens can be trusted.
type FencingStrength int

const (
	// FencingStrong: tokens of a name never repeat and never go back, even
	// across server restarts and failovers (consensus-backed revision or
	// sequence, durable counter).
	FencingStrong FencingStrength = iota + 1
	// FencingFailover: tokens increase while the server keeps its data,
	// but a failover to a replica that missed writes, or a restart without
	// persistence, can repeat a token.
	FencingFailover
	// FencingEvictable: tokens increase while the store keeps the counter,
	// which it may evict or lose on restart; then they start over.
	FencingEvictable
	// FencingPartial: tokens order the grants of baton's clients only.
	// Another client sharing the data layout (a tooz process, with the
	// compat=tooz option) takes the same locks without a token, so a
	// resource that checks tokens cannot refuse that holder's writes.
	FencingPartial
)

// String returns "strong", "failover", "evictable" or "partial".
func (f FencingStrength) String() string {
	switch f {
	case FencingStrong:
		return "strong"
	case FencingFailover:
		return "failover"
	case FencingEvictable:
		return "evictable"
	case FencingPartial:
		return "partial"
	default:
		return "unknown"
	}
}

// Characteristics are the facts a Conn reports about itself: tooz's ten
// characteristics plus baton's own.
type Characteristics struct {
	// tooz's characteristics.
	DistributedAcrossThreads   bool
	DistributedAcrossProcesses bool
	DistributedAcrossHosts     bool
	NonTimeoutBased            bool
	Linearizable               bool
	Sequential                 bool
	Causal                     bool
	Serializable               bool
	SameViewUnderPartitions    bool
	SameViewAcrossClients      bool

	// Liveness is session or TTL.
	Liveness Liveness
	// Watch is push or poll; PollInterval is the polling period when the
	// watch kind is poll (set by the backend from its options).
	Watch        WatchKind
	PollInterval time.Duration
	// Fencing is the strength of fencing tokens.
	Fencing FencingStrength
	// Evictable is true when the store may drop coordination data under
	// memory pressure (memcached's LRU).
	Evictable bool
	// SharedLocks is true when shared (read) locks are available.
	SharedLocks bool
	// LeadersInGroups is true when a leadership lives inside the group of
	// the same name, as in tooz's ZooKeeper layout (compat=tooz): a
	// campaign creates that group if it does not exist, and the group
	// cannot be deleted (ErrGroupNotEmpty) while someone campaigns for
	// it. Otherwise groups, locks and leaderships of one name are
	// independent.
	LeadersInGroups bool
}

// Characteristic names one fact that can be required of a backend.
type Characteristic int

// The characteristics: tooz's ten, then baton's.
const (
	AcrossThreads Characteristic = iota + 1
	AcrossProcesses
	AcrossHosts
	NonTimeoutBased
	Linearizable
	Sequential
	Causal
	Serializable
	SameViewUnderPartitions
	SameViewAcrossClients
	// SessionLiveness: members are kept alive by a session, not a TTL.
	SessionLiveness
	// PushWatch: membership changes are pushed, not polled.
	PushWatch
	// StrongFencing: fencing tokens never repeat, even across failovers.
	StrongFencing
	// NotEvictable: the store never drops coordination data on its own.
	NotEvictable
	// SharedLockSupport: shared (read) locks are available.
	SharedLockSupport
)

var characteristicNames = map[Characteristic]string{
	AcrossThreads:           "distributed-across-threads",
	AcrossProcesses:         "distributed-across-processes",
	AcrossHosts:             "distributed-across-hosts",
	NonTimeoutBased:         "non-timeout-based",
	Linearizable:            "linearizable",
	Sequential:              "sequential",
	Causal:                  "causal",
	Serializable:            "serializable",
	SameViewUnderPartitions: "same-view-under-partitions",
	SameViewAcrossClients:   "same-view-across-clients",
	SessionLiveness:         "session-liveness",
	PushWatch:               "push-watch",
	StrongFencing:           "strong-fencing",
	NotEvictable:            "not-evictable",
	SharedLockSupport:       "shared-locks",
}

// String returns the characteristic's name, e.g. "distributed-across-hosts".
func (c Characteristic) String() string {
	if s, ok := characteristicNames[c]; ok {
		return s
	}
	return "unknown"
}

// AllCharacteristics lists every Characteristic in declaration order.
func AllCharacteristics() []Characteristic {
	out := make([]Characteristic, 0, len(characteristicNames))
	for c := AcrossThreads; c <= SharedLockSupport; c++ {
		out = append(out, c)
	}
	return out
}

// Has reports whether c holds.
func (cs Characteristics) Has(c Characteristic) bool {
	switch c {
	case AcrossThreads:
		return cs.DistributedAcrossThreads
	case AcrossProcesses:
		return cs.DistributedAcrossProcesses
	case AcrossHosts:
		return cs.DistributedAcrossHosts
	case NonTimeoutBased:
		return cs.NonTimeoutBased
	case Linearizable:
		return cs.Linearizable
	case Sequential:
		return cs.Sequential
	case Causal:
		return cs.Causal
	case Serializable:
		return cs.Serializable
	case SameViewUnderPartitions:
		return cs.SameViewUnderPartitions
	case SameViewAcrossClients:
		return cs.SameViewAcrossClients
	case SessionLiveness:
		return cs.Liveness == LivenessSession
	case PushWatch:
		return cs.Watch == WatchPush
	case StrongFencing:
		return cs.Fencing == FencingStrong
	case NotEvictable:
		return !cs.Evictable
	case SharedLockSupport:
		return cs.SharedLocks
	}
	return false
}
