// Package mysqlbackend is baton's MySQL and MariaDB driver, registered for
// the mysql:// scheme. Enable it with a blank import:
//
//	import _ "github.com/baton-go/baton/backend/mysqlbackend"
//
// Every primitive works on one database: liveness is a session connection
// holding a GET_LOCK; members and shared locks are rows owned by that
// session; exclusive locks are GET_LOCKs on it, waited for on the server,
// with fencing tokens from a counter row updated in the same statement.
// Watches poll. Info documents the URL options, the tables and the
// behaviour on failures.
//
// # compat=tooz
//
// With compat=tooz a user lock NAME is GET_LOCK(NAME) itself, the lock
// tooz's mysql:// driver takes (tooz passes the name verbatim), held on
// the session connection: a baton holder and a tooz holder on the same
// server exclude each other, a tooz holder killed -9 frees it when the
// server drops its connection, and a baton member whose session
// connection ends frees it for tooz. GET_LOCK names are server-wide and
// case-insensitive, so the namespace and table prefix no longer separate
// user locks. A name longer than GET_LOCK takes (64 characters on
// MySQL, 192 bytes on MariaDB, whose VERSION() Open reads), which tooz
// cannot lock either, keeps baton's own GET_LOCK name. Baton's grants
// still get fencing tokens from the counter rows, updated in the same
// statement as the GET_LOCK; tooz's holders have none (fencing partial).
// Holder reports a GET_LOCK held outside baton (a tooz process) with an
// empty member and token 0. Shared locks are unavailable in this mode
// (ErrUnimplemented, and Characteristics say so): GET_LOCK has no shared
// form, and baton's shared rows would not keep a tooz process out.
// Blocked acquisitions still wait on the server (a tooz release wakes
// them at once). Groups, members and leaders keep baton's tables: tooz's
// MySQL driver has none. tooz's own bugs met: a timed tooz acquire that
// runs out raises tenacity's RetryError; blocking=True with a timeout
// loops for ever in tooz 4+.
package mysqlbackend
