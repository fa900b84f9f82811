package mysqlbackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func init() { backend.Register(Info()) }

// Info returns the driver's registration record: schemes, option table,
// characteristics and documentation. It is what init registers.
func Info() driver.Info {
	return driver.Info{
		Name:    "MySQL",
		Schemes: []string{"mysql"},
		Summary: summary,
		URLForm: "mysql://[user[:password]@][host[:port]]/database[?options]",
		Examples: []string{
			"mysql://localhost/baton",
			"mysql://user:secret@db.example.com:3306/baton",
			"mysql://root@localhost/pifpaf?unix_socket=/run/mysqld/mysqld.sock",
			"mysql://user:secret@localhost/baton?unix_socket=/var/run/mysqld/mysqld.sock&timeout=5",
			"mysql://user:secret@db.example.com/baton?ssl_ca=/etc/mysql/ca.pem&ssl_cert=/etc/mysql/client.pem&ssl_key=/etc/mysql/client.key",
			"mysql://user:secret@db.example.com/baton?ssl_capath=/etc/ssl/certs&ssl_verify_mode=required&ssl_check_hostname=false",
			"mysql://user:secret@db.example.com/baton?ssl_ca=/etc/mysql/ca.pem&ssl_cipher=ECDHE-RSA-AES128-GCM-SHA256",
			"mysql://user:secret@[::1]:3307/baton?namespace=app1&table_prefix=coord&pool_size=4",
			"mysql://user:secret@localhost/baton?connect_timeout=5&read_timeout=30&write_timeout=30",
		},
		Characteristics: driver.Characteristics{
			DistributedAcrossThreads:   true,
			DistributedAcrossProcesses: true,
			DistributedAcrossHosts:     true,
			NonTimeoutBased:            true,
			Liveness:                   driver.LivenessSession,
			Watch:                      driver.WatchPoll,
			Fencing:                    driver.FencingStrong,
			SharedLocks:                true,
		},
		Options:  optionSpecs(),
		Schedule: schedule,
		Check:    check,
		Open:     open,
	}
}

const summary = `
MySQL 5.7+ or MariaDB 10.5+ (tested on MariaDB 10.11), one server, through
github.com/go-sql-driver/mysql. The URL is tooz's: the path names the
database; unix_socket replaces the host; the ssl_* options are PyMySQL's.
The user needs SELECT, INSERT, UPDATE and DELETE on the database, and
CREATE the first time: the tables are created on first use
(CREATE TABLE IF NOT EXISTS, safe when many processes start at once), named
<table_prefix>_groups, _members, _locks and _shared (table_prefix baton by
default). Without the CREATE right Open fails with an error naming it, unless
the tables exist. The namespace option (default baton) separates
applications sharing the tables.

Liveness: each Backend holds one dedicated session connection, which holds a
GET_LOCK on a random session name for its whole life and has its
wait_timeout set to the timeout option (10 s). Member rows and shared-lock
rows record that name; a row whose session lock is free belongs to a dead
session and is ignored, and deleted by the next reader. The Backend renews
the session by a ping on the session connection every third of the timeout
and cancels grants a safety margin before the last successful ping's send
time plus the timeout; the server frees the session's locks only
wait_timeout after the last command it heard, which is later. A failed ping
or statement on the session connection closes it and reports the session
lost (a MySQL session cannot be resumed). A crashed process's connection
drops and its locks and members go with it at once; a server restart loses
every session.

Locks: an exclusive lock is a GET_LOCK on the session connection, on a name
of 60 characters ("baton:l:" plus the base32 SHA-256 of database, table
prefix, namespace and lock name, since GET_LOCK names are server-wide,
case-insensitive and at most 64 characters), so any name works and names
never collide. One statement takes it without waiting and, in the same
statement, bumps the name's fencing counter row and records the holder:
one round trip to acquire, one (RELEASE_LOCK) to release, like the raw
recipe. A blocked acquire waits on the server: GET_LOCK with a timeout on a
connection of a second pool returns the moment the holder releases or
drops, then the session connection takes the lock. Shared locks are rows
owned by the session, inserted under the name's GET_LOCK held for one
statement; an exclusive acquire waiting on shared holders polls (the server
cannot signal a deleted row). Fencing tokens come from a per-name counter
row updated by the statement that grants the lock: strong on InnoDB with
durable commits (innodb_flush_log_at_trx_commit=1); they survive server
restarts. Leases live as long as the session (TTL 0).

Membership watches and leader observation are polled (the backend's poll
interval) and diffed by incarnation: every join writes a fresh incarnation,
so a member that leaves and joins again between two polls is still reported.
Locks are held on the one server that granted them: replication does not
carry GET_LOCK, so after a failover to a replica every lock is free; do not
put the driver behind a proxy that can switch servers under a session.
`

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := parseConfig(cfg)
	return err
}
