package etcdbackend

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

func init() {
	backend.Register(Info())
}

// characteristics are the facts every etcd3:// connection has. See the
// package documentation for the reasoning behind each.
var characteristics = driver.Characteristics{
	DistributedAcrossThreads:   true,
	DistributedAcrossProcesses: true,
	DistributedAcrossHosts:     true,
	NonTimeoutBased:            false,
	Linearizable:               true,
	Sequential:                 true,
	Causal:                     true,
	Serializable:               true,
	SameViewUnderPartitions:    true,
	SameViewAcrossClients:      false,
	Liveness:                   driver.LivenessTTL,
	Watch:                      driver.WatchPush,
	Fencing:                    driver.FencingStrong,
	Evictable:                  false,
	SharedLocks:                false,
}

const summary = "etcd v3 over gRPC (go.etcd.io/etcd/client/v3), etcd 3.3 or later. " +
	"Each Backend holds one lease (TTL: the smaller of lock_timeout and membership_timeout, default 30 s) that the Backend renews every third of its TTL with one keep-alive request, so grants are measured from the send time of the last successful renewal. " +
	"Members are keys on that lease under <namespace>/groups/<group>/members/, so a crashed member disappears when the lease expires; watches are pushed by etcd prefix watches that resume from the last revision after a reconnect and resynchronise only after compaction. " +
	"Locks are keys on the lease under <namespace>/locks/<name>/, one per attempt; the holder is the key with the lowest create revision and waiters watch only their predecessor's deletion. " +
	"The fencing token is the holder key's create revision: etcd's global revision, strictly increasing and never reused, even across restarts and leader changes (strong). " +
	"Leases are timeouts: when renewals fail (server down, partition) every grant is cancelled a safety margin before the lease can expire; when the lease is lost (expired or revoked) every member key and lock of the Backend vanishes at once, the Backend sees it (a watch on its session key, or the next renewal answering \"lease not found\") and ends with ErrLost. " +
	"A waiter confirms its entry (writes it again) once it is the oldest; the waiter behind an entry left unconfirmed for the handover window (eight of the connection's round trips, the least recently seen, and at least 10 ms; before any is measured, a thirtieth of the TTL within 50 to 250 ms) deletes it, so a lock passes a waiter killed while queued within that window instead of a lease TTL. " +
	"Leadership does not queue: a candidate retries TryLock's transaction (whose failure branch reads the holder) each time the holder's entry changes, so a waiting candidate keeps nothing on the server and a resignation hands over within a round trip of its notification, even past a candidate killed while waiting. " +
	"Reads, renewals and releases (a compare-and-delete by token) run attempt by attempt, each bounded by a sixth of the TTL and requiring a member with a leader, and are repeated on the next endpoint until the caller's deadline; so a leader change costs the election time plus a few round trips, a frozen member one attempt, and no session is lost while a quorum is reachable. " +
	"A server restart or leader change shorter than the TTL is invisible: requests are retried against the other endpoints and the lease survives."

// Info returns the registration record of the etcd3:// driver: its
// schemes, option table, characteristics and Open function. The package's
// init function registers it.
func Info() driver.Info {
	return driver.Info{
		Name:    "etcd v3",
		Schemes: []string{"etcd3"},
		Summary: summary,
		URLForm: "etcd3://[user:password@][host[:port]][,host[:port]...][?option=value&...]",
		Examples: []string{
			// tooz's documented forms.
			"etcd3://",
			"etcd3://localhost",
			"etcd3://localhost:2379",
			"etcd3://127.0.0.1:2379?timeout=30&lock_timeout=30&membership_timeout=30",
			"etcd3://localhost:2379?protocol=http",
			"etcd3://etcd.example.org:2379?ca_cert=/etc/etcd/ca.pem&cert_key=/etc/etcd/client-key.pem&cert_cert=/etc/etcd/client.pem",
			// baton's additions.
			"etcd3://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379?namespace=myapp&timeout=10",
			"etcd3://app:secret@etcd.example.org?protocol=https",
			"etcd3://[::1]:2379?lock_timeout=5s&membership_timeout=15s&dial_timeout=2s",
		},
		Characteristics: characteristics,
		Options:         optionSpecs,
		Schedule:        schedule,
		Check:           check,
		Open:            open,
	}
}

