package pgbackend

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend/driver"
)

// Defaults shared by the option table and the code.
const (
	defaultNamespace = "baton"
	defaultPort      = 5432
)

// optionSpecs returns the option table of the postgresql:// and
// postgres:// schemes: the single source of truth for parsing, validation
// and docs.
func optionSpecs() []driver.OptionSpec {
	return []driver.OptionSpec{
		{Key: "host", Type: driver.String,
			Doc: "Server host name, address, or the directory of its unix socket (a value starting with /). Takes precedence over the URL's hosts, as in tooz."},
		{Key: "port", Type: driver.Int, Min: driver.MinValue(1), DefaultDoc: "5432",
			Doc: "Server port (also the socket file's number). Takes precedence over the ports of the URL's hosts, as in tooz."},
		{Key: "dbname", Type: driver.String, DefaultDoc: "the URL's path, else the user name",
			Doc: "Database to connect to. Takes precedence over the URL's path, as in tooz."},
		{Key: "user", Type: driver.String, DefaultDoc: "the URL's user, else the OS user",
			Doc: "Role to connect as, when the URL has no user information."},
		{Key: "namespace", Type: driver.String, Default: defaultNamespace,
			Doc: "PostgreSQL schema holding baton's tables; created on first use (with the CREATE privilege on the database), or used as it is when it exists (the CREATE privilege on the schema then suffices)."},
		{Key: "timeout", Type: driver.Duration, Default: "10", Min: driver.MinValue(0.05),
			Doc: "Session timeout: the server ends a member's session (releasing its locks and memberships) after this long without hearing from it (idle_session_timeout on the session connection), and the member gives its grants up before that."},
		{Key: "connect_timeout", Type: driver.Duration, DefaultDoc: "none (the Open context)",
			Doc: "Bound on each connection attempt, as libpq's connect_timeout (a bare number is seconds)."},
		{Key: "pool_size", Type: driver.Int, Default: "4", Min: driver.MinValue(1),
			Doc: "Most connections the Backend opens for its requests, besides its session and listener connections."},
		{Key: "sslmode", Type: driver.String, Default: "prefer", Enum: []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
			Doc: "libpq's TLS mode: disable, allow and prefer may fall back to plain TCP; require encrypts without checking the certificate (unless sslrootcert is given); verify-ca checks the chain; verify-full also the host name."},
		{Key: "sslrootcert", Type: driver.String,
			Doc: "PEM file of the certificate authorities for verify-ca and verify-full."},
		{Key: "sslcert", Type: driver.String,
			Doc: "PEM client certificate for TLS client authentication; needs sslkey."},
		{Key: "sslkey", Type: driver.String,
			Doc: "PEM private key of sslcert."},
		{Key: "sslpassword", Type: driver.String, Secret: true,
			Doc: "Password of an encrypted sslkey."},
		{Key: "sslsni", Type: driver.Bool, Default: "true",
			Doc: "Send the host name in the TLS handshake (SNI)."},
		{Key: "application_name", Type: driver.String, Default: "baton",
			Doc: "application_name of the driver's connections, shown in pg_stat_activity."},
		{Key: "target_session_attrs", Type: driver.String, Default: "any", Enum: []string{"any", "read-write", "read-only", "primary", "standby", "prefer-standby"},
			Doc: "With several hosts, which server to settle on, as in libpq. baton writes, so use any, read-write or primary."},
		driver.CompatOption(compatDoc),
	}
}

// settings is a validated configuration, derived once from driver.Config.
type settings struct {
	conn      *pgx.ConnConfig
	schema    string
	ttl       time.Duration
	poolSize  int
	redacted  string
	connectTO time.Duration
}

