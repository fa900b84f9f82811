package mysqlbackend

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"fmt"
	"strings"
	"sync"
)

// tables names the driver's tables for one table prefix.
type tables struct {
	groups, members, locks, shared string
}

func newTables(prefix string) tables {
	return tables{
		groups:  prefix + "_groups",
		members: prefix + "_members",
		locks:   prefix + "_locks",
		shared:  prefix + "_shared",
	}
}

func (t tables) all() []string { return []string{t.groups, t.members, t.locks, t.shared} }

// ddl returns the CREATE TABLE statements. Names are stored in full
// (BLOB) and keyed by their SHA-256 (BINARY(32)), so any name up to
// backend.MaxNameLen fits and two names never share a row.
func (t tables) ddl() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.groups + ` (
	ns VARBINARY(255) NOT NULL,
	gid BINARY(32) NOT NULL,
	name BLOB NOT NULL,
	PRIMARY KEY (ns, gid)
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS ` + t.members + ` (
	ns VARBINARY(255) NOT NULL,
	gid BINARY(32) NOT NULL,
	mid BINARY(32) NOT NULL,
	member BLOB NOT NULL,
	caps MEDIUMBLOB NOT NULL,
	sess VARBINARY(64) NOT NULL,
	inc VARBINARY(64) NOT NULL,
	joined BIGINT NOT NULL,
	updated BIGINT NOT NULL,
	PRIMARY KEY (ns, gid, mid),
	KEY sess (sess)
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS ` + t.locks + ` (
	ns VARBINARY(255) NOT NULL,
	lid BINARY(32) NOT NULL,
	name BLOB NOT NULL,
	token BIGINT UNSIGNED NOT NULL,
	holder_sess VARBINARY(64) NOT NULL DEFAULT '',
	holder_member BLOB NOT NULL,
	shared_n INT NOT NULL DEFAULT 0,
	PRIMARY KEY (ns, lid)
) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS ` + t.shared + ` (
	ns VARBINARY(255) NOT NULL,
	lid BINARY(32) NOT NULL,
	token BIGINT UNSIGNED NOT NULL,
	sess VARBINARY(64) NOT NULL,
	member BLOB NOT NULL,
	PRIMARY KEY (ns, lid, token),
	KEY sess (sess)
) ENGINE=InnoDB`,
	}
}

// schemaReady caches, per server address, database and prefix, that the
// tables exist, so only the first Open of a process checks.
var schemaReady sync.Map

// ensureSchema creates the tables unless they exist. It first looks them
// up, so a user without CREATE rights works once the tables were made;
// CREATE TABLE IF NOT EXISTS is idempotent under concurrent first use by
// many processes (the server serializes DDL on a table name).
func ensureSchema(ctx context.Context, db *sql.DB, addr, dbName string, t tables, prefix string) error {
	key := addr + "\x00" + dbName + "\x00" + prefix
	if _, ok := schemaReady.Load(key); ok {
		return nil
	}
	names := t.all()
	rows, err := db.QueryContext(ctx,
		`SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN (?, ?, ?, ?)`,
		names[0], names[1], names[2], names[3])
	if err != nil {
		return fmt.Errorf("look up the tables %s_*: %w", prefix, classify(err))
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return classify(err)
		}
		have[strings.ToLower(n)] = true
	}
	if err := rows.Err(); err != nil {
		return classify(err)
	}
	rows.Close()
	for i, stmt := range t.ddl() {
		if have[strings.ToLower(names[i])] {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return schemaError(dbName, prefix, err)
		}
	}
	schemaReady.Store(key, true)
	return nil
}

// hash is the 32-byte row key of a name.
func hash(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// lockName is the GET_LOCK name of a lock key: GET_LOCK names are
// server-wide, case-insensitive and at most 64 characters, so the name is
// "baton:l:" plus the lower-case base32 SHA-256 of the database, table
// prefix, namespace and key (60 characters in all).
func lockName(dbName, prefix, ns, key string) string {
	h := sha256.New()
	for _, s := range []string{dbName, prefix, ns, key} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return "baton:l:" + strings.ToLower(b32.EncodeToString(h.Sum(nil)))
}
