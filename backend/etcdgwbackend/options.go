package etcdgwbackend

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/netopt"
)

// defaultPort is etcd's client port, tooz's default.
const defaultPort = "2379"

// defaultHost is tooz's default host.
const defaultHost = "localhost"

// apiAuto is the api_version that asks the server which path it serves.
const apiAuto = "auto"

// optionSpecs is the option table of etcd3+http:// and etcd3+https://
// URLs: tooz's etcd3gw options with tooz's meaning and defaults, the TLS
// options of etcd3://, plus baton's.
var optionSpecs = slices.Concat(
	[]driver.OptionSpec{{
		Key: "timeout", Type: driver.Duration, Default: "30", Min: driver.MinValue(0.001),
		Doc: "Timeout of every request to etcd, and the default of lock_timeout and membership_timeout (tooz's meaning: HTTP timeout and default TTLs).",
	}},
	etcdproto.LeaseOptionSpecs(),
	[]driver.OptionSpec{
		{
			Key: "dial_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: driver.MinValue(0.001),
			Doc: "How long opening waits for the cluster to answer (version probe and granting the session lease), and the TCP connect timeout.",
		},
		{
			Key: "namespace", Type: driver.String, Default: "baton",
			Doc: "Key prefix: every key the driver writes lives under \"<namespace>/\". The layout is etcd3://'s, so members of both drivers on one namespace see each other.",
		},
		{
			Key: "api_version", Type: driver.String, Default: apiAuto, Enum: []string{apiAuto, "v3alpha", "v3beta", "v3"},
			Doc: "Gateway path /<api_version>/. auto asks GET /version and picks what the server serves, as tooz 5.0 does: v3 from etcd 3.4, v3beta on 3.3, v3alpha before. A path the server does not serve is an error at Open.",
		},
		{
			Key: "protocol", Type: driver.String, Enum: []string{"http", "https"}, DefaultDoc: "the scheme's",
			Doc: "Accepted for tooz URLs; the scheme decides (etcd3+https:// is TLS), and a protocol that contradicts it is an error.",
		},
		{
			Key: "ca_cert", Type: driver.String,
			Doc: "PEM file of the CA certificates that sign the servers' certificates (etcd3+https:// only; default: the system's pool).",
		},
		{
			Key: "cert_cert", Type: driver.String,
			Doc: "PEM file of the client certificate for TLS client authentication (needs cert_key; etcd3+https:// only).",
		},
		{
			Key: "cert_key", Type: driver.String,
			Doc: "PEM file of the client certificate's private key (needs cert_cert).",
		},
		driver.CompatOption(compatDoc),
		{
			Key: "tooz_prefix", Type: driver.String,
			Doc: "compat=tooz only: a prefix put before tooz's keys (tooz/groups/..., /tooz/locks...). tooz's etcd3gw driver has no such option and writes them at the top of the keyspace (the default, no prefix), so set it only to keep apart instances that share nothing with tooz processes (tests).",
		},
	},
)

// settings is a connection string resolved into what Open needs.
type settings struct {
	scheme         string // http or https
	endpoints      []string
	username       string
	password       string
	tls            *tls.Config
	namespace      string
	apiVersion     string // auto or a path segment
	requestTimeout time.Duration
	dialTimeout    time.Duration
	leaseTTL       time.Duration // requested; the server may grant more
	tooz           bool          // compat=tooz (tooz.go)
	toozPrefix     string        // tooz_prefix
}

// resolve checks cfg and turns it into settings. Errors are coded
// CodeInvalidArgument.
func resolve(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{
		username:       cfg.Username,
		password:       cfg.Password,
		namespace:      o.String("namespace"),
		apiVersion:     o.String("api_version"),
		requestTimeout: o.Duration("timeout"),
		scheme:         "http",
	}
	bad := func(format string, args ...any) error {
		return driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	if strings.EqualFold(cfg.Scheme, "etcd3+https") {
		s.scheme = "https"
	}
	if cfg.Path != "" && cfg.Path != "/" {
		return nil, bad("path %q is not used by %s:// (use ?namespace= for a key prefix, ?api_version= for the gateway path)", cfg.Path, cfg.Scheme)
	}
	if s.namespace == "" {
		return nil, bad("option \"namespace\" is empty")
	}
	s.tooz, s.toozPrefix = o.String("compat") == driver.CompatTooz, o.String("tooz_prefix")
	if o.IsSet("tooz_prefix") && !s.tooz {
		return nil, bad("option tooz_prefix needs compat=tooz")
	}
	if o.IsSet("protocol") && o.String("protocol") != s.scheme {
		return nil, bad("protocol=%s contradicts the scheme %s:// (use etcd3+%s://)", o.String("protocol"), cfg.Scheme, o.String("protocol"))
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
	tc, err := tlsConfig(o, s.scheme == "https")
	if err != nil {
		return nil, bad("%w", err)
	}
	s.tls = tc
	return s, nil
}

// tlsConfig builds the TLS configuration of etcd3+https://, or nil for
// etcd3+http://, which takes no TLS option.
func tlsConfig(o driver.Values, on bool) (*tls.Config, error) {
	ca, cert, key := o.String("ca_cert"), o.String("cert_cert"), o.String("cert_key")
	if !on {
		if ca != "" || cert != "" || key != "" {
			return nil, errors.New("ca_cert, cert_cert and cert_key need TLS: use etcd3+https://")
		}
		return nil, nil
	}
	return netopt.LoadTLS(ca, cert, key)
}