// parseSettings validates cfg and derives the settings. Errors are coded
// CodeInvalidArgument and never contain the password.
func parseSettings(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{schema: o.String("namespace"), ttl: o.Duration("timeout"), poolSize: o.Int("pool_size"),
		redacted: cfg.Redacted, connectTO: o.Duration("connect_timeout")}
	if s.schema == "" {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "namespace is empty")
	}
	if len(s.schema) > 63 || strings.ContainsRune(s.schema, 0) {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "namespace %q: a schema name has at most 63 bytes and no NUL", s.schema)
	}
	if strings.HasPrefix(s.schema, "pg_") {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "namespace %q: schema names starting with pg_ are reserved by PostgreSQL", s.schema)
	}
	if s.ttl > 24*time.Hour {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "timeout %v is too long (at most 24h)", s.ttl)
	}
	if o.IsSet("port") && o.Int("port") > 65535 {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "port %d is not a number from 1 to 65535", o.Int("port"))
	}
	if (o.String("sslcert") == "") != (o.String("sslkey") == "") {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "sslcert and sslkey go together")
	}
	if o.IsSet("sslpassword") && o.String("sslkey") == "" {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "sslpassword needs sslkey")
	}
	if cfg.Username != "" && o.IsSet("user") {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "the user is given twice: in the URL and as user=")
	}

	hosts, ports, err := hostList(cfg.Hosts, o)
	if err != nil {
		return nil, driver.Wrap(driver.CodeInvalidArgument, err)
	}
	dbname := strings.TrimPrefix(cfg.Path, "/")
	if o.IsSet("dbname") {
		dbname = o.String("dbname")
	}
	if strings.Contains(dbname, "/") {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "database name %q contains '/': the URL's path is the database name", dbname)
	}
	user := cfg.Username
	if user == "" {
		user = o.String("user")
	}

	// A keyword/value string for pgx without the password (so that no
	// parse error can show it); the password is set on the parsed config.
	kv := map[string]string{
		"sslmode":              o.String("sslmode"),
		"application_name":     o.String("application_name"),
		"target_session_attrs": o.String("target_session_attrs"),
	}
	if len(hosts) > 0 {
		kv["host"] = strings.Join(hosts, ",")
		kv["port"] = strings.Join(ports, ",")
	} else if o.IsSet("port") {
		kv["port"] = strconv.Itoa(o.Int("port"))
	}
	if dbname != "" {
		kv["dbname"] = dbname
	}
	if user != "" {
		kv["user"] = user
	}
	for _, k := range []string{"sslrootcert", "sslcert", "sslkey"} {
		if v := o.String(k); v != "" {
			kv[k] = v
		}
	}
	if !o.Bool("sslsni") {
		kv["sslsni"] = "0"
	}
	if s.connectTO > 0 {
		kv["connect_timeout"] = strconv.Itoa(max(1, int((s.connectTO+time.Second-1)/time.Second)))
	}
	if o.IsSet("sslpassword") {
		kv["sslpassword"] = o.String("sslpassword")
	}
	var b strings.Builder
	for _, k := range []string{"host", "port", "dbname", "user", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslsni", "application_name", "target_session_attrs", "connect_timeout"} {
		if v, ok := kv[k]; ok {
			fmt.Fprintf(&b, "%s='%s' ", k, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
		}
	}
	cc, err := pgx.ParseConfig(b.String())
	if err != nil {
		msg := redactParseError(err, o.String("sslpassword"))
		if errors.Is(err, fs.ErrNotExist) {
			// The message is redacted text; keep the missing file
			// matchable as errors.Is(err, fs.ErrNotExist).
			return nil, driver.Errorf(driver.CodeInvalidArgument, "connection settings: %s (%w)", msg, fs.ErrNotExist)
		}
		return nil, driver.Errorf(driver.CodeInvalidArgument, "connection settings: %s", msg)
	}
	if s.connectTO > 0 {
		cc.ConnectTimeout = s.connectTO
	}
	if cfg.PasswordSet {
		cc.Password = cfg.Password
	}
	s.conn = cc
	return s, nil
}

// redactParseError returns err's message without the secret.
func redactParseError(err error, secret string) string {
	msg := err.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	return msg
}

// hostList merges the URL's hosts with the host and port options (which
// take precedence, as in tooz) into parallel host and port lists.
func hostList(urlHosts []string, o driver.Values) (hosts, ports []string, err error) {
	portOpt := ""
	if o.IsSet("port") {
		portOpt = strconv.Itoa(o.Int("port"))
	}
	if o.IsSet("host") {
		h := o.String("host")
		if h == "" {
			return nil, nil, fmt.Errorf("host= is empty")
		}
		for _, one := range strings.Split(h, ",") {
			if one == "" {
				return nil, nil, fmt.Errorf("empty host in host=%q", h)
			}
			hosts = append(hosts, one)
			ports = append(ports, portOr(portOpt, ""))
		}
		return hosts, ports, nil
	}
	for _, h := range urlHosts {
		host, port, err := splitHost(h)
		if err != nil {
			return nil, nil, err
		}
		hosts = append(hosts, host)
		ports = append(ports, portOr(portOpt, port))
	}
	return hosts, ports, nil
}

func portOr(opt, fromURL string) string {
	switch {
	case opt != "":
		return opt
	case fromURL != "":
		return fromURL
	}
	return strconv.Itoa(defaultPort)
}

// splitHost splits "host", "host:port" or "[v6]:port".
func splitHost(h string) (host, port string, err error) {
	if hh, p, err := net.SplitHostPort(h); err == nil {
		if hh == "" {
			return "", "", fmt.Errorf("host %q has no host name", h)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, p)
		}
		return hh, p, nil
	}
	host = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if host == "" || strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
		return "", "", fmt.Errorf("malformed host %q", h)
	}
	return host, "", nil
}
