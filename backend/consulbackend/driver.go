package consulbackend

import (
	"context"
	"net/http"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func init() {
	backend.Register(Info())
}

// characteristics are the facts every consul:// connection has. See the
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
	SharedLocks:                true,
}

const summary = "Consul's HTTP API (github.com/hashicorp/consul/api), Consul 1.16. " +
	"Each Backend holds one Consul session (TTL from ttl, default 15 s, no node health check, Behavior=delete, lock-delay from lock_delay, default 0) that the Backend renews every third of its TTL with one PUT /v1/session/renew; a renewal answering 404 ends the Backend with ErrLost at once. " +
	"Members are keys under <namespace>/groups/<group>/members/ acquired with the session, so a crashed member vanishes when its session is invalidated; locks and leaderships are keys under <namespace>/locks/<name>/ acquired with the session in one transaction; shared locks are one key per shared grant, excluded from the exclusive key by transactions. " +
	"Watches and lock waits are blocking queries on the group's or the lock's prefix (a lower index resynchronises). " +
	"The fencing token is the Raft index of the write that acquired the key (its ModifyIndex): strictly increasing and never reused by a cluster that keeps its data (strong; a dev agent restarted without data starts over). " +
	"All reads that decide something are consistent (linearizable); blocking queries use the default mode (served by the leader)."

// Info returns the registration record of the consul:// driver: its
// schemes, option table, characteristics and Open function. The package's
// init function registers it.
func Info() driver.Info {
	return driver.Info{
		Name:    "Consul",
		Schemes: []string{"consul"},
		Summary: summary,
		URLForm: "consul://[host[:port]][?option=value&...]",
		Examples: []string{
			// tooz's documented forms.
			"consul://localhost:8500",
			"consul://127.0.0.1:8500?ttl=15&namespace=tooz",
			"consul://consul.example.org?acl_token=s3cr3t",
			// baton's additions.
			"consul://",
			"consul://10.0.0.1:8501?protocol=https&ca_cert=/etc/consul/ca.pem&cert_cert=/etc/consul/client.pem&cert_key=/etc/consul/client-key.pem",
			"consul://[::1]:8500?ttl=10s&timeout=2s&lock_delay=5s&datacenter=dc2&namespace=myapp",
			"consul://127.0.0.1:8500?compat=tooz&ttl=15",
		},
		Characteristics: characteristics,
		CharacteristicsFor: func(v driver.Values) driver.Characteristics {
			if v.String("compat") == driver.CompatTooz {
				return toozCharacteristics
			}
			return characteristics
		},
		Options:  optionSpecs,
		Schedule: schedule,
		Check:    check,
		Open:     open,
	}
}

// open builds the client, creates the session and starts following it.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	tr := cleanhttp.DefaultPooledTransport()
	if s.tls != nil {
		useTLS(tr, s.tls)
	}
	cli, err := api.NewClient(&api.Config{
		Address:    s.address,
		Scheme:     s.scheme,
		Datacenter: s.datacenter,
		Token:      s.token,
		HttpClient: &http.Client{Transport: tr},
	})
	if err != nil {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "consul client for %s: %w", cfg.Redacted, err)
	}
	c := &conn{
		cli:       cli,
		transport: tr,
		log:       cfg.Logger,
		obs:       cfg.Observer,
		clock:     cfg.Clock,
		memberID:  cfg.MemberID,
		keys:      newKeyspace(s.namespace),
		timeout:   s.timeout,
		ttl:       s.ttl,
		lockDelay: s.lockDelay,
		held:      map[grantID]string{},
	}
	if c.clock == nil {
		c.clock = driver.RealClock{}
	}
	name := sessionName(s.namespace, c.memberID)
	if s.tooz {
		name = c.memberID // tooz names a member's session by its member ID
	}
	if err := c.createSession(ctx, s, name); err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	wctx, stop := context.WithCancel(context.Background())
	c.stopWatch = stop
	c.wg.Add(1)
	go c.watchSession(wctx)
	if s.tooz {
		return newToozConn(c, s.namespace), nil
	}
	return c, nil
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := resolve(cfg)
	return err
}
