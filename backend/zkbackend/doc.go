// Package zkbackend is baton's Apache ZooKeeper driver, registered for the
// zookeeper:// scheme and its tooz alias kazoo://. Enable it with a blank
// import:
//
//	import _ "github.com/baton-go/baton/backend/zkbackend"
//
// Members are ephemeral znodes, locks and leaders follow ZooKeeper's lock
// recipe (one watch per waiter, fencing tokens from the request znode's
// creation zxid), membership and leadership changes are pushed by
// ZooKeeper watches, and the ZooKeeper session is the member's liveness:
// a disconnection puts every grant in doubt before the session can
// expire, and an expired session is reported lost. Info documents the
// URL options, the data layout and the behaviour on failures.
//
// # Leader change, frozen member, lost quorum
//
// The session is the member's liveness, kept by the server it is
// connected to and by the leader. Renew is one round trip on the
// session's connection (an Exists on the root, bounded by a third of the
// session timeout); go-zookeeper gives up on a silent server after two
// thirds of the session timeout and reconnects to another member of the
// ensemble, and the session survives when that takes less than the rest
// of the timeout. While disconnected the session is suspended: every
// grant is cancelled (put in doubt) at once, operations wait for the
// reconnection (bounded by their contexts), and on reconnection the
// session resumes, watches re-list and waiters re-check their
// predecessor, so no release is missed.
//
//   - Leader change (the leader killed; a quorum remains): the ensemble
//     elects another leader within a few ticks; clients connected to the
//     old one reconnect elsewhere, and their grants held across the gap
//     are cancelled and taken again; clients of the followers see only a
//     pause of the writes. Sessions survive (the new leader carries them
//     over and restarts their timeouts). Measured on a 3-node ensemble
//     (tickTime 500 ms, session timeout 3 s, 2 rounds under a churn of
//     three members): the lock had no holder for 1.0 s at the median and
//     1.9 s at most, no session lost, no token backwards (tokens are
//     czxids, which grow across elections). Killing a follower: 88 ms /
//     175 ms.
//   - Frozen member: its clients reconnect elsewhere after two thirds of
//     the session timeout; a frozen leader is replaced by the other two.
//     Frozen past the session timeout, a leader may on resuming end the
//     sessions the new leader could not account for (ZooKeeper's design),
//     which the members see as ErrLost. Measured with the leader frozen
//     4 s (session timeout 3 s): no holder for 6.8 s, no session lost in
//     that run, 5 grants cancelled in doubt, no token backwards.
//   - Lost quorum: the remaining members refuse clients, every session is
//     suspended and every grant cancelled, and the sessions expire unless
//     the quorum comes back within their timeout.
//
// # compat=tooz
//
// With compat=tooz the driver reads and writes tooz's KazooDriver layout
// and kazoo's Lock recipe, so baton and tooz processes share groups,
// members, leaders and locks on one ensemble:
//
//	/<ns>                               root: namespace, tooz by default in this mode
//	/<ns>/<group>                       persistent, no data
//	/<ns>/<group>/<member>              ephemeral, data = msgpack capabilities (tooz's b"" when none)
//	/<ns>/<group>/leader/<c>            kazoo Lock of the group's leader
//	/<ns>/locks/<name>/<c>              kazoo Lock of a lock (a name of plain segments nests, as in tooz)
//	<c> = <uuid4 hex>__lock__<seq>      ephemeral-sequential, data = member ID
//
// A lock or leadership is held by the contender first in kazoo's order
// (the 10-digit sequence compared as text); a waiter watches its
// predecessor, tooz's waiters too, so releases hand over both ways at
// once, and a dead process's contenders go with its session (tooz's
// timeout, 10 s by default). tooz's election is a non-blocking acquire
// repeated by its watcher loop; get_leader is the first contender's data.
// Baton's handover window and confirmation of a queued request are off
// (kazoo never confirms, so its waiting contender must not be skipped),
// and baton's candidates queue as kazoo's do instead of racing;
// tokens are still the contender's czxid. IDs tooz can use (printable
// ASCII without '/' or '%', other than "locks" and "leader") are their
// own znode names; any other ID is escaped with %XX (and always contains
// '%'), so tooz never meets a name it cannot decode.
//
// Given up: shared locks (kazoo's exclusive Lock does not see read
// contenders, so the connection has no SharedLocker); strong fencing
// (tooz holders take no token: fencing is partial); and, from tooz's
// layout, the independence of a group and its leadership: the leader lock
// lives in the group's znode, so a campaign creates the group (as tooz's
// get_leader does) and a group cannot be deleted while someone campaigns
// for it (an idle leader directory is removed first). tooz's defects
// interoperated with: its get_groups lists the locks directory and its
// get_members the leader directory (baton lists neither); kazoo creates
// directories persistent (baton's container znodes are not used in this
// mode); a tooz ID that is exactly baton's escape of another ID (such as
// a%2Fb) reads as that ID.
package zkbackend