// open connects, grants the session lease and writes the session key.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            s.endpoints,
		Username:             s.username,
		Password:             s.password,
		TLS:                  s.tls,
		DialTimeout:          s.dialTimeout,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout(s.leaseTTL),
		Logger:               cfg.Logger.Named("etcd-client"),
	})
	if err != nil {
		return nil, classify(ctx, nil, "connect to "+cfg.Redacted, err)
	}
	c := &conn{
		cli:      cli,
		log:      cfg.Logger,
		clock:    clockOf(cfg),
		obs:      cfg.Observer,
		memberID: cfg.MemberID,
		keys:     etcdproto.NewKeyspace(s.namespace),
		timeout:  s.requestTimeout,
	}
	dctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
	defer cancel()
	lease, err := cli.Grant(dctx, etcdproto.LeaseSeconds(s.leaseTTL))
	if err != nil {
		_ = cli.Close()
		err = classify(ctx, dctx, fmt.Sprintf("grant session lease on %s", cfg.Redacted), err)
		if ctx.Err() == nil && dctx.Err() != nil {
			// gRPC hides why no connection was made; a dial says it.
			if cause := dialCause(ctx, s.endpoints); cause != nil {
				err = fmt.Errorf("%w (%w)", err, cause)
			}
		}
		return nil, err
	}
	c.lease = lease.ID
	c.ttl = time.Duration(lease.TTL) * time.Second
	t0 := time.Now()
	put, err := cli.Put(dctx, c.keys.Session(int64(c.lease)), c.memberID, clientv3.WithLease(c.lease))
	if err == nil {
		c.rtt.Observe(time.Since(t0)) // a write, as the lock path's
	}
	if err != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.requestTimeout)
		_, _ = cli.Revoke(rctx, c.lease)
		rcancel()
		_ = cli.Close()
		return nil, classify(ctx, dctx, "write session key", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	c.stopWatch = stop
	c.wg.Add(1)
	go c.watchSession(wctx, put.Header.Revision)
	return c, nil
}

// gRPC keep-alive of the client connection: it finds a dead TCP
// connection (a partition, a blackholed proxy, a frozen member) so that
// the balancer stops sending requests to it. gRPC never pings more often
// than every 10 s (and etcd refuses pings more frequent than every 5 s),
// so the ping interval is that floor; the wait for the ping's answer is a
// third of the lease TTL, between 1 s and 5 s. Within the TTL, the
// per-attempt timeouts of idempotent requests (conn.idempotent) move them
// to another member long before the keep-alive gives up on one.
const keepAliveTime = 10 * time.Second

func keepAliveTimeout(ttl time.Duration) time.Duration {
	return min(max(ttl/3, time.Second), 5*time.Second)
}

// clockOf returns the configuration's clock (never nil from the backend;
// a test opening the driver directly may leave it unset).
func clockOf(cfg *driver.Config) driver.Clock {
	if cfg.Clock != nil {
		return cfg.Clock
	}
	return driver.RealClock{}
}

// dialCause dials each endpoint once (a TCP connection, closed at once)
// and returns why none could be reached, e.g. "dial tcp 127.0.0.1:2379:
// connect: connection refused"; nil when one answers (then the cause was
// not the network: TLS, authentication or a member without a leader).
func dialCause(ctx context.Context, endpoints []string) error {
	var all error
	for _, ep := range endpoints {
		host := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			host = u.Host
		}
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", host)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if all == nil {
			all = err
		} else {
			all = fmt.Errorf("%w; %w", all, err)
		}
	}
	return all
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := resolve(cfg)
	return err
}
