package redisbackend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend/driver"
)

// settings is a connection string resolved into what the driver needs.
type settings struct {
	network string // "tcp" or "unix" (ignored with sentinels)
	addr    string // host:port or socket path; empty with sentinels

	master    string   // sentinel master name; empty without sentinels
	sentinels []string // host:port, URL hosts first

	username, password                 string
	sentinelUsername, sentinelPassword string
	db                                 int

	ssl, sentinelSSL               bool
	certFile, keyFile, caFile      string
	socketTimeout, connectTimeout  time.Duration
	healthCheck                    time.Duration
	keepAlive, retryOnTimeout      bool
	membershipTimeout, lockTimeout time.Duration
	namespace                      string
}

// parseSettings checks a parsed connection string against everything the
// option table cannot express (host forms, conflicting options) and
// resolves defaults that depend on other options. It reads no files.
func parseSettings(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	bad := func(format string, args ...any) error {
		return driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	timeout := o.Duration("timeout")
	s := &settings{
		username:          cfg.Username,
		password:          cfg.Password,
		sentinelUsername:  o.String("sentinel_username"),
		sentinelPassword:  o.String("sentinel_password"),
		db:                o.Int("db"),
		ssl:               o.Bool("ssl"),
		sentinelSSL:       o.Bool("sentinel_ssl"),
		certFile:          o.String("ssl_certfile"),
		keyFile:           o.String("ssl_keyfile"),
		caFile:            o.String("ssl_ca_certs"),
		socketTimeout:     durationOr(o, "socket_timeout", timeout),
		healthCheck:       o.Duration("health_check_interval"),
		keepAlive:         o.Bool("socket_keepalive"),
		retryOnTimeout:    o.Bool("retry_on_timeout"),
		membershipTimeout: durationOr(o, "membership_timeout", timeout),
		lockTimeout:       durationOr(o, "lock_timeout", timeout),
		namespace:         o.String("namespace"),
	}
	s.connectTimeout = durationOr(o, "socket_connect_timeout", s.socketTimeout)
	if s.namespace == "" {
		return nil, bad("namespace is empty")
	}
	if enc := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(o.String("encoding"))); enc != "utf8" {
		return nil, bad("encoding %q is not supported: names are stored as UTF-8", o.String("encoding"))
	}
	if cfg.Scheme == schemeRediss {
		if o.IsSet("ssl") && !s.ssl {
			return nil, bad("ssl=false contradicts the rediss:// scheme")
		}
		s.ssl = true
	}
	if s.keyFile != "" && s.certFile == "" {
		return nil, bad("ssl_keyfile needs ssl_certfile")
	}
	if (s.certFile != "" || s.caFile != "") && !s.ssl && !s.sentinelSSL {
		return nil, bad("ssl_certfile, ssl_keyfile and ssl_ca_certs need ssl=true or sentinel_ssl=true")
	}
	s.master = o.String("sentinel")
	fallbacks := o.Strings("sentinel_fallback")
	if s.master == "" {
		for _, k := range []string{"sentinel_fallback", "sentinel_username", "sentinel_password", "sentinel_ssl"} {
			if o.IsSet(k) {
				return nil, bad("%s needs sentinel=MASTER", k)
			}
		}
	}
	switch {
	case s.master != "":
		if len(cfg.Hosts) == 0 {
			return nil, bad("sentinel=%s needs the address of a sentinel as the URL's host", s.master)
		}
		if cfg.Path != "" && cfg.Path != "/" {
			return nil, bad("a sentinel URL takes no path (use db=N)")
		}
		for _, h := range append(append([]string(nil), cfg.Hosts...), fallbacks...) {
			a, err := hostPort(h, defaultSentinel)
			if err != nil {
				return nil, bad("sentinel %q: %v", h, err)
			}
			s.sentinels = append(s.sentinels, a)
		}
	case len(cfg.Hosts) > 1:
		return nil, bad("%d hosts given; a Redis server has one address (for sentinels, add sentinel=MASTER)", len(cfg.Hosts))
	case len(cfg.Hosts) == 1:
		a, err := hostPort(cfg.Hosts[0], defaultPort)
		if err != nil {
			return nil, bad("host %q: %v", cfg.Hosts[0], err)
		}
		s.network, s.addr = "tcp", a
		if p := strings.TrimPrefix(cfg.Path, "/"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return nil, bad("path %q: with a host, the path can only be a database number", cfg.Path)
			}
			if o.IsSet("db") && n != s.db {
				return nil, bad("database %d in the path contradicts db=%d", n, s.db)
			}
			s.db = n
		}
	default:
		if cfg.Path == "" || cfg.Path == "/" {
			return nil, bad("no host and no unix socket path")
		}
		if s.ssl {
			return nil, bad("TLS over a unix socket is not supported")
		}
		s.network, s.addr = "unix", cfg.Path
	}
	return s, nil
}

