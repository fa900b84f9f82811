package mysqlbackend

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/baton-go/baton/backend/driver"
)

// The option keys.
const (
	optNamespace       = "namespace"
	optTablePrefix     = "table_prefix"
	optTimeout         = "timeout"
	optConnectTimeout  = "connect_timeout"
	optReadTimeout     = "read_timeout"
	optWriteTimeout    = "write_timeout"
	optPoolSize        = "pool_size"
	optUnixSocket      = "unix_socket"
	optSSLCA           = "ssl_ca"
	optSSLCAPath       = "ssl_capath"
	optSSLCert         = "ssl_cert"
	optSSLKey          = "ssl_key"
	optSSLCipher       = "ssl_cipher"
	optSSLVerifyMode   = "ssl_verify_mode"
	optSSLCheckHost    = "ssl_check_hostname"
	defaultPort        = "3306"
	defaultTablePrefix = "baton"
)

func optionSpecs() []driver.OptionSpec {
	return []driver.OptionSpec{
		driver.CompatOption(compatDoc),
		{Key: optNamespace, Type: driver.String, Default: "baton",
			Doc: "Isolates this application's groups, members and locks from others using the same tables (at most 255 bytes)."},
		{Key: optTablePrefix, Type: driver.String, Default: defaultTablePrefix,
			Doc: "Prefix of the tables the driver creates on first use (<prefix>_groups, <prefix>_members, <prefix>_locks, <prefix>_shared): letters, digits and '_', at most 32 characters."},
		{Key: optTimeout, Type: driver.Duration, Default: "10", Min: driver.MinValue(1),
			Doc: "Session timeout: the session connection's wait_timeout on the server (rounded up to whole seconds), so a member cut off from the server loses its locks and memberships after this long; the driver pings it every third of it and cancels every grant when a ping fails."},
		{Key: optConnectTimeout, Type: driver.Duration, Default: "10", Min: driver.MinValue(0),
			Doc: "Timeout of establishing a connection (PyMySQL's connect_timeout)."},
		{Key: optReadTimeout, Type: driver.Duration, Min: driver.MinValue(0),
			Doc: "I/O read timeout of pooled connections (PyMySQL's read_timeout); none by default. The session connection's pings are bounded by the timing model instead."},
		{Key: optWriteTimeout, Type: driver.Duration, Min: driver.MinValue(0),
			Doc: "I/O write timeout of every connection (PyMySQL's write_timeout); none by default."},
		{Key: optPoolSize, Type: driver.Int, Default: "8", Min: driver.MinValue(1),
			Doc: "Most connections of the pool serving group and member queries; blocked acquires each wait on a connection of a second pool of the same size."},
		{Key: optUnixSocket, Type: driver.String,
			Doc: "Connect through this Unix socket; the URL's host and port are then ignored, as in tooz."},
		{Key: optSSLCA, Type: driver.String, Doc: "PEM file of the certificate authorities that verify the server; enables TLS."},
		{Key: optSSLCAPath, Type: driver.String, Doc: "Directory of PEM files of certificate authorities (every *.pem, *.crt file); enables TLS."},
		{Key: optSSLCert, Type: driver.String, Doc: "PEM client certificate (with ssl_key); enables TLS."},
		{Key: optSSLKey, Type: driver.String, Secret: true, Doc: "PEM private key of ssl_cert."},
		{Key: optSSLCipher, Type: driver.String,
			Doc: "Colon-separated cipher suites allowed for TLS 1.2, by OpenSSL name (ECDHE-RSA-AES128-GCM-SHA256) or IANA name; enables TLS."},
		{Key: optSSLVerifyMode, Type: driver.String, Enum: []string{"none", "optional", "required", "false", "no", "0", "true", "yes", "1"},
			Doc: "Certificate verification, as PyMySQL's ssl_verify_mode: none (or false, no, 0) skips it; optional and required (or true, yes, 1) verify the server's chain (a server always presents one). Default: required when ssl_ca or ssl_capath is given, else none (PyMySQL verifies nothing with ssl_capath alone; baton does)."},
		{Key: optSSLCheckHost, Type: driver.Bool, Default: "true",
			Doc: "Check that the server certificate names the host (when the chain is verified)."},
	}
}

var tablePrefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// settings is everything Open needs, parsed and validated.
type settings struct {
	mysql       *mysql.Config
	namespace   string
	tablePrefix string
	sessionTTL  time.Duration
	waitTimeout int // seconds
	poolSize    int
}

// parseConfig turns the driver config into settings. Errors never carry
// the password.
func parseConfig(cfg *driver.Config) (*settings, error) {
	o := cfg.Options
	s := &settings{
		namespace:   o.String(optNamespace),
		tablePrefix: o.String(optTablePrefix),
		sessionTTL:  o.Duration(optTimeout),
		poolSize:    o.Int(optPoolSize),
	}
	if s.namespace == "" || len(s.namespace) > 255 {
		return nil, driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optNamespace, Reason: "must be 1 to 255 bytes"})
	}
	if !tablePrefixRE.MatchString(s.tablePrefix) {
		return nil, driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optTablePrefix, Reason: "must be 1 to 32 letters, digits or '_'"})
	}
	secs := math.Ceil(s.sessionTTL.Seconds())
	if secs > 31536000 {
		return nil, driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optTimeout, Reason: "must be at most one year"})
	}
	s.waitTimeout = int(secs)
	s.sessionTTL = time.Duration(secs) * time.Second

	mc := mysql.NewConfig()
	mc.User = cfg.Username
	mc.Passwd = cfg.Password
	mc.DBName = strings.TrimPrefix(cfg.Path, "/")
	if mc.DBName == "" || strings.Contains(mc.DBName, "/") {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "the URL must name one database as its path (mysql://host/dbname), got %q", cfg.Path)
	}
	if sock := o.String(optUnixSocket); sock != "" {
		mc.Net, mc.Addr = "unix", sock
	} else {
		if len(cfg.Hosts) > 1 {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "mysql:// takes one host, got %d", len(cfg.Hosts))
		}
		host := "localhost"
		if len(cfg.Hosts) == 1 && cfg.Hosts[0] != "" {
			host = cfg.Hosts[0]
		}
		mc.Net, mc.Addr = "tcp", withPort(host)
	}
	mc.Timeout = o.Duration(optConnectTimeout)
	mc.ReadTimeout = o.Duration(optReadTimeout)
	mc.WriteTimeout = o.Duration(optWriteTimeout)
	mc.ClientFoundRows = true
	mc.InterpolateParams = true
	mc.ParseTime = false
	mc.Collation = "utf8mb4_bin"
	mc.Logger = nopLogger{}
	tc, err := tlsConfig(o, hostOnly(mc))
	if err != nil {
		return nil, err
	}
	mc.TLS = tc
	s.mysql = mc
	return s, nil
}

// withPort appends the default port to host when it has none.
func withPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if strings.Contains(host, "]:") {
			return host
		}
		return host + ":" + defaultPort
	}
	if strings.Count(host, ":") == 1 {
		return host
	}
	if strings.Contains(host, ":") { // bare IPv6
		return "[" + host + "]:" + defaultPort
	}
	return host + ":" + defaultPort
}

// hostOnly returns the server name TLS verifies.
func hostOnly(mc *mysql.Config) string {
	if mc.Net == "unix" {
		return "localhost"
	}
	h := mc.Addr
	if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return strings.Trim(h, "[]")
}

