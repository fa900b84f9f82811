package mysqlbackend

import (
	"context"
	"database/sql"
	"strings"
	"unicode/utf8"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: a user lock NAME is the GET_LOCK of NAME itself, as
// tooz.drivers.mysql takes it, on the session connection.

// userLockPrefix is how the backend prefixes user lock names in
// LockRequest.Key; such a lock's tooz name is the rest.
const userLockPrefix = "l/"

// The longest GET_LOCK names: 64 characters on MySQL, 192 bytes on
// MariaDB (its identifier limit); longer ones fail, in tooz too.
const (
	maxLockNameMySQL   = 64  // characters
	maxLockNameMariaDB = 192 // bytes
)

// probeLockNames learns which server this is, for fitsLockName.
func (c *conn) probeLockNames(ctx context.Context) error {
	var v string
	if err := c.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return classify(err)
	}
	c.mariaDB = strings.Contains(strings.ToLower(v), "mariadb")
	return nil
}

// fitsLockName reports whether the server's GET_LOCK takes name.
func (c *conn) fitsLockName(name string) bool {
	if c.mariaDB {
		return len(name) <= maxLockNameMariaDB
	}
	return utf8.RuneCountInString(name) <= maxLockNameMySQL
}

// toozLockName is the GET_LOCK name of a lock key in tooz mode: tooz's
// (the user's name verbatim) for a user lock, when GET_LOCK accepts it
// (ok false otherwise: baton's own name). A name GET_LOCK refuses as too
// long fails in tooz too, so no tooz process can hold it, and baton's
// name keeps it usable.
func (c *conn) toozLockName(key string) (string, bool) {
	if !c.tooz {
		return "", false
	}
	if name, ok := strings.CutPrefix(key, userLockPrefix); ok && c.fitsLockName(name) {
		return name, true
	}
	return "", false
}

// toozHolder reports, for a key without a live baton holder, a holder of
// its GET_LOCK outside baton (a tooz process) with an empty member and
// token 0; CodeNotFound when the GET_LOCK is free.
func (c *conn) toozHolder(ctx context.Context, name, key string) (driver.Holder, error) {
	if c.tooz {
		var used sql.NullInt64
		if err := c.db.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&used); err != nil {
			return driver.Holder{}, classify(err)
		}
		if used.Valid {
			return driver.Holder{}, nil
		}
	}
	return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
}

// toozConn is the connection in tooz mode: a GET_LOCK has no shared
// form, so it offers no SharedLocker.
type toozConn struct {
	driver.Conn
	c *conn
}

var (
	_ driver.Conn       = toozConn{}
	_ driver.LockWaiter = toozConn{}
)

func (t toozConn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	return t.c.WaitLock(ctx, req)
}

// outer is what Open returns: c itself, or its tooz-mode view.
func (c *conn) outer() driver.Conn {
	if c.tooz {
		return toozConn{Conn: c, c: c}
	}
	return c
}

// toozCharacteristics are the driver's characteristics with compat=tooz:
// tooz's holders have no token, and shared locks are gone.
func toozCharacteristics(v driver.Values) driver.Characteristics {
	c := Info().Characteristics
	if v.String("compat") == driver.CompatTooz {
		c.Fencing = driver.FencingPartial
		c.SharedLocks = false
	}
	return c
}

const compatDoc = "tooz: a user lock NAME is GET_LOCK(NAME) itself, tooz's lock, so baton and tooz (mysql://) holders exclude each other (GET_LOCK names are server-wide and case-insensitive; a name too long for GET_LOCK (64 characters on MySQL, 192 bytes on MariaDB), which tooz cannot lock, keeps baton's GET_LOCK name); " +
	"baton holders still get fencing tokens from baton's counter rows, tooz's holders none (fencing partial); shared locks are unavailable (GET_LOCK has no shared form). Groups, members and leaders keep baton's tables (tooz has none on MySQL)."
