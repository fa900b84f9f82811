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
package pgbackend
