// Package drivertest is the conformance suite every baton driver runs
// against a real server (never a mock). It drives the driver only through
// the portable API (*backend.Backend), so it checks what users get: the
// driver and the portable layer together.
//
// A driver's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, drivertest.Harness{
//			NewURL:        func(t testing.TB) string { return freshNamespaceURL(t) },
//			ExpireSession: func(t testing.TB, b *backend.Backend) { expireOnServer(t, b) },
//			Options:       []backend.Option{backend.WithPollInterval(20 * time.Millisecond)},
//		})
//	}
//
// Every behaviour is a named subtest that runs alone with -run (e.g.
// -run 'TestConformance/Locks/ReleaseByNonHolder'), works in a namespace of
// its own, and closes every Backend it opens. Nothing is skipped: what a
// driver lacks (shared locks, breaking locks, a characteristic) is
// asserted to fail with backend.ErrUnimplemented. The suite reads the
// driver's facts from Backend.Characteristics and Backend.Session. Waits
// are bounded (20 s, plus twice the session TTL for what depends on a
// session ending) and poll a condition; nothing sleeps and hopes. The
// Close category runs first, its NoGoroutineLeak subtest alone; every
// other subtest runs in parallel.
//
// The subtests and what each asserts (106 in all):
//
// # Close (7)
//
//   - NoGoroutineLeak: after a workout of every feature (held, waited-for
//     and handed-over locks and leadership, group and leader watches, a
//     lost session, failed opens) and Close of every Backend, no goroutine
//     is left (goleak, after one warm-up Open/Close, with
//     Harness.LeakOptions).
//   - ReleasesLocks: after Close, another member's single TryLock gets each
//     lock and the leadership the closed Backend held (no TTL wait); the
//     closed Backend's grants are cancelled (cause matches ErrCanceled).
//   - LeavesGroups: Close leaves every group at once; the groups remain and
//     an emptied one can be deleted.
//   - EndsWatches: Close ends the Backend's group and leader watches; Err
//     matches ErrCanceled.
//   - UnblocksWaiters: Close makes a blocked Lock and Campaign return an
//     error matching ErrCanceled; the holder keeps the lock and leadership.
//   - ThenCallsFail: after Close, Done is closed, Err is ErrClosed and
//     TryLock, Join, Groups and WatchGroup fail with ErrCanceled.
//   - Twice: a second Close returns nil.
//
// # Groups (18)
//
//   - Create: a fresh namespace lists no group; a created group is listed.
//   - CreateTwice: creating an existing group fails with ErrGroupExists
//     (and ErrAlreadyExists), from any member.
//   - List: five groups are all listed, by every member.
//   - Delete: a deleted group is not listed; Join then fails with
//     ErrGroupNotFound; it can be created again.
//   - DeleteNonexistent: ErrGroupNotFound (and ErrNotFound).
//   - DeleteNonEmpty: ErrGroupNotEmpty while a member is in it (by anyone);
//     deletion works once it left.
//   - Join: the joiner is listed by every member.
//   - JoinNonexistent: ErrGroupNotFound; no group appears.
//   - JoinCreate: creates a missing group and joins it; joins an existing one.
//   - JoinTwice: a second Join from one Backend fails with ErrMemberExists
//     and keeps the first membership's capabilities.
//   - MemberAlreadyExists: a second Backend with the same member ID cannot
//     join (ErrMemberExists).
//   - Leave: the member is no longer listed; the others are.
//   - LeaveNonexistent: ErrGroupNotFound.
//   - LeaveNotJoined: ErrNotMember (and ErrNotFound), also when leaving twice.
//   - Rejoin: a member that left can join again, with a new incarnation and
//     the new capabilities.
//   - MembersOfTwoBackends: exactly both members, sorted by ID, as both see it.
//   - MembersNonexistent: ErrGroupNotFound.
//   - CloseLeaves: closing a Backend removes it from its groups at once.
//
// # Capabilities (13)
//
//   - Get: the capabilities joined with are read back by every member.
//   - Binary: every byte value, NULs and invalid UTF-8 round-trip.
//   - NonexistentGroup: Member of a missing group: ErrGroupNotFound.
//   - NonJoinedMember: Member that has not joined: ErrNotMember.
//   - Multiple: each member is listed with its own capabilities.
//   - EmptyGroup: an empty group lists no member, without error.
//   - NoCapabilities: nil and empty capabilities read back empty.
//   - Update: replaces the caller's capabilities only, keeps the
//     incarnation; nil clears them.
//   - UpdateNonexistentGroup: ErrGroupNotFound; no group appears.
//   - UpdateNotJoined: ErrNotMember; no membership appears.
//   - Large: 64 KiB of random bytes round-trip on join and on update.
//   - MaxSize: exactly backend.MaxCapabilitiesLen bytes round-trip.
//   - TooLarge: one byte more fails with ErrInvalidArgument on Join,
//     JoinCreate and UpdateCapabilities, changing nothing.
//
// # MemberInfo (2)
//
//   - Times: JoinedAt and UpdatedAt are set around the time of the join
//     (within 5 s of clock skew), UpdatedAt is not before JoinedAt, the
//     incarnation is set.
//   - UpdateAdvancesUpdatedAt: an update 50 ms later moves UpdatedAt
//     forward and leaves JoinedAt alone.
//
// # Watch (13)
//
//   - Initial: Initial lists the members present at the start, as Members
//     reports them (IDs, incarnations, capabilities).
//   - Join: one EventJoined with the capabilities and incarnation Members
//     reports, then nothing else (a fence member's join is the next event).
//   - Leave: one EventLeft with the member's incarnation, then nothing else.
//   - CloseSeenAsLeave: closing a member's Backend is one EventLeft.
//   - CapabilitiesChanged: one EventCapabilitiesChanged with the new
//     capabilities and the same incarnation.
//   - NonexistentGroup: WatchGroup of a missing group fails at once with
//     ErrGroupNotFound.
//   - GroupDeleted: deleting the watched group gives EventGroupDeleted,
//     then the stream closes with Err matching ErrGroupNotFound.
//   - Close: Close ends the stream with Err matching ErrCanceled; later
//     changes are not reported.
//   - ContextCanceled: cancelling the watch's context ends it likewise.
//   - BootedOut: another Backend with the same member ID leaves the group
//     on our behalf; both the member's own watch and another watcher see
//     EventLeft, the member is no longer listed, its Leave fails with
//     ErrNotMember, and it can join again.
//   - LeaveRejoinBetweenPolls: a leave and rejoin between two polls (the
//     watcher polls every second; a push watch sees them anyway) is
//     reported as EventLeft with the old incarnation, then EventJoined
//     with a new one and the new capabilities.
//   - OrderedOnce: a scripted sequence of joins, updates, leaves, rejoins
//     and a Close by three members yields, on two watchers, exactly the
//     expected events in order, each once.
//   - Burst: four members run their scripts concurrently; every event a
//     watcher reports is a valid transition (join only when absent, leave
//     and change only with the current incarnation, incarnations never
//     repeat, each member's capability versions strictly increase), and
//     the events up to a later fence bring the watcher's view to the final
//     membership, with nothing more queued. Coalescing by polling is
//     allowed; reordering and repetition are not.
//
// # Leader (9)
//
//   - NoneBeforeCampaign: no leader before anyone campaigns, also after
//     members joined and in a group that does not exist.
//   - TryCampaign: wins an uncontested group; Leader reports the member
//     and the term's token to everyone; a second TryCampaign by the leader
//     loses (not reentrant).
//   - FirstWins: with three candidates the first wins, the others lose.
//   - StandDown: Release resigns; another candidate then wins at once, and
//     leadership goes back and forth.
//   - CloseHandsOver: closing the leader's Backend lets a blocked Campaign
//     win, with a larger token.
//   - CampaignWaits: Campaign blocks while another member leads and wins
//     once it resigns.
//   - CampaignTimeout: a Campaign whose context times out fails matching
//     context.DeadlineExceeded and ErrDeadlineExceeded and leads nothing.
//   - NotListedAsMember: the leader is not listed as a member of the group
//     and leaderships are not listed as groups (with LeadersInGroups, a
//     campaign for a name without a group creates that group, empty).
//   - Observe: ObserveLeader reports no leader, then each leader with its
//     token, then no leader again, never the same state twice in a row; a
//     new observer starts with the current leader; Close ends it with Err
//     matching ErrCanceled.
//
// # Locks (16)
//
//   - AcquireRelease: TryLock and Lock of a free lock succeed with a
//     non-zero token; Release returns nil; the lock is free afterwards.
//   - Holder: LockHolder reports nobody for a free lock and the holder with
//     its grant's token for a held one, to every member.
//   - GrantContext: a held grant's context is live and not Lost; Release
//     cancels it with cause ErrReleased, still not Lost.
//   - ReleaseTwice: the second Release fails with ErrNotHeld.
//   - ReleaseByNonHolder: a grant released before cannot release the lock
//     another member took since (ErrNotHeld, an ErrNotFound); that member
//     keeps it.
//   - NonReentrant: a Backend holding a lock cannot TryLock it again.
//   - SameBackendExcludes: a blocking Lock by another goroutine of the same
//     Backend waits for the release, never returns before it, and gets a
//     larger token.
//   - AcrossBackendsExclude: another Backend's TryLock fails while held and
//     succeeds after the release, both ways.
//   - BlockingWaits: another Backend's Lock waits for the release, never
//     returns before it, then holds the lock.
//   - WaitUsesBackendClock: a grant obtained by waiting is stamped with the
//     Backend's clock (driver.Config.Clock), not the process's: with a
//     clock an hour ahead, its AcquiredAt lies within the wait as that
//     clock read it.
//   - Timeout: a Lock whose context times out fails matching
//     context.DeadlineExceeded and ErrDeadlineExceeded, and holds nothing,
//     neither then nor after the holder releases.
//   - Canceled: a Lock whose context is cancelled fails matching
//     context.Canceled and ErrCanceled and holds nothing.
//   - HoldAWhileTakingB: taking and releasing lock B from another goroutine
//     of the same Backend does not release lock A (MySQL's GET_LOCK trap).
//   - MutualExclusion: 8 goroutines over 3 Backends take one lock 25 times
//     each; an atomic counter is exactly 1 inside every critical section,
//     each grant's context is live inside it, and the 200 tokens strictly
//     increase in grant order.
//   - Break: BreakLock of a free lock reports false, of a held one true;
//     the breaker then gets the lock with a larger token. Without
//     LockBreaker: ErrUnimplemented and the holder keeps the lock.
//   - ReleaseAfterBreak: the broken holder's Release fails with ErrNotHeld
//     and does not release the new holder's lock; a third member still
//     cannot take it. Without LockBreaker: ErrUnimplemented.
//
// # SharedLocks (5)
//
// Without Characteristics().SharedLocks each of these asserts that a
// shared TryLock and a shared Lock fail with ErrUnimplemented.
//
//   - SharedShared: shared grants coexist across Backends and within one
//     (each released separately; a second release fails with ErrNotHeld);
//     LockHolder reports one of the holders; an exclusive TryLock fails
//     until the last shared grant is released.
//   - SharedExcludesExclusive: a shared grant blocks exclusive TryLocks
//     from every Backend, its own included.
//   - ExclusiveExcludesShared: an exclusive grant blocks shared TryLocks
//     from every Backend, its own included.
//   - BlockingShared: a shared Lock waits for the exclusive holder's
//     release, never returns before it.
//   - MatchesCharacteristics: a shared TryLock works exactly when the
//     characteristics say so; exclusive locks work either way.
//
// # Fencing (3)
//
//   - SequentialGrants: 12 grants of one name by three Backends in turn,
//     through TryLock and Lock, have strictly increasing tokens, each the
//     one LockHolder reports.
//   - LeadershipTerms: 9 terms of one group by three Backends have
//     strictly increasing tokens, each the one Leader reports.
//   - AfterClose: tokens of a lock and of a leadership keep increasing when
//     each holder's Backend closes and a new one takes over.
//
// # Session (5)
//
// These expire a member's session with Harness.ExpireSession.
//
//   - ExpireCancelsGrants: the member's lock and leadership grants are
//     cancelled with a cause matching ErrLost, and report Lost.
//   - ExpireEndsBackend: Done closes, Err matches ErrLost, TryLock and Join
//     fail with it, and the Backend's group and leader watches end with it.
//   - ExpireFreesLocks: another member's Lock and Campaign succeed (within
//     about a TTL) with larger tokens.
//   - ExpireLeavesGroups: the member is eventually no longer listed, a
//     watcher sees exactly one EventLeft, and a group whose only member
//     expired can be deleted.
//   - ReleaseAfterExpire: Release of a grant of the expired session fails
//     with ErrNotHeld, as Grant.Release documents.
//
// # Names (8)
//
// The awkward names are non-empty UTF-8 without NUL or control
// characters: spaces, leading and trailing blanks and slashes, ".", "..",
// "../../etc", backslashes, percent escapes, case variants ("a_b", "A_B"),
// shell and glob characters, unicode and emoji, names like the internal
// prefixes ("e", "l", "e/x", "l/x", "locks", "leader", "_baton"), and
// 1024-byte names (ASCII, differing only in the last byte, and
// multi-byte).
//
//   - Groups: each awkward name is a group; Groups lists exactly all of
//     them (none collide); each is joined, its capabilities read back, and
//     deleted on its own.
//   - Members: each awkward name is a member ID of its own Backend; Members
//     lists exactly all of them with their own capabilities; each is
//     reported as the holder of its lock; each leaves on its own.
//   - Locks: one Backend holds every awkward lock name at once; another is
//     refused each; LockHolder reports each grant; each is free after its
//     release; no lock shows up as a group.
//   - Leaders: one Backend leads every awkward group name at once; Leader
//     reports each term; no leadership shows up as a group.
//   - TooLong: a 1025-byte name fails with ErrInvalidArgument in every call
//     taking a group, member or lock name, and as a member ID at Open.
//   - Invalid: empty names, NUL and invalid UTF-8 likewise.
//   - InternalLookalikes: groups named "locks", "leader", "e", "l", ".",
//     "..", "_baton" ... with a member named "leader", leaderships and locks
//     of the same names and locks named like internal keys: Groups lists
//     exactly the real groups, Members exactly the real members, Leader the
//     real leader.
//   - IndependentKinds: a group, a lock, a leadership and a member of one
//     name coexist; releasing or deleting one affects no other. With
//     Characteristics().LeadersInGroups (tooz's ZooKeeper layout) the
//     leadership keeps its group: deleting it fails with ErrGroupNotEmpty
//     until the leader resigns; InternalLookalikes and Leaders then also
//     expect the groups the campaigns created.
//
// # Open (5)
//
//   - RequireMissing: Require of a characteristic the driver lacks fails
//     with ErrUnimplemented naming it, and naming each when several are
//     missing; a driver with every characteristic opens with all required.
//   - RequireSatisfied: Require of the driver's own characteristics opens.
//   - UnknownOption: "no_such_option=1" added to the URL fails with
//     ErrInvalidArgument naming the key, without showing the password.
//   - MemberID: the given member ID is reported, listed and recorded as
//     holder.
//   - ConnectFailure: for a driver distributed across hosts, Open of a
//     server nothing listens on (127.0.0.1:1) fails with ErrUnavailable or
//     ErrDeadlineExceeded within 3 s; for every driver, Open with a
//     cancelled context fails matching context.Canceled; no error shows
//     the password.
//
// # Characteristics (2)
//
//   - Consistent: every Backend of a URL reports the same characteristics,
//     equal to the registration's (but for the poll interval); liveness
//     agrees with the session (a TTL session renews before its TTL); watch
//     kind and fencing strength are known; a poll watch reports the
//     Backend's poll interval; DistributedAcrossThreads holds;
//     Has(NotEvictable) agrees with Evictable.
//   - WatchKind: a push watch delivers a join while its Backend's poll
//     interval is an hour; a poll watch reports the configured interval
//     and delivers.
package drivertest
