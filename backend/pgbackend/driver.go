package pgbackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func init() { backend.Register(Info()) }

// Info returns the driver's registration record: schemes, option table,
// characteristics and documentation. It is what init registers.
func Info() driver.Info {
	return driver.Info{
		Name:    "PostgreSQL",
		Schemes: []string{"postgresql", "postgres"},
		Summary: summary,
		URLForm: "postgresql://[user[:password]@][host[:port][,host2[:port2]...]][/dbname][?options]",
		Examples: []string{
			"postgresql://localhost/postgres",
			"postgres://user:secret@db.example.com:5432/app",
			"postgresql://user:secret@localhost:5432?dbname=app",
			"postgresql://localhost/postgres?host=/run/postgresql&port=5432",
			"postgresql:///app?host=/var/run/postgresql",
			"postgresql://db1:5432,db2:5432/app?target_session_attrs=read-write",
			"postgresql://localhost/app?namespace=billing&timeout=5",
			"postgresql://localhost/app?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.pem&sslcert=/etc/ssl/client.pem&sslkey=/etc/ssl/client.key",
			"postgresql://localhost/app?connect_timeout=3&pool_size=8&application_name=worker",
		},
		Characteristics: driver.Characteristics{
			DistributedAcrossThreads:   true,
			DistributedAcrossProcesses: true,
			DistributedAcrossHosts:     true,
			NonTimeoutBased:            true,
			Linearizable:               true,
			Sequential:                 true,
			Causal:                     true,
			Serializable:               false,
			SameViewAcrossClients:      true,
			Liveness:                   driver.LivenessSession,
			Watch:                      driver.WatchPush,
			Fencing:                    driver.FencingStrong,
			SharedLocks:                true,
		},
		CharacteristicsFor: toozCharacteristics,
		Options:            optionSpecs(),
		Schedule:           schedule,
		Check:              check,
		Open:               open,
	}
}

const summary = `
PostgreSQL 14 or later, through github.com/jackc/pgx/v5. Every tooz URL form
works: host, port and dbname given as query options take precedence over the
URL's host, port and path, as in tooz; a host (or host= value) that starts
with '/' is the directory of the server's unix socket; several hosts are
tried in order. TLS follows libpq's sslmode family (sslmode, sslrootcert,
sslcert, sslkey, sslpassword).

Layout: everything lives in one PostgreSQL schema named by the namespace
option (default baton), created on first use together with its tables,
sequences and triggers (idempotent, serialized by a transaction-level
advisory lock, so many processes may start at once). A user needs only the
CREATE privilege on that schema once it exists, or on the database to let
the driver create it; a missing privilege is reported with the right that is
missing. Tables: sessions (one row per live Backend), groups, members
(group, member, owning session, capabilities, incarnation, joined/updated
times) and locks (one row per lock name ever taken: its fencing counter,
its exclusive holder, its shared holders). Names are stored as text in the
C collation, so any name up to 1 KiB is a key of its own: no hashing, no
collision (tooz's driver had 65,536 advisory keys from two bytes of md5).

Liveness: each Backend opens one session connection, takes a session-level
advisory lock on (the schema's OID, a session number from a sequence), and
sets idle_session_timeout to the timeout option on it, so the server ends the
session when it has not heard from the member for that long. Renew is a ping
on that connection; the connection is watched continuously, so a session the
server ended is reported lost at once, and one that stays silent is given up
timeout after the last ping that was answered. Members and locks are rows
owned by the session; a row whose session's advisory lock is free is dead:
the next writer takes it over, readers skip it, and every Backend's janitor
(running at the renew cadence) deletes what dead sessions left and wakes the
waiters of their locks. A Backend whose blocked Lock or Campaign waits for a
lock held by another session, with no release for 25ms, also waits on the
server for the end of that session (a lock wait on its advisory lock, on a
connection of its own; a lock that changes hands often is not watched): the
server frees that lock the moment the session ends (its process killed, its
connection dropped), so the lock is taken over, and the janitor run (leave
events), at once rather than at the janitor's next round. At most two such
sessions are watched at a time per Backend (more holders are left to the
janitor), and the watcher connections close within 250ms of no waiter
needing them. Only one advisory lock is spent per Backend however
many locks it holds, so the server's lock table (max_locks_per_transaction ×
max_connections) is not a limit. A Backend uses one session connection, one
listener connection, a small pool (pool_size) for everything else and, while
waiters need them, up to two session watcher connections; with
pool_size 2 or more one of the pool's connections is kept for the lock
statements (those that find it busy use the rest of the pool), so that an
uncontended acquire or release is one statement on a connection in hand.

Locks: a lock is granted by one UPDATE of its row (an INSERT for a name
never taken before) that bumps the row's counter (the fencing token) and
records the holder in the same transaction; release clears the holder and,
when waiters have counted themselves on the row, notifies them.
Tokens survive restarts and never go back (strong, with the server's
synchronous_commit on; a crash with it off can lose the last commits).
Blocking acquisitions wait for the release notification (or, for a dead
holder, the end of its session or the janitor's notification) and then try
again; a shared lock is a set of holders on
the same row. Leases live as long as the session (TTL 0). Locks live on one
server: streaming replication carries the rows but not the session, so a
failover to a replica loses every session and every grant.

Watches are pushed: triggers on the members and groups tables notify one
channel per schema; each event carries the transaction ID that made it, and
a watch starts from a snapshot whose visibility decides which events it
already contains, so nothing is missed or repeated. After the listener
connection is re-established a watch re-reads the group (resync).
`

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := parseSettings(cfg)
	return err
}