// tlsConfig builds the TLS configuration from tooz's ssl_* options; nil
// when none is given.
func tlsConfig(o driver.Values, serverName string) (*tls.Config, error) {
	given := false
	for _, k := range []string{optSSLCA, optSSLCAPath, optSSLCert, optSSLKey, optSSLCipher, optSSLVerifyMode} {
		given = given || o.IsSet(k)
	}
	if !given {
		return nil, nil
	}
	bad := func(key, reason string, args ...any) error {
		return driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: key, Reason: fmt.Sprintf(reason, args...)})
	}
	tc := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	var pool *x509.CertPool
	addPEM := func(key, file string) error {
		pem, err := os.ReadFile(file)
		if err != nil {
			return driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: key, Reason: err.Error(), Err: err})
		}
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return bad(key, "no PEM certificate in %s", file)
		}
		return nil
	}
	if f := o.String(optSSLCA); f != "" {
		if err := addPEM(optSSLCA, f); err != nil {
			return nil, err
		}
	}
	if d := o.String(optSSLCAPath); d != "" {
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, bad(optSSLCAPath, "%v", err)
		}
		n := 0
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if e.IsDir() || (ext != ".pem" && ext != ".crt" && ext != ".0") {
				continue
			}
			if err := addPEM(optSSLCAPath, filepath.Join(d, e.Name())); err != nil {
				return nil, err
			}
			n++
		}
		if n == 0 {
			return nil, bad(optSSLCAPath, "no certificate file (*.pem, *.crt) in %s", d)
		}
	}
	tc.RootCAs = pool
	cert, key := o.String(optSSLCert), o.String(optSSLKey)
	switch {
	case cert != "" && key != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			// The key file's content is never echoed: name the files only.
			return nil, bad(optSSLCert, "cannot load the pair %s / ssl_key: %s", cert, scrubTLSError(err))
		}
		tc.Certificates = []tls.Certificate{pair}
	case cert != "":
		pair, err := tls.LoadX509KeyPair(cert, cert)
		if err != nil {
			return nil, bad(optSSLKey, "ssl_cert without ssl_key needs the key in the same file: %s", scrubTLSError(err))
		}
		tc.Certificates = []tls.Certificate{pair}
	case key != "":
		return nil, bad(optSSLKey, "given without ssl_cert")
	}
	if c := o.String(optSSLCipher); c != "" {
		ids, err := cipherSuites(c)
		if err != nil {
			return nil, bad(optSSLCipher, "%v", err)
		}
		tc.CipherSuites = ids
	}
	mode := o.String(optSSLVerifyMode)
	switch mode {
	case "false", "no", "0":
		mode = "none"
	case "true", "yes", "1":
		mode = "required"
	}
	if mode == "" {
		mode = "none"
		if pool != nil {
			mode = "required"
		}
	}
	checkHost := o.Bool(optSSLCheckHost)
	switch {
	case mode == "none":
		tc.InsecureSkipVerify = true
	case !checkHost:
		// Verify the chain but not the name.
		tc.InsecureSkipVerify = true
		roots := pool
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		}
	}
	return tc, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("tls: the server presented no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}

// scrubTLSError keeps the kind of a key-pair error without echoing file
// contents.
func scrubTLSError(err error) string {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// cipherSuites maps a colon-separated list of OpenSSL or IANA cipher
// names to Go's suite IDs.
func cipherSuites(list string) ([]uint16, error) {
	byName := map[string]uint16{}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		byName[s.Name] = s.ID
		byName[opensslName(s.Name)] = s.ID
	}
	var ids []uint16
	for _, n := range strings.Split(list, ":") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		id, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown or unsupported cipher %q", n)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("names no cipher")
	}
	return ids, nil
}

// opensslName derives OpenSSL's name of a TLS 1.2 suite from its IANA
// name: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 → ECDHE-RSA-AES128-GCM-SHA256.
func opensslName(iana string) string {
	s := strings.TrimPrefix(iana, "TLS_")
	kx, enc, ok := strings.Cut(s, "_WITH_")
	if !ok {
		return iana
	}
	enc = strings.NewReplacer("AES_128", "AES128", "AES_256", "AES256", "CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305", "3DES_EDE_CBC_SHA", "DES-CBC3-SHA", "RC4_128_SHA", "RC4-SHA").Replace(enc)
	enc = strings.ReplaceAll(enc, "_CBC", "")
	name := strings.ReplaceAll(kx, "_", "-") + "-" + strings.ReplaceAll(enc, "_", "-")
	return strings.TrimPrefix(name, "RSA-")
}

// nopLogger silences go-sql-driver's own logging (it would print to
// stderr); errors reach callers instead.
type nopLogger struct{}

func (nopLogger) Print(...any) {}
