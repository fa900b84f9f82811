package zkbackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func init() { backend.Register(Info()) }

// Info returns the driver's registration record: schemes, option table,
// characteristics and documentation. It is what init registers.
func Info() driver.Info {
	return driver.Info{
		Name:    "ZooKeeper",
		Schemes: []string{"zookeeper", "kazoo"},
		Summary: summary,
		URLForm: "zookeeper://[user:password@][host[:port][,host2[:port2]...]][?options]",
		Examples: []string{
			"zookeeper://",
			"zookeeper://localhost:2181",
			"kazoo://localhost:2181",
			"zookeeper://zk1:2181,zk2:2181,zk3:2181",
			"zookeeper://zk1,zk2:2182?timeout=10",
			"zookeeper://localhost:2181?timeout=5&namespace=tooz&randomize_hosts=false",
			"zookeeper://localhost:2181?timeout=2.5",
			"zookeeper://localhost:2181?timeout=1500ms&handler=threading",
			"zookeeper://?hosts=zk1:2181&hosts=zk2:2181",
			"zookeeper://zk1:2181?hosts=zk2:2181,zk3:2181/apps",
			"zookeeper://user:secret@localhost:2181/",
			"zookeeper://[::1]:2181",
			"zookeeper://localhost:2181?connection_retry_attempts=10&connection_retry_delay=0.5&connection_retry_max_delay=5&connection_retry_deadline=10&command_retry_attempts=-1",
			"zookeeper://localhost:2281?use_ssl=true&ca=/etc/zookeeper/ca.pem&certfile=/etc/zookeeper/client.pem&keyfile=/etc/zookeeper/client.key&keyfile_password=secret",
			"zookeeper://localhost:2281?use_ssl=true&verify_certs=false",
		},
		Characteristics: driver.Characteristics{
			DistributedAcrossThreads:   true,
			DistributedAcrossProcesses: true,
			DistributedAcrossHosts:     true,
			NonTimeoutBased:            true,
			Sequential:                 true,
			Causal:                     true,
			Liveness:                   driver.LivenessSession,
			Watch:                      driver.WatchPush,
			Fencing:                    driver.FencingStrong,
			SharedLocks:                true,
		},
		CharacteristicsFor: characteristicsFor,
		Options:            optionSpecs(),
		Schedule:           schedule,
		Check:              check,
		Open:               open,
	}
}

const summary = `
Apache ZooKeeper 3.5 or later, one server or an ensemble, through
github.com/go-zookeeper/zk. The URL's hosts (and any hosts= values) are the
ensemble; a /chroot may follow the last host of a hosts= value, as in kazoo.
With user:password the connection authenticates with the digest scheme and
every znode it creates gets a digest ACL for that user only; without, znodes
are world-accessible. TLS (use_ssl and the certificate options tooz passes to
kazoo) goes to the server's secureClientPort. The URL takes no path:
everything lives under /<namespace>, by default /baton rather than tooz's
/tooz, because baton's layout differs from tooz's and tooz would list
baton's directories as its groups.

Layout: groups are persistent znodes <root>/groups/<group>; members are
ephemeral children <root>/groups/<group>/<member> holding the capabilities
(the incarnation is the znode's czxid, joined/updated times its ctime and
mtime); locks and leaders are queues of ephemeral-sequential znodes under
<root>/locks/<key> (a container znode, removed by the server when idle) whose
data is the holder's member ID. Names are percent-encoded (letters, digits,
'-', '_', '~' kept), so any name is a valid znode name and none can collide
with another or with the layout. A member is its member ID: another
connection with the same ID cannot join again, but can leave or update on
its behalf, as in tooz.

Liveness: the ZooKeeper session (timeout = the timeout option as negotiated
with the server, 10 s by default); go-zookeeper pings the server, and a
member's znodes and locks vanish when its session expires. When the
connection drops, every lock and leadership is put in doubt at once (after
two thirds of the session timeout without a reply, before the server can
expire the session); when the client reconnects in time the session resumes,
watches re-list, and new grants can be taken; when the server answers that
the session expired, it is reported lost and the connection refuses every
operation (go-zookeeper would silently start a new session that owns none of
the member's znodes). As in ZooKeeper's own client only the server decides
that a session expired (it keeps sessions through its restarts and leader
elections); connection_retry_deadline (Curator's behaviour when set to the
session timeout) and connection_retry_attempts make the client give up
earlier. A server restart or the loss of one ensemble member is a
disconnection: clients reconnect (to another member) and carry on, losing
only the grants held across the gap. Operations issued while disconnected
wait for the reconnection, bounded by their context; requests cut by a drop
are retried where that is safe (command_retry_*); connection_retry_* paces
reconnection.

Locks: the classic recipe (the first request in sequence order holds; each
waiter watches only its predecessor, so waiting is native and a release wakes
one waiter), plus Curator's read/write variant for shared locks. A request
queued behind another holds only once its owner, finding it first, confirms
it (rewrites its data at version 0); the waiter behind a request that has
been first and unconfirmed for the handover window (eight of the
connection's round trips, the least recently seen, and at least 10 ms;
before any is measured, a thirtieth of the session timeout within 50 to
250 ms) deletes it, so a lock passes a waiter killed while queued within
the window plus a round trip instead of a session timeout (a live waiter
slower than the window queues again). Leadership does not queue: a candidate
tries as TryLock does (its request withdrawn at once when another holds)
and watches the holder's request, so a waiting candidate keeps nothing on
the server, and a resignation hands over within a round trip of its
notification even when a candidate died while waiting. An
uncontended acquisition is one round trip (a multi that creates the request
and reports that it is alone), a release one more. Leases live as long as
the session (TTL 0). Fencing tokens are the request znode's czxid: global
transaction IDs that increase across leader elections, restarts and
re-creations of the lock's directory (strong). Watches are pushed: child and
data watches for groups, a child watch for lock holders and leaders.

Consistency: writes are linearizable and each client's operations keep their
order (sequential, hence causal). Reads that report other members' writes
(groups, members, holders, the start of a watch) first sync the server with
the leader, so they see every write completed before they began; ZooKeeper
does not make sync-then-read strictly linearizable, so the driver does not
claim linearizable. tooz's connection_retry and command_retry cannot come
from a URL (kazoo ignored them there): the driver refuses them and offers the
connection_retry_* and command_retry_* options. tooz's handler=eventlet is
refused; threading is accepted.

Leader change, frozen member, lost quorum: Renew is one round trip on the
session's connection (an Exists on the root, bounded by a third of the
session timeout), so a server that stops answering fails renewals, and the
backend puts grants in doubt before the session could expire. go-zookeeper
gives up on a silent server after two thirds of the session timeout and
reconnects to another member; the session survives when that takes less than
the rest of the timeout. A leader killed or stopped: the ensemble elects
another (a few ticks), clients connected to it reconnect elsewhere, and their
grants held across the gap are put in doubt (released and taken again);
clients of the followers notice nothing but a pause of the writes. A frozen
member: its clients reconnect after two thirds of the session timeout;
frozen past the session timeout, a frozen leader ends every session the new
leader cannot account for (ZooKeeper's design), and the members see ErrLost.
A lost quorum: the remaining members refuse clients, every grant is put in
doubt, and sessions expire unless the quorum comes back within the timeout.
`

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	_, err = newTLS(s.tls)
	return err
}
