package etcdgwbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

func init() {
	backend.Register(Info())
}

// characteristics are the facts every etcd3+http(s):// connection has:
// etcd3://'s, since the data model and the server are the same. See the
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

const summary = "etcd v3 through its JSON gateway (HTTP/1.1 or HTTP/2 over TLS, net/http only), etcd 3.2 or later; the gateway path (/v3/, /v3beta/, /v3alpha/) is detected from GET /version unless api_version names it. " +
	"Same keys, values and semantics as etcd3://, so members of both drivers on one namespace share groups, locks and leadership. " +
	"Each Backend holds one lease (TTL: the smaller of lock_timeout and membership_timeout, default 30 s) renewed by one keep-alive request at a time, so grants are measured from the send time of the last successful renewal. " +
	"Members are keys on that lease under <namespace>/groups/<group>/members/; watches are pushed by the gateway's streaming /watch, which resumes from the last revision after a broken stream and resynchronises only after compaction. " +
	"Locks are keys on the lease under <namespace>/locks/<name>/, one per attempt; the holder is the key with the lowest create revision and waiters watch only their predecessor's deletion. " +
	"Leadership does not queue, as on etcd3://: a candidate retries TryLock's transaction each time the holder's entry is deleted, so a candidate killed while waiting leaves nothing behind. " +
	"The fencing token is the holder key's create revision: etcd's global revision, strictly increasing and never reused (strong). " +
	"When renewals fail every grant is cancelled a safety margin before the lease can expire; when the lease is lost the Backend ends with ErrLost. " +
	"Requests go to one endpoint at a time and move to the next on a connection failure; reads, deletes and keep-alives are retried there at once."

// Info returns the registration record of the etcd3+http:// and
// etcd3+https:// driver: its schemes, option table, characteristics and
// Open function. The package's init function registers it.
func Info() driver.Info {
	return driver.Info{
		Name:    "etcd v3 JSON gateway",
		Schemes: []string{"etcd3+http", "etcd3+https"},
		Summary: summary,
		URLForm: "etcd3+http[s]://[user:password@][host[:port]][,host[:port]...][?option=value&...]",
		Examples: []string{
			// tooz's documented forms.
			"etcd3+http://",
			"etcd3+http://localhost:2379",
			"etcd3+http://127.0.0.1:2379?timeout=30&lock_timeout=30&membership_timeout=30",
			"etcd3+http://localhost:2379?api_version=v3",
			"etcd3+https://etcd.example.org:2379?ca_cert=/etc/etcd/ca.pem&cert_key=/etc/etcd/client-key.pem&cert_cert=/etc/etcd/client.pem",
			// baton's additions.
			"etcd3+http://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379?namespace=myapp&timeout=10",
			"etcd3+https://app:secret@etcd.example.org",
			"etcd3+http://[::1]:2379?lock_timeout=5s&membership_timeout=15s&dial_timeout=2s&api_version=v3beta",
		},
		Characteristics:    characteristics,
		CharacteristicsFor: characteristicsFor,
		Options:            optionSpecs,
		Schedule:           schedule,
		Check:              check,
		Open:               open,
	}
}

// open resolves the gateway path, authenticates, grants the session lease
// and writes the session key.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	cli := newClient(s.scheme, s.endpoints, s.tls, s.dialTimeout, s.username, s.password)
	if len(s.endpoints) > 1 {
		cli.attempt = min(s.requestTimeout, max(s.leaseTTL/6, minAttempt))
	}
	c := &conn{
		cli:      cli,
		log:      cfg.Logger,
		obs:      cfg.Observer,
		clock:    cfg.Clock,
		memberID: cfg.MemberID,
		keys:     newKeyspace(s.namespace).withTooz(s),
		timeout:  s.requestTimeout,
	}
	if c.clock == nil {
		c.clock = driver.RealClock{}
	}
	dctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
	defer cancel()
	fail := func(op string, err error) (driver.Conn, error) {
		cli.close()
		return nil, classify(ctx, dctx, op, err)
	}
	if err := c.apiPath(dctx, s.apiVersion); err != nil {
		return fail("find the gateway of "+cfg.Redacted, err)
	}
	if err := cli.authenticate(dctx); err != nil {
		return fail("authenticate as "+s.username, err)
	}
	var grant leaseGrantResponse
	if err := cli.call(dctx, "lease/grant", &leaseGrantRequest{TTL: etcdproto.LeaseSeconds(s.leaseTTL)}, &grant, false); err != nil {
		return fail(fmt.Sprintf("grant session lease on %s", cfg.Redacted), c.explainPath(dctx, err))
	}
	if grant.Error != "" {
		return fail(fmt.Sprintf("grant session lease on %s", cfg.Redacted), &Error{Code: grpcUnavailable, Message: grant.Error})
	}
	c.lease = grant.ID
	c.ttl = time.Duration(grant.TTL) * time.Second
	var put putResponse
	if err := cli.call(dctx, "kv/put", &putRequest{Key: []byte(c.keys.Session(c.lease)), Value: []byte(c.memberID), Lease: c.lease}, &put, true); err != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.requestTimeout)
		_ = cli.call(rctx, "kv/lease/revoke", &leaseIDRequest{ID: c.lease}, nil, true)
		rcancel()
		return fail("write session key", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	c.stopWatch = stop
	c.wg.Add(1)
	go c.watchSession(wctx, put.Header.Revision)
	return c, nil
}

// minAttempt is the least time one attempt on one endpoint is given.
const minAttempt = 250 * time.Millisecond

// apiPath sets the client's gateway path: the api_version option, or,
// with auto, the path the server's version serves.
func (c *conn) apiPath(ctx context.Context, apiVersion string) error {
	if apiVersion != apiAuto {
		c.cli.prefix = "/" + apiVersion + "/"
		return nil
	}
	v, err := c.cli.version(ctx)
	if err != nil {
		return err
	}
	p, err := apiPathFor(v.Server)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotEtcd, err)
	}
	c.cli.prefix = "/" + p + "/"
	return nil
}

// explainPath turns "path not served" into an error that names the path,
// the server's version and what to set instead.
func (c *conn) explainPath(ctx context.Context, err error) error {
	if !errors.Is(err, errPathNotServed) {
		return err
	}
	msg := fmt.Sprintf("the server serves no etcd v3 gateway at %s (HTTP 404)", c.cli.prefix)
	if v, verr := c.cli.version(ctx); verr == nil {
		if p, perr := apiPathFor(v.Server); perr == nil {
			msg += fmt.Sprintf("; etcd %s serves /%s/: set api_version=%s, or leave api_version unset to detect it", v.Server, p, p)
		}
	} else {
		msg += "; it does not answer GET /version as etcd does"
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := resolve(cfg)
	return err
}
