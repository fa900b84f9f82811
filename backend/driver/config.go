package driver

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config is what a driver's Open receives: the parsed connection string
// plus what the backend decided.
type Config struct {
	// Scheme is the URL scheme as written (lower case), e.g. "kazoo".
	Scheme string
	// Hosts are the comma-separated hosts of the authority, in order, as
	// written ("host", "host:port", "[::1]:port"); empty when the URL has
	// no host.
	Hosts []string
	// Username and Password come from the URL's user information;
	// PasswordSet tells an empty password from none.
	Username    string
	Password    string
	PasswordSet bool
	// Path is the unescaped path, with its leading "/", or "".
	Path string
	// Options are the typed query options, defaults applied.
	Options Values
	// Redacted is the connection string with any password replaced; use it
	// in errors and logs.
	Redacted string

	// MemberID is this connection's member identity.
	MemberID string
	// Logger is never nil.
	Logger *zap.Logger
	// Observer receives session state changes; never nil.
	Observer SessionObserver
	// Clock is the Backend's time source; never nil. Lease.Sent and every
	// instant that feeds the timing model come from it.
	Clock Clock
}

// OpenFunc opens a connection. It blocks until the connection is usable
// (or ctx is done) and returns errors coded CodeUnavailable when the
// server cannot be reached, CodeInvalidArgument for a bad configuration.
type OpenFunc func(ctx context.Context, cfg *Config) (Conn, error)

// Info describes a driver to the registry.
type Info struct {
	// Name is a human name ("Redis").
	Name string
	// Schemes are the URL schemes this driver serves; the first is
	// canonical, the others aliases.
	Schemes []string
	// Summary is a paragraph for docs: what the driver needs, how it maps
	// baton's model, its fencing strength and its liveness.
	Summary string
	// URLForm shows the URL's shape, e.g.
	// "redis://[user[:password]@]host[:port][?options]".
	URLForm string
	// Examples are connection strings that must parse (checked by tests).
	Examples []string
	// Characteristics are the facts every connection of this driver has.
	// They must agree with the optional interfaces the Conn implements
	// (Watch push ⇔ GroupWatcher, SharedLocks ⇔ SharedLocker); the
	// conformance suite checks it.
	Characteristics Characteristics
	// CharacteristicsFor, when set, gives the characteristics of a
	// connection opened with the option values v, for drivers whose
	// options change them (mem:// in lease mode is TTL-based); nil means
	// Characteristics for every connection.
	CharacteristicsFor func(v Values) Characteristics
	// Schedule, when set, tells from the option values how a connection
	// is kept: the session TTL (0: it cannot expire while the process
	// lives), an explicit renew interval (0: the timing model chooses)
	// and the own lease of a lock acquired without a TTL (0: locks are
	// bound to the session). The backend derives the timing model from
	// it for docs/drivers.md and `baton url explain`; the connection's
	// SessionInfo stays the authority once open.
	Schedule func(v Values) Schedule
	// Options is the option table.
	Options []OptionSpec
	// Check, when set, validates a configuration as Open would before it
	// contacts any server (settings that combine several options, the
	// path, the hosts, TLS files) and returns the same error Open would.
	// It has no side effect. ParseURL runs it, so a URL Open refuses
	// without a round trip is refused by parsing, and `baton url explain`
	// is a dry run of Open's validation. cfg has no MemberID, Logger,
	// Observer or Clock.
	Check func(cfg *Config) error
	// Open opens a connection.
	Open OpenFunc
}

// Schedule is how a driver keeps a connection with given options; see
// Info.Schedule.
type Schedule struct {
	SessionTTL    time.Duration
	RenewInterval time.Duration
	LockTTL       time.Duration
	// Note qualifies the figures (e.g. "the server may negotiate another
	// session timeout").
	Note string
}

// CharacteristicsOf returns the characteristics of a connection opened
// with the option values v.
func (i Info) CharacteristicsOf(v Values) Characteristics {
	if i.CharacteristicsFor != nil {
		return i.CharacteristicsFor(v)
	}
	return i.Characteristics
}

// CanonicalScheme returns the first scheme.
func (i Info) CanonicalScheme() string {
	if len(i.Schemes) == 0 {
		return ""
	}
	return strings.ToLower(i.Schemes[0])
}
