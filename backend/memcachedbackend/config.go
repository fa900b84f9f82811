package memcachedbackend

import (
	"math"
	"net"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// maxTTL is the longest relative expiry memcached accepts: a larger
// number is read as an absolute Unix time.
const maxTTL = 30 * 24 * time.Hour

// defaultIdle is how many idle connections per server are kept when
// max_pool_size is 0 (no limit).
const defaultIdle = 8

// settings is a connection string resolved into what the driver needs.
type settings struct {
	servers                                       []string // host:port
	membershipTimeout, lockTimeout, leaderTimeout time.Duration
	socketTimeout                                 time.Duration
	maxPool                                       int
	namespace                                     string
}

// parseSettings checks a parsed connection string against what the option
// table cannot express and resolves defaults that depend on other options.
func parseSettings(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	bad := func(format string, args ...any) error {
		return driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	timeout := o.Duration("timeout")
	or := func(key string, d time.Duration) time.Duration {
		if o.IsSet(key) {
			return o.Duration(key)
		}
		return d
	}
	s := &settings{
		membershipTimeout: or("membership_timeout", timeout),
		lockTimeout:       or("lock_timeout", timeout),
		leaderTimeout:     or("leader_timeout", timeout),
		maxPool:           o.Int("max_pool_size"),
		namespace:         o.String("namespace"),
	}
	s.socketTimeout = or("socket_timeout", min(timeout, s.membershipTimeout/3))
	for _, kv := range []struct {
		key string
		d   time.Duration
	}{{"timeout", timeout}, {"membership_timeout", s.membershipTimeout}, {"lock_timeout", s.lockTimeout}, {"leader_timeout", s.leaderTimeout}} {
		if kv.d > maxTTL {
			return nil, bad("%s %v is longer than memcached's 30 days", kv.key, kv.d)
		}
	}
	if !validNamespace(s.namespace) {
		return nil, bad("namespace %q: want 1 to 64 characters of [A-Za-z0-9._-]", s.namespace)
	}
	if cfg.Path != "" && cfg.Path != "/" {
		return nil, bad("memcached:// takes no path (got %q)", cfg.Path)
	}
	if cfg.Username != "" || cfg.PasswordSet {
		return nil, bad("memcached:// takes no user information (memcached's text protocol has no authentication)")
	}
	hosts := cfg.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		addr, err := hostPort(h)
		if err != nil {
			return nil, bad("host %q: %v", h, err)
		}
		if seen[addr] {
			return nil, bad("host %q is listed twice", h)
		}
		seen[addr] = true
		s.servers = append(s.servers, addr)
	}
	return s, nil
}

// hostPort adds the default port to a host.
func hostPort(h string) (string, error) {
	if h == "" {
		return net.JoinHostPort("localhost", defaultPort), nil
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		if host == "" {
			host = "localhost"
		}
		return net.JoinHostPort(host, port), nil
	}
	if h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return net.JoinHostPort(h, defaultPort), nil
}

// keyTTL is the expiry in whole seconds memcached is given for a lease of
// d: memcached's clock ticks once a second, so an item set with expiry n
// lives between n-1 and n seconds; one more second keeps it alive for at
// least d.
func keyTTL(d time.Duration) int32 {
	secs := math.Ceil(d.Seconds()) + 1
	if secs > maxTTL.Seconds() {
		secs = maxTTL.Seconds()
	}
	return int32(secs)
}
