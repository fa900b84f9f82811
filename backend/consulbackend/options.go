package consulbackend

import (
	"crypto/tls"
	"net"
	"os"
	"slices"
	"time"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/netopt"
)

// defaultHost and defaultPort are Consul's HTTP API address, tooz's
// default.
const (
	defaultHost = "localhost"
	defaultPort = "8500"
)

// batonNamespace is the default namespace of baton's layout.
const batonNamespace = "baton"

// tokenEnv is where every Consul tool finds the ACL token when none is
// given explicitly.
const tokenEnv = "CONSUL_HTTP_TOKEN"

// maxLockDelay is Consul's upper bound on a session's lock-delay.
const maxLockDelay = 60 * time.Second

// optionSpecs is the option table of consul:// URLs: tooz's consul options
// with tooz's meaning (ttl, namespace, acl_token, timeout), TLS options
// named like tooz's etcd3 ones, and baton's own.
var optionSpecs = slices.Concat(
	[]driver.OptionSpec{
		{
			Key: "ttl", Type: driver.Duration, Default: "15", Min: driver.MinValue(1),
			Doc: "TTL of the Backend's Consul session (tooz's meaning and default): a crashed member's keys, locks and leaderships go when the session is invalidated, at the latest twice the TTL after its last renewal (Consul's grace). Renewed every third of it. Consul refuses TTLs below its session_ttl_min (10 s unless configured).",
		},
		{
			Key: "timeout", Type: driver.Duration, Default: "5", Min: driver.MinValue(0.001),
			Doc: "Timeout of every request to the agent (a blocking query waits this long beyond its own wait time).",
		},
		{
			Key: "namespace", Type: driver.String,
			DefaultDoc: `"baton"; "tooz" with compat=tooz`,
			Doc:        "KV prefix: every key the driver writes lives under \"<namespace>/\" (tooz's meaning). Its default is tooz's \"tooz\" with compat=tooz, where the layout is tooz's; with baton's own layout the default stays \"baton\", so the two layouts never mix. Not a Consul Enterprise namespace.",
		},
		{
			Key: "acl_token", Type: driver.String, Secret: true, DefaultDoc: "$" + tokenEnv,
			Doc: "Consul ACL token of every request; when absent, the CONSUL_HTTP_TOKEN environment variable, as every Consul tool does. Never shown in errors, logs or explain output.",
		},
		{
			Key: "datacenter", Type: driver.String,
			Doc: "Datacenter of every request (default: the agent's own). A session in another datacenter needs a server agent.",
		},
		{
			Key: "lock_delay", Type: driver.Duration, Default: "0", Min: driver.MinValue(0),
			Doc: "Consul's session lock-delay (at most 60 s): after the session is invalidated, its exclusive locks and leaderships cannot be taken for this long by Backends that set lock_delay too (Consul checks it only on its acquire endpoint, which they then use). 0 hands them over at once; baton's grants already end a safety margin before the session can expire.",
		},
		driver.CompatOption("Consul's tooz mode shares groups, members with their capabilities and exclusive locks with tooz's consul driver (tooz's keys, its ?acquire/?release protocol and its group locks); it gives up shared locks (tooz has none), fencing for tooz's holders (partial) and the departure of crashed tooz members (tooz never binds its member keys to its session, so they stay listed, on both sides, until removed)."),
	},
	netopt.TLSOptionSpecs(
		"https turns TLS on (with the system's CA pool unless ca_cert is given).",
		"PEM file of the CA certificates that sign the agent's certificate; turns TLS on."),
)

// settings is a connection string resolved into what Open needs.
type settings struct {
	address    string
	scheme     string // http or https
	tls        *tls.Config
	token      string
	datacenter string
	namespace  string
	ttl        time.Duration
	timeout    time.Duration
	lockDelay  time.Duration
	tooz       bool // compat=tooz: tooz's layout and protocol
}

// resolve checks cfg and turns it into settings. Errors are coded
// CodeInvalidArgument and never show the token.
func resolve(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{
		scheme:     "http",
		namespace:  o.String("namespace"),
		datacenter: o.String("datacenter"),
		ttl:        o.Duration("ttl"),
		timeout:    o.Duration("timeout"),
		lockDelay:  o.Duration("lock_delay"),
		token:      o.String("acl_token"),
		tooz:       o.String("compat") == driver.CompatTooz,
	}
	bad := func(format string, args ...any) error {
		return driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	if !o.IsSet("acl_token") {
		s.token = os.Getenv(tokenEnv)
	}
	if cfg.Path != "" && cfg.Path != "/" {
		return nil, bad("path %q is not used by consul:// (use ?namespace= for a key prefix)", cfg.Path)
	}
	if cfg.Username != "" || cfg.PasswordSet {
		return nil, bad("consul:// takes no user information: give the ACL token with ?acl_token= or %s", tokenEnv)
	}
	if !o.IsSet("namespace") {
		s.namespace = batonNamespace
		if s.tooz {
			s.namespace = toozNamespace
		}
	}
	if s.namespace == "" {
		return nil, bad("option \"namespace\" is empty")
	}
	if s.tooz {
		if err := checkToozNamespace(s.namespace); err != nil {
			return nil, bad("%w", err)
		}
	}
	if s.lockDelay > maxLockDelay {
		return nil, bad("lock_delay %v is above Consul's maximum %v", s.lockDelay, maxLockDelay)
	}
	if s.ttl%time.Second != 0 {
		// Consul keeps TTLs of any precision, but a whole number is what
		// every Consul tool shows; round up so the TTL is never shorter
		// than asked.
		s.ttl = s.ttl.Truncate(time.Second) + time.Second
	}
	switch len(cfg.Hosts) {
	case 0:
		s.address = net.JoinHostPort(defaultHost, defaultPort)
	case 1:
		a, err := netopt.HostPort(cfg.Hosts[0], defaultPort)
		if err != nil {
			return nil, bad("%w", err)
		}
		s.address = a
	default:
		return nil, bad("consul:// takes one agent address, got %d: a Consul client talks to its local agent, which forwards to the servers", len(cfg.Hosts))
	}
	tc, err := netopt.TLSConfig(o)
	if err != nil {
		return nil, bad("%w", err)
	}
	if tc != nil {
		s.tls, s.scheme = tc, "https"
	}
	return s, nil
}