func durationOr(o driver.Values, key string, def time.Duration) time.Duration {
	if o.IsSet(key) {
		return o.Duration(key)
	}
	return def
}

// hostPort normalises "host", "host:port", "[v6]" or "[v6]:port".
func hostPort(h, defPort string) (string, error) {
	host, port := h, ""
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", errors.New("unclosed '['")
		}
		host = h[1:end]
		rest := h[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return "", errors.New("junk after ']'")
			}
			port = rest[1:]
		}
	case strings.Count(h, ":") > 1:
		return "", errors.New("an IPv6 address must be written in brackets")
	default:
		host, port, _ = strings.Cut(h, ":")
		if strings.Contains(h, ":") && port == "" {
			return "", errors.New("empty port")
		}
	}
	if host == "" {
		return "", errors.New("empty host")
	}
	if port == "" {
		port = defPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

// tlsConfig loads the certificate files; it returns nil when on is false.
func (s *settings) tlsConfig(on bool) (*tls.Config, error) {
	if !on {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "ssl_ca_certs: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "ssl_ca_certs: no PEM certificate in %s", s.caFile)
		}
	}
	if s.certFile != "" {
		key := s.keyFile
		if key == "" {
			key = s.certFile
		}
		cert, err := tls.LoadX509KeyPair(s.certFile, key)
		if err != nil {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "ssl_certfile/ssl_keyfile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// dialer opens a connection with the configured timeouts, keep-alive and
// TLS. isSentinel tells a sentinel's address from a Redis server's, for
// sentinel_ssl.
type dialer struct {
	connectTimeout   time.Duration
	keepAlive        bool
	dataTLS, sentTLS *tls.Config
	mu               sync.RWMutex
	sentinels        map[string]bool
	lastErr          error // the last dial that failed, for Open's error
}

// lastDialError returns the error of the last dial that failed, if any.
func (d *dialer) lastDialError() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.lastErr
}

func (d *dialer) isSentinel(addr string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.sentinels[addr]
}

func (d *dialer) addSentinels(addrs []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range addrs {
		d.sentinels[a] = true
	}
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.connectTimeout, KeepAlive: -1}
	if d.keepAlive {
		nd.KeepAlive = 0
		nd.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}
	}
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > d.connectTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.connectTimeout)
		defer cancel()
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		d.mu.Lock()
		d.lastErr = err
		d.mu.Unlock()
		return nil, err
	}
	cfg := d.dataTLS
	if network == "tcp" && d.isSentinel(addr) {
		cfg = d.sentTLS
	}
	if cfg == nil {
		return c, nil
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// newClient builds the go-redis client: a plain client or, with sentinels,
// a failover client that follows the master. Retries are the driver's own
// (see conn.run), so go-redis does not retry.
func (s *settings) newClient() (redis.UniversalClient, *dialer, error) {
	dataTLS, err := s.tlsConfig(s.ssl)
	if err != nil {
		return nil, nil, err
	}
	sentTLS, err := s.tlsConfig(s.sentinelSSL)
	if err != nil {
		return nil, nil, err
	}
	d := &dialer{connectTimeout: s.connectTimeout, keepAlive: s.keepAlive, dataTLS: dataTLS, sentTLS: sentTLS, sentinels: map[string]bool{}}
	d.addSentinels(s.sentinels)
	idle := time.Duration(0)
	if s.healthCheck > 0 {
		idle = s.healthCheck
	}
	if s.master != "" {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            s.master,
			SentinelAddrs:         s.sentinels,
			SentinelUsername:      s.sentinelUsername,
			SentinelPassword:      s.sentinelPassword,
			Dialer:                d.dial,
			Protocol:              2,
			Username:              s.username,
			Password:              s.password,
			DB:                    s.db,
			MaxRetries:            -1,
			DialTimeout:           s.connectTimeout,
			ReadTimeout:           s.socketTimeout,
			WriteTimeout:          s.socketTimeout,
			ContextTimeoutEnabled: true,
			ConnMaxIdleTime:       idle,
			DisableIdentity:       true,
		}), d, nil
	}
	return redis.NewClient(&redis.Options{
		Network:               s.network,
		Addr:                  s.addr,
		Dialer:                d.dial,
		Protocol:              2,
		Username:              s.username,
		Password:              s.password,
		DB:                    s.db,
		MaxRetries:            -1,
		DialTimeout:           s.connectTimeout,
		ReadTimeout:           s.socketTimeout,
		WriteTimeout:          s.socketTimeout,
		ContextTimeoutEnabled: true,
		ConnMaxIdleTime:       idle,
		DisableIdentity:       true,
	}), d, nil
}
