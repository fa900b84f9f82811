package etcd2backend

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func init() {
	backend.Register(Info())
}

// characteristics are the facts every etcd:// connection has; the package
// documentation gives the reasons.
var characteristics = driver.Characteristics{
	DistributedAcrossThreads:   true,
	DistributedAcrossProcesses: true,
	DistributedAcrossHosts:     true,
	NonTimeoutBased:            false,
	Linearizable:               true,
	Sequential:                 true,
	Causal:                     true,
	Serializable:               true,
	SameViewUnderPartitions:    false,
	SameViewAcrossClients:      false,
	Liveness:                   driver.LivenessTTL,
	Watch:                      driver.WatchPush,
	Fencing:                    driver.FencingStrong,
	Evictable:                  false,
	SharedLocks:                true,
}

const summary = "etcd's v2 keys API (/v2/keys) over HTTP, with no client library: etcd 2.x, or 3.4/3.5 started with --enable-v2=true (3.6 removed the v2 API; a server without it is refused at Open with an error saying so). " +
	"Each Backend has a session key and one member key per joined group, all with the TTL membership_timeout, renewed together every third of it with refresh=true requests sent side by side (one round trip), so grants are measured from when the last successful renewal was sent. " +
	"A lock is one key created with prevExist=false and the TTL lock_timeout (or the acquisition's own), released with DELETE prevValue= and refreshed with refresh=true prevValue=, so only the grant's own nonce ever matches; waiters queue as in-order keys (POST) and long-poll (wait=true&waitIndex=) only their predecessor's deletion, the head of the queue the lock key's; candidates for leadership do not queue, they long-poll the lock key and try again when it goes, so a candidate killed while waiting leaves nothing behind. " +
	"Shared locks are a marker in the lock key plus one in-order reader entry per holder, granted by a compare-and-swap on the marker made after the entry exists. " +
	"The fencing token is the store index of the granting write (the lock key's createdIndex): the v2 store's index is replicated by Raft and strictly increasing per cluster, so tokens are strong across restarts and leader changes, but not across a move of the keys to another v2 store (a restore from a v3 snapshot, a new cluster), whose index starts over. " +
	"Watches and leader observation are long-polls that resume from the next index after a broken connection and resynchronise (a fresh snapshot) when etcd answers that the index was cleared from its 1000-event history (error 401). " +
	"TTLs are whole seconds, expired by the leader about every 500 ms against the wall clock of the member that took the request: the members' clocks must agree."

// Info returns the registration record of the etcd:// driver. The
// package's init function registers it.
func Info() driver.Info {
	return driver.Info{
		Name:    "etcd v2",
		Schemes: []string{"etcd"},
		Summary: summary,
		URLForm: "etcd://[user:password@][host[:port]][,host[:port]...][?option=value&...]",
		Examples: []string{
			// tooz's documented forms.
			"etcd://",
			"etcd://localhost:2379",
			"etcd://127.0.0.1:2379?timeout=30&lock_timeout=30",
			"etcd://etcd.example.org:2379?protocol=https",
			// baton's additions.
			"etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379?namespace=myapp&timeout=5",
			"etcd://app:secret@etcd.example.org?protocol=https&ca_cert=/etc/etcd/ca.pem",
			"etcd://[::1]:2379?lock_timeout=10s&membership_timeout=15s",
		},
		Characteristics:    characteristics,
		CharacteristicsFor: characteristicsFor,
		Options:            optionSpecs,
		Schedule:           schedule,
		Check:              check,
		Open:               open,
	}
}

// open checks that the servers serve the v2 API and writes the session
// key.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	tr := newTransport(s.timeout)
	tr.TLSClientConfig = s.tls
	bg, stop := context.WithCancel(context.Background())
	c := &conn{
		cl:         newClient(s.endpoints, tr, s.username, s.password, s.timeout),
		log:        cfg.Logger,
		obs:        cfg.Observer,
		clock:      cfg.Clock,
		memberID:   cfg.MemberID,
		keys:       newKeyspace(s.namespace).withTooz(s),
		sessionTTL: s.sessionTTL,
		lockTTL:    s.lockTTL,
		members:    map[string]string{},
		queued:     map[string]bool{},
		grants:     map[grantID]*grant{},
		orphans:    map[string]string{},
		bg:         bg,
		stopBg:     stop,
	}
	if c.clock == nil {
		c.clock = driver.RealClock{}
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.sessionKey = c.keys.session(randomID())
	_, err = c.cl.put(ctx, c.sessionKey, form("value", c.memberID, "ttl", seconds(c.sessionTTL), "prevExist", "false"))
	if err != nil {
		stop()
		c.cl.close()
		return nil, classify(ctx, fmt.Sprintf("open session on %s", cfg.Redacted), err)
	}
	return c, nil
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := resolve(cfg)
	return err
}
