package zkbackend

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Defaults shared by the option table and the code.
const (
	defaultHost      = "localhost:2181"
	defaultPort      = "2181"
	defaultNamespace = "baton"
)

// optionSpecs returns the option table of the zookeeper:// and kazoo://
// schemes: the single source of truth for parsing, validation and docs.
func optionSpecs() []driver.OptionSpec {
	return []driver.OptionSpec{
		{Key: "hosts", Type: driver.Strings,
			Doc: "More servers, appended to those of the URL's host list. A value may itself be a comma-separated list and, as in kazoo, end in a /chroot path under which everything is stored."},
		{Key: "timeout", Type: driver.Duration, Default: "10", Min: driver.MinValue(0.001),
			Doc: "Session timeout requested from the server (which clamps it to 2 to 20 ticks; the negotiated value is the session TTL). Also bounds the initial connection when the Open context has no deadline. tooz parsed it as an integer; here 2.5 and 2500ms work too."},
		{Key: "namespace", Type: driver.String, Default: defaultNamespace,
			Doc: "Root znode (below any chroot) under which groups and locks live; may be a path such as apps/billing. tooz's default was tooz, but baton's layout differs from tooz's, so baton does not share tooz's tree by default; with compat=tooz the default is tooz."},
		{Key: "randomize_hosts", Type: driver.Bool, Default: "true",
			Doc: "Shuffle the server list before each round of connection attempts; false tries the servers in the order given."},
		{Key: "handler", Type: driver.String, Default: "threading", Enum: []string{"threading", "eventlet"},
			Doc: "tooz's kazoo concurrency handler. Only threading applies (goroutines); eventlet is refused at open."},
		{Key: "connection_retry", Type: driver.String,
			Doc: "tooz passed this to kazoo, which ignored it when it came from a URL. Refused at open: use the connection_retry_* options."},
		{Key: "command_retry", Type: driver.String,
			Doc: "tooz passed this to kazoo, which ignored it when it came from a URL. Refused at open: use the command_retry_* options."},
		{Key: "connection_retry_attempts", Type: driver.Int, Default: "-1", Min: driver.MinValue(-1),
			Doc: "Connection attempts (TCP dial and handshake) allowed after the connection drops before the session is given up as lost; -1 means no limit."},
		{Key: "connection_retry_deadline", Type: driver.Duration, DefaultDoc: "none",
			Doc: "Give the session up as lost once the connection has been down this long (set it to the session timeout for Curator's behaviour). Unset, only the server decides, when the client reconnects: ZooKeeper keeps sessions alive through its own restarts and leader elections."},
		{Key: "connection_retry_delay", Type: driver.Duration, Default: "0.1",
			Doc: "Wait before the second connection attempt after a drop; the first is immediate."},
		{Key: "connection_retry_backoff", Type: driver.Float, Default: "2", Min: driver.MinValue(1),
			Doc: "Factor by which the wait between connection attempts grows."},
		{Key: "connection_retry_max_delay", Type: driver.Duration, Default: "1",
			Doc: "Longest wait between connection attempts (before a jitter of up to +25%)."},
		{Key: "command_retry_attempts", Type: driver.Int, Default: "5", Min: driver.MinValue(-1),
			Doc: "Times a request interrupted by a connection drop is tried again (once it is known to be safe) before failing as unavailable; -1 means until the call's context ends or the session is lost."},
		{Key: "command_retry_delay", Type: driver.Duration, Default: "0.1",
			Doc: "Wait before the first retry of an interrupted request."},
		{Key: "command_retry_backoff", Type: driver.Float, Default: "2", Min: driver.MinValue(1),
			Doc: "Factor by which the wait between retries of a request grows."},
		{Key: "command_retry_max_delay", Type: driver.Duration, Default: "1",
			Doc: "Longest wait between retries of a request (before a jitter of up to +25%)."},
		{Key: "use_ssl", Type: driver.Bool, Default: "false",
			Doc: "Connect with TLS (the server's secureClientPort)."},
		{Key: "verify_certs", Type: driver.Bool, Default: "true",
			Doc: "Verify the server's certificate chain and host name when use_ssl is on."},
		{Key: "ca", Type: driver.String,
			Doc: "PEM file of the certificate authorities that sign the server certificate; the system pool when unset."},
		{Key: "certfile", Type: driver.String,
			Doc: "PEM client certificate (chain) for TLS client authentication; needs keyfile."},
		{Key: "keyfile", Type: driver.String,
			Doc: "PEM private key of certfile."},
		{Key: "keyfile_password", Type: driver.String, Secret: true,
			Doc: "Password of an encrypted keyfile (legacy PEM encryption with a Proc-Type header)."},
		driver.CompatOption(compatDoc),
	}
}

