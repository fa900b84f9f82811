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
package mysqlbackend
