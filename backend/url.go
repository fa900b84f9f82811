package backend

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/baton-go/baton/backend/driver"
)

// Config is a parsed, validated connection string: the driver it selects
// and every option typed, defaults applied. It is inspectable (see
// Explain) and immutable once returned.
type Config struct {
	Driver      driver.Info
	Scheme      string
	Hosts       []string
	Username    string
	Password    string
	PasswordSet bool
	Path        string
	Options     driver.Values
	// Redacted is the connection string with the password and secret
	// options replaced by "xxxxx"; safe for logs.
	Redacted string
}

// String returns the redacted connection string.
func (c *Config) String() string { return c.Redacted }

// ParseURL parses a connection string of the form
//
//	scheme://[user[:password]@]host[:port][,host2[:port2]...][/path][?key=value&...]
//
// selects the registered driver for the scheme and checks every query key
// against the driver's option table. Errors are coded invalid argument and
// never contain the password or a secret option's value.
func ParseURL(raw string) (*Config, error) {
	const op = "parse url"
	i := strings.Index(raw, "://")
	if i <= 0 {
		return nil, newError(driver.CodeInvalidArgument, op, errors.New("missing scheme:// prefix"))
	}
	scheme := strings.ToLower(raw[:i])
	if !validScheme(scheme) {
		if strings.ContainsAny(scheme, ":@") { // no scheme: this may be user information
			return nil, newError(driver.CodeInvalidArgument, op, errors.New("missing or invalid scheme before ://"))
		}
		return nil, newError(driver.CodeInvalidArgument, op, fmt.Errorf("invalid scheme %q", scheme))
	}
	info, err := lookup(scheme)
	if err != nil {
		return nil, err
	}
	rest := raw[i+3:]
	// The authority ends at the first '/', '?' or '#'. An '@' after that
	// point means a '/', '?' or '#' was left unescaped in the user
	// information (or an '@' in the path or query): either way the input
	// cannot be split as the user means it without guessing, and any part
	// of it may be a password, so the error echoes none of it.
	if end := strings.IndexAny(rest, "/?#"); end >= 0 && strings.Contains(rest[end:], "@") {
		return nil, newError(driver.CodeInvalidArgument, op, errors.New(
			"'/', '?' and '#' in a user name or password must be percent-encoded (%2F, %3F, %23), "+
				"and so must an '@' in the path or query (%40)"))
	}
	if strings.ContainsAny(rest, "#") {
		return nil, newError(driver.CodeInvalidArgument, op, errors.New("fragments (#) are not allowed"))
	}
	query := ""
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, query = rest[:q], rest[q+1:]
	}
	authority, path := rest, ""
	if s := strings.IndexByte(rest, '/'); s >= 0 {
		authority, path = rest[:s], rest[s:]
	}
	cfg := &Config{Driver: *info, Scheme: scheme}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		if cfg.Username, err = url.PathUnescape(user); err != nil {
			return nil, newError(driver.CodeInvalidArgument, op, errors.New("malformed user name escape"))
		}
		if hasPass {
			if cfg.Password, err = url.PathUnescape(pass); err != nil {
				return nil, newError(driver.CodeInvalidArgument, op, errors.New("malformed password escape"))
			}
			cfg.PasswordSet = true
		}
	}
	if authority != "" {
		for _, h := range strings.Split(authority, ",") {
			if err := checkHost(h); err != nil {
				return nil, newError(driver.CodeInvalidArgument, op, err)
			}
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	if cfg.Path, err = url.PathUnescape(path); err != nil {
		return nil, newError(driver.CodeInvalidArgument, op, errors.New("malformed path escape"))
	}
	q, err := parseQuery(query)
	if err != nil {
		return nil, newError(driver.CodeInvalidArgument, op, err)
	}
	cfg.Options, err = driver.ParseOptions(info.Options, q)
	if err != nil {
		return nil, newError(driver.CodeInvalidArgument, fmt.Sprintf("%s %s", op, redact(scheme, cfg, query, info)), err)
	}
	cfg.Redacted = redact(scheme, cfg, query, info)
	if info.Check != nil {
		// What Open would refuse before contacting a server, refused
		// here: the same error from Open and from `baton url explain`.
		if err := info.Check(cfg.driverConfig()); err != nil {
			return nil, wrap("open "+cfg.Redacted, err)
		}
	}
	return cfg, nil
}

// driverConfig returns the driver's view of the configuration, without
// the Backend's own settings (member ID, logger, observer, clock).
func (c *Config) driverConfig() *driver.Config {
	return &driver.Config{
		Scheme: c.Scheme, Hosts: append([]string(nil), c.Hosts...),
		Username: c.Username, Password: c.Password, PasswordSet: c.PasswordSet,
		Path: c.Path, Options: c.Options, Redacted: c.Redacted,
	}
}

func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// checkHost validates one "host[:port]" item of the authority.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host in host list")
	}
	if strings.ContainsAny(h, " \t\r\n") {
		return fmt.Errorf("host %q contains whitespace", h)
	}
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Errorf("host %q: unclosed '['", h)
		}
		host, port = h[1:end], h[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return fmt.Errorf("host %q: junk after ']'", h)
		}
		port = strings.TrimPrefix(port, ":")
	} else if c := strings.LastIndexByte(h, ':'); c >= 0 {
		host, port = h[:c], h[c+1:]
	}
	switch {
	case host == "" && port != "":
		return fmt.Errorf("host %q has a port but no host", h)
	case host == "":
		return fmt.Errorf("host %q is empty", h)
	case !strings.HasPrefix(h, "[") && strings.Contains(host, ":"):
		return fmt.Errorf("host %q: an IPv6 address must be written in brackets, as [::1]:port", h)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, port)
		}
	}
	return nil
}

// parseQuery is url.ParseQuery without echoing values in errors and with
// blank values kept (and then rejected or accepted by the option table).
func parseQuery(q string) (url.Values, error) {
	out := url.Values{}
	for q != "" {
		var part string
		part, q, _ = strings.Cut(q, "&")
		if part == "" {
			continue
		}
		if strings.Contains(part, ";") {
			return nil, errors.New("';' is not a query separator; use '&'")
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("malformed escape in query key %q", k)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("malformed escape in the value of %q", key)
		}
		out[key] = append(out[key], val)
	}
	return out, nil
}

// redact rebuilds the connection string with secrets replaced.
func redact(scheme string, cfg *Config, query string, info *driver.Info) string {
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if cfg.Username != "" || cfg.PasswordSet {
		b.WriteString(url.User(cfg.Username).String())
		if cfg.PasswordSet {
			b.WriteString(":xxxxx")
		}
		b.WriteByte('@')
	}
	b.WriteString(strings.Join(cfg.Hosts, ","))
	b.WriteString((&url.URL{Path: cfg.Path}).EscapedPath())
	if query == "" {
		return b.String()
	}
	// Secret options are hidden, and so are keys the table does not know:
	// such a key is an error anyway, and it may be a misspelt secret.
	secret := map[string]bool{}
	known := map[string]bool{}
	for _, s := range info.Options {
		known[s.Key] = true
		if s.Secret {
			secret[s.Key] = true
		}
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, hasVal := strings.Cut(p, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k
		}
		if hasVal && (secret[key] || !known[key] || isSecretName(key)) {
			parts[i] = k + "=xxxxx"
		}
	}
	b.WriteByte('?')
	b.WriteString(strings.Join(parts, "&"))
	return b.String()
}

// isSecretName guards against secrets under keys whose name says so even
// when the table does not mark them secret.
func isSecretName(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"pass", "secret", "token", "pwd", "auth"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
