package etcd2backend

import (
	"crypto/tls"
	"slices"
	"time"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/netopt"
)

// tooz's defaults: localhost:2379.
const (
	defaultHost = "localhost"
	defaultPort = "2379"
)

// optionSpecs is the option table of etcd:// URLs: tooz's etcd options
// (protocol, timeout, lock_timeout) plus baton's.
var optionSpecs = slices.Concat(
	[]driver.OptionSpec{
		{
			Key: "timeout", Type: driver.Duration, Default: "30", Min: driver.MinValue(0.001),
			Doc: "Timeout of every HTTP request that does not wait (long-polls wait as long as their caller), and the default of lock_timeout and membership_timeout. tooz used it only as the default of lock_timeout, never as an HTTP timeout, so its requests could hang forever.",
		},
		{
			Key: "lock_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: driver.MinValue(1),
			Doc: "TTL of a lock key (rounded up to whole seconds, the v2 store's unit) when the acquisition names none: how long a crashed holder keeps a lock. The Backend refreshes it every third of it while the grant lives.",
		},
		{
			Key: "membership_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: driver.MinValue(1),
			Doc: "TTL of the session key and of member keys (rounded up to whole seconds): how long a crashed member stays in its groups. The Backend renews them every third of it.",
		},
		{
			Key: "namespace", Type: driver.String, Default: "baton",
			Doc: "Top directory of every key the driver writes.",
		},
	},
	netopt.TLSOptionSpecs(
		"http or https (TLS, with the system's CA pool unless ca_cert is given), as in tooz.",
		"PEM file of the CA certificates that sign the servers' certificates; turns TLS on."),
	[]driver.OptionSpec{
		driver.CompatOption(compatDoc),
		{
			Key: "tooz_lock_dir", Type: driver.String,
			Doc: "compat=tooz only: a key directory put before tooz's lock keys. tooz's etcd driver writes /<urlsafe-base64(name)> at the top of the keyspace (the default, no directory) and has no such option, so set it only to keep apart instances that share no lock with tooz processes (tests).",
		},
	},
)

// settings is a connection string resolved into what Open needs.
type settings struct {
	endpoints  []string // base URLs
	username   string
	password   string
	tls        *tls.Config
	namespace  string
	timeout    time.Duration
	lockTTL    time.Duration // whole seconds
	sessionTTL time.Duration // whole seconds
	tooz       bool          // compat=tooz: tooz's lock keys (tooz.go)
	toozDir    string        // tooz_lock_dir, "" or "/<dir>"
}

// resolve checks cfg and turns it into settings; errors are coded
// CodeInvalidArgument and never show the password.
func resolve(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{
		username:  cfg.Username,
		password:  cfg.Password,
		namespace: o.String("namespace"),
		timeout:   o.Duration("timeout"),
	}
	bad := func(format string, args ...any) error {
		return driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	if cfg.Path != "" && cfg.Path != "/" {
		return nil, bad("path %q is not used by etcd:// (use ?namespace= for a key prefix)", cfg.Path)
	}
	if s.namespace == "" {
		return nil, bad("option \"namespace\" is empty")
	}
	if err := s.resolveTooz(o); err != nil {
		return nil, bad("%w", err)
	}
	if cfg.Username == "" && cfg.PasswordSet {
		return nil, bad("a password needs a user name")
	}
	s.lockTTL, s.sessionTTL = s.timeout, s.timeout
	if o.IsSet("lock_timeout") {
		s.lockTTL = o.Duration("lock_timeout")
	}
	if o.IsSet("membership_timeout") {
		s.sessionTTL = o.Duration("membership_timeout")
	}
	s.lockTTL, s.sessionTTL = wholeSeconds(s.lockTTL), wholeSeconds(s.sessionTTL)
	tc, err := netopt.TLSConfig(o)
	if err != nil {
		return nil, bad("%w", err)
	}
	s.tls = tc
	scheme := "http"
	if tc != nil {
		scheme = "https"
	}
	hosts := cfg.Hosts
	if len(hosts) == 0 {
		hosts = []string{defaultHost}
	}
	for _, h := range hosts {
		ep, err := netopt.HostPort(h, defaultPort)
		if err != nil {
			return nil, bad("%w", err)
		}
		s.endpoints = append(s.endpoints, scheme+"://"+ep)
	}
	return s, nil
}
