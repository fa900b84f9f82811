// Package pgbackend is baton's PostgreSQL driver, registered for the
// postgresql:// scheme and its alias postgres://. Enable it with a blank
// import:
//
//	import _ "github.com/baton-go/baton/backend/pgbackend"
//
// Liveness is a database session: each Backend keeps one dedicated
// connection that holds one advisory lock for as long as the member lives.
// Groups, members and locks are rows in a schema of their own (created on
// first use), owned by that session: when the connection ends, its rows
// are dead and the next reader (or any Backend's janitor) removes them.
// Fencing tokens come from a per-name counter row bumped in the statement
// that records the grant. Membership changes and lock releases are pushed
// with LISTEN/NOTIFY over one listener connection per Backend. Info
// documents the URL options, the layout and the behaviour on failures.
//
// # compat=tooz
//
// With compat=tooz a baton process and a tooz process (tooz's
// postgresql:// driver, on the same database) exclude each other on
// one lock name. tooz's lock NAME is the session-level advisory lock
// pg_advisory_lock(k1, k2) where k1 and k2 are the first two bytes of
// md5(NAME), each 0..255 (tooz passes the two-byte digest to psycopg2,
// which makes it two integers). In this mode a user lock is granted only
// when its Backend holds both that advisory key and baton's row of the
// name: the advisory key is taken first, with pg_try_advisory_lock (or
// pg_try_advisory_lock_shared for a shared lock, which excludes tooz's
// exclusive holders and coexists with baton's other shared holders), on
// the session connection, so it lives and dies with the session like
// every other grant; it is given back when the row is not granted and
// on release.
//
// Coexistence with baton's collision-free keys: baton's rows still key a
// lock by its full name, so one Backend can hold two names whose
// two-byte keys collide (PostgreSQL's advisory locks stack within a
// session), and tokens and Holder stay per name. Across sessions the key
// is what tooz shares, so two names with the same two-byte key exclude
// each other, in baton as in tooz: with n names held at once by
// different processes the chance that two collide is about n²/131072 (2%
// for 52 names). Baton's own advisory locks (one per session, on the
// schema's OID and a session number; the schema set-up lock, a
// one-bigint key) never meet tooz's keys: tooz's first key is below 256,
// a schema's OID is not. Advisory locks are per database: baton and tooz
// must name the same one.
//
// Given up in this mode: fencing is partial (tooz's holders have no
// token; baton's grants still get increasing tokens from their rows);
// Holder reports a holder outside baton's rows (a tooz process, or a
// baton grant of another name on the same key) with an empty member and
// token 0; a blocked Lock polls every 50ms, since tooz's releases notify
// nobody; BreakLock of a user lock is unimplemented (an advisory lock can
// be released only by its session). Groups, members and leaders keep
// baton's tables: tooz's PostgreSQL driver has none. tooz's own bugs met:
// a timed tooz acquire that runs out raises tenacity's RetryError instead
// of returning False (the tests use non-blocking tries and timeouts that
// succeed).
package pgbackend
