package etcdbackend

import (
	"crypto/tls"
	"slices"
	"time"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/netopt"
)

// defaultPort is etcd's client port, tooz's default.
const defaultPort = "2379"

// defaultHost is tooz's default host.
const defaultHost = "localhost"

// optionSpecs is the option table of etcd3:// URLs: tooz's etcd3 options
// with tooz's meaning and defaults, plus baton's.
var optionSpecs = slices.Concat(
	[]driver.OptionSpec{{
		Key: "timeout", Type: driver.Duration, Default: "30", Min: driver.MinValue(0.001),
		Doc: "Timeout of every request to etcd, and the default of lock_timeout and membership_timeout (tooz's meaning: gRPC timeout and default TTLs).",
	}},
	etcdproto.LeaseOptionSpecs(),
	[]driver.OptionSpec{
		{
			Key: "dial_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: driver.MinValue(0.001),
			Doc: "How long opening waits for the cluster to answer (granting the session lease).",
		},
		{
			Key: "namespace", Type: driver.String, Default: "baton",
			Doc: "Key prefix: every key the driver writes lives under \"<namespace>/\".",
		},
	},
	netopt.TLSOptionSpecs(
		"https turns TLS on (with the system's CA pool unless ca_cert is given). tooz documented this option but ignored it.",
		"PEM file of the CA certificates that sign the servers' certificates; turns TLS on."),
)

// settings is a connection string resolved into what Open needs.
type settings struct {
	endpoints      []string
	username       string
	password       string
	tls            *tls.Config
	namespace      string
	requestTimeout time.Duration
	dialTimeout    time.Duration
	leaseTTL       time.Duration // requested; the server may grant more
}

// resolve checks cfg and turns it into settings. Errors are coded
// CodeInvalidArgument.
func resolve(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{
		username:       cfg.Username,
		password:       cfg.Password,
		namespace:      o.String("namespace"),
		requestTimeout: o.Duration("timeout"),
	}
	bad := func(format string, args ...any) error {
		return driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	if cfg.Path != "" && cfg.Path != "/" {
		return nil, bad("path %q is not used by etcd3:// (use ?namespace= for a key prefix)", cfg.Path)
	}
	if s.namespace == "" {
		return nil, bad("option \"namespace\" is empty")
	}
	if cfg.Username == "" && cfg.PasswordSet {
		return nil, bad("a password needs a user name")
	}
	if cfg.Username != "" && cfg.Password == "" {
		return nil, bad("user %q needs a password (etcd authenticates with both)", cfg.Username)
	}
	s.dialTimeout = s.requestTimeout
	if o.IsSet("dial_timeout") {
		s.dialTimeout = o.Duration("dial_timeout")
	}
	s.leaseTTL = etcdproto.LeaseTTL(o, s.requestTimeout)

	hosts := cfg.Hosts
	if len(hosts) == 0 {
		hosts = []string{defaultHost}
	}
	for _, h := range hosts {
		ep, err := netopt.HostPort(h, defaultPort)
		if err != nil {
			return nil, bad("%w", err)
		}
		s.endpoints = append(s.endpoints, ep)
	}
	tc, err := netopt.TLSConfig(o)
	if err != nil {
		return nil, bad("%w", err)
	}
	s.tls = tc
	return s, nil
}