// retryPolicy is a bounded exponential backoff.
type retryPolicy struct {
	attempts int           // -1: no limit
	deadline time.Duration // 0: none (connections only)
	delay    time.Duration
	backoff  float64
	maxDelay time.Duration
}

// wait returns the pause before retry number n (1-based), jitter excluded.
func (p retryPolicy) wait(n int) time.Duration {
	d := float64(p.delay)
	for i := 1; i < n && d < float64(p.maxDelay); i++ {
		d *= p.backoff
	}
	return min(time.Duration(d), p.maxDelay)
}

// allows reports whether retry number n (1-based) is allowed.
func (p retryPolicy) allows(n int) bool { return p.attempts < 0 || n <= p.attempts }

// tlsSettings are the TLS options.
type tlsSettings struct {
	verify                     bool
	ca, cert, key, keyPassword string
}

// settings is a validated configuration, derived once from driver.Config.
type settings struct {
	servers   []string // host:port, in the order given
	root      string   // chroot + "/" + namespace, e.g. "/baton"
	timeout   time.Duration
	randomize bool
	user      string
	password  string
	auth      bool
	conn, cmd retryPolicy
	tls       *tlsSettings
	tooz      bool // compat=tooz: tooz's layout (tooz.go)
}

// parseSettings validates cfg and derives the settings. Errors are coded
// CodeInvalidArgument, or CodeUnimplemented for what this driver cannot do.
func parseSettings(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{timeout: o.Duration("timeout"), randomize: o.Bool("randomize_hosts"), tooz: o.String("compat") == driver.CompatTooz}
	if s.timeout > time.Duration(1<<31-1)*time.Millisecond {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "timeout %v is too long", s.timeout)
	}
	if o.String("handler") == "eventlet" {
		return nil, driver.Errorf(driver.CodeUnimplemented, "handler=eventlet selects a Python (eventlet) concurrency model; Go uses goroutines: drop the option or use handler=threading")
	}
	for _, k := range []string{"connection_retry", "command_retry"} {
		if o.IsSet(k) {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "option %q is not read from URLs (kazoo ignored it there); use %s_attempts, %s_delay, %s_backoff and %s_max_delay", k, k, k, k, k)
		}
	}
	if cfg.Path != "" && cfg.Path != "/" {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "zookeeper URLs take no path (tooz ignored it): set the root znode with ?namespace=, or a chroot with ?hosts=host:port/chroot")
	}
	hosts := append(append([]string(nil), cfg.Hosts...), o.Strings("hosts")...)
	joined := strings.Join(hosts, ",")
	hostPart, chroot, hasChroot := strings.Cut(joined, "/")
	if hasChroot {
		chroot = "/" + chroot
	}
	for _, h := range strings.Split(hostPart, ",") {
		if h == "" {
			if joined == "" {
				break
			}
			return nil, driver.Errorf(driver.CodeInvalidArgument, "empty host in host list %q", joined)
		}
		addr, err := normalizeHost(h)
		if err != nil {
			return nil, driver.Wrap(driver.CodeInvalidArgument, err)
		}
		s.servers = append(s.servers, addr)
	}
	if len(s.servers) == 0 {
		s.servers = []string{defaultHost}
	}
	namespace := o.String("namespace")
	if s.tooz && !o.IsSet("namespace") {
		namespace = toozNamespace
	}
	root, err := rootPath(chroot, namespace)
	if err != nil {
		return nil, driver.Wrap(driver.CodeInvalidArgument, err)
	}
	s.root = root
	switch {
	case cfg.Username != "" && !cfg.PasswordSet:
		return nil, driver.Errorf(driver.CodeInvalidArgument, "digest authentication needs user:password; the URL has a user name only")
	case cfg.Username == "" && cfg.PasswordSet:
		return nil, driver.Errorf(driver.CodeInvalidArgument, "digest authentication needs user:password; the URL has a password only")
	case cfg.Username != "":
		s.auth, s.user, s.password = true, cfg.Username, cfg.Password
	}
	s.conn = retryPolicy{attempts: o.Int("connection_retry_attempts"), deadline: o.Duration("connection_retry_deadline"), delay: o.Duration("connection_retry_delay"),
		backoff: o.Float("connection_retry_backoff"), maxDelay: o.Duration("connection_retry_max_delay")}
	s.cmd = retryPolicy{attempts: o.Int("command_retry_attempts"), delay: o.Duration("command_retry_delay"),
		backoff: o.Float("command_retry_backoff"), maxDelay: o.Duration("command_retry_max_delay")}
	if o.Bool("use_ssl") {
		s.tls = &tlsSettings{verify: o.Bool("verify_certs"), ca: o.String("ca"), cert: o.String("certfile"),
			key: o.String("keyfile"), keyPassword: o.String("keyfile_password")}
		if (s.tls.cert == "") != (s.tls.key == "") {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "certfile and keyfile go together")
		}
	} else {
		for _, k := range []string{"ca", "certfile", "keyfile", "keyfile_password"} {
			if o.IsSet(k) {
				return nil, driver.Errorf(driver.CodeInvalidArgument, "option %q needs use_ssl=true", k)
			}
		}
	}
	return s, nil
}

// normalizeHost returns "host:port", adding ZooKeeper's default port.
func normalizeHost(h string) (string, error) {
	if host, port, err := net.SplitHostPort(h); err == nil {
		if host == "" {
			return "", fmt.Errorf("host %q has no host name", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, port)
		}
		return h, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if host == "" || strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
		return "", fmt.Errorf("malformed host %q", h)
	}
	return net.JoinHostPort(host, defaultPort), nil
}

// rootPath joins a chroot ("" or "/a/b", as kazoo reads it from the host
// list) and the namespace into the absolute root znode.
func rootPath(chroot, namespace string) (string, error) {
	var segs []string
	for _, part := range []struct{ what, p string }{{"chroot", chroot}, {"namespace", namespace}} {
		p := strings.Trim(part.p, "/")
		if p == "" {
			if part.what == "namespace" {
				return "", fmt.Errorf("namespace is empty")
			}
			continue
		}
		for _, seg := range strings.Split(p, "/") {
			if err := checkSegment(seg); err != nil {
				return "", fmt.Errorf("%s %q: %w", part.what, part.p, err)
			}
			segs = append(segs, seg)
		}
	}
	if segs[0] == "zookeeper" {
		return "", fmt.Errorf("the root znode /zookeeper is reserved by ZooKeeper; choose another namespace or chroot")
	}
	return "/" + strings.Join(segs, "/"), nil
}

// checkSegment validates one znode name written by the user (namespace or
// chroot); names chosen by programs are encoded instead (see names.go).
func checkSegment(seg string) error {
	switch seg {
	case "":
		return fmt.Errorf("empty path segment")
	case ".", "..":
		return fmt.Errorf("path segment %q is not allowed", seg)
	}
	for _, r := range seg {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0 {
			return fmt.Errorf("character %U is not allowed in a znode name", r)
		}
	}
	return nil
}
