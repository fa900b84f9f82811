package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baton-go/baton/backend/driver"
)

// setupLockKey is the transaction-level advisory lock (in the one-bigint
// key space, apart from the sessions' two-integer keys) that serializes
// the creation of schemas by concurrent first users.
const setupLockKey = 0x6261746f6e00 // "baton\0"

// ddl returns the statements creating the schema's objects, idempotently.
// q is the quoted schema name, chanLit the quoted notification channel.
func ddl(q, chanLit string) []string {
	r := strings.NewReplacer("S.", q+".", "CHAN", chanLit)
	stmts := []string{
		`CREATE SEQUENCE IF NOT EXISTS S.session_ids AS integer CYCLE`,
		`CREATE SEQUENCE IF NOT EXISTS S.incarnations AS bigint`,
		`CREATE TABLE IF NOT EXISTS S.sessions (
			sid integer PRIMARY KEY,
			member text COLLATE "C" NOT NULL,
			started timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS S.groups (
			name text COLLATE "C" PRIMARY KEY,
			created timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS S.members (
			grp text COLLATE "C" NOT NULL REFERENCES S.groups (name),
			member text COLLATE "C" NOT NULL,
			sid integer NOT NULL,
			caps bytea NOT NULL,
			inc bigint NOT NULL,
			joined timestamptz NOT NULL,
			updated timestamptz NOT NULL,
			PRIMARY KEY (grp, member))`,
		`CREATE INDEX IF NOT EXISTS members_sid ON S.members (sid)`,
		`CREATE TABLE IF NOT EXISTS S.locks (
			name text COLLATE "C" PRIMARY KEY,
			token bigint NOT NULL,
			sid integer,
			member text COLLATE "C",
			shared jsonb NOT NULL DEFAULT '{}',
			waiters integer NOT NULL DEFAULT 0)
			WITH (fillfactor = 50)`,
		`CREATE INDEX IF NOT EXISTS locks_shared ON S.locks (name) WHERE shared <> '{}'::jsonb`,
		// member_event builds one notification for a row of members: kind
		// j (joined), l (left) or u (updated), the transaction ID, and
		// the capabilities when they are small. A payload too large for
		// NOTIFY (names near 1 KiB of escaped characters) becomes a
		// resync request carrying the group name's md5.
		`CREATE OR REPLACE FUNCTION S.member_event(k text, m S.members) RETURNS text
		LANGUAGE plpgsql AS $f$
		DECLARE p text;
		BEGIN
			p := json_build_object('k', k, 'x', pg_current_xact_id()::text, 'g', m.grp, 'm', m.member,
				'i', m.inc, 'c', CASE WHEN k <> 'l' AND octet_length(m.caps) <= 3000 THEN encode(m.caps, 'base64') END,
				'C', k <> 'l' AND octet_length(m.caps) > 3000,
				'tj', (extract(epoch FROM m.joined) * 1000000)::bigint,
				'tu', (extract(epoch FROM m.updated) * 1000000)::bigint)::text;
			IF octet_length(p) > 7800 THEN
				p := json_build_object('k', 'r', 'x', pg_current_xact_id()::text, 'h', md5(m.grp))::text;
			END IF;
			RETURN p;
		END $f$`,
		`CREATE OR REPLACE FUNCTION S.members_notify() RETURNS trigger
		LANGUAGE plpgsql AS $f$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				PERFORM pg_notify(CHAN, S.member_event('j', NEW));
			ELSIF TG_OP = 'DELETE' THEN
				PERFORM pg_notify(CHAN, S.member_event('l', OLD));
			ELSIF OLD.inc <> NEW.inc OR OLD.grp <> NEW.grp OR OLD.member <> NEW.member THEN
				PERFORM pg_notify(CHAN, S.member_event('l', OLD));
				PERFORM pg_notify(CHAN, S.member_event('j', NEW));
			ELSE
				PERFORM pg_notify(CHAN, S.member_event('u', NEW));
			END IF;
			RETURN NULL;
		END $f$`,
		`CREATE OR REPLACE FUNCTION S.groups_notify() RETURNS trigger
		LANGUAGE plpgsql AS $f$
		DECLARE p text;
		BEGIN
			p := json_build_object('k', 'd', 'x', pg_current_xact_id()::text, 'g', OLD.name)::text;
			IF octet_length(p) > 7800 THEN
				p := json_build_object('k', 'r', 'x', pg_current_xact_id()::text, 'h', md5(OLD.name))::text;
			END IF;
			PERFORM pg_notify(CHAN, p);
			RETURN NULL;
		END $f$`,
		`CREATE OR REPLACE TRIGGER members_notify AFTER INSERT OR UPDATE OR DELETE ON S.members
			FOR EACH ROW EXECUTE FUNCTION S.members_notify()`,
		`CREATE OR REPLACE TRIGGER groups_notify AFTER DELETE ON S.groups
			FOR EACH ROW EXECUTE FUNCTION S.groups_notify()`,
	}
	for i, s := range stmts {
		stmts[i] = r.Replace(s)
	}
	return stmts
}

// channelName is the notification channel of a schema (by its OID, so that
// it fits NOTIFY's 63-byte limit whatever the schema's name).
func channelName(oid uint32) string { return fmt.Sprintf("baton_%d", oid) }

// ensureSchema creates the schema and its objects when they are missing
// and returns the schema's OID. Concurrent first users are serialized by
// a transaction-level advisory lock, and everything is created in one
// transaction, so a half-made schema is never seen.
func ensureSchema(ctx context.Context, c *pgx.Conn, schema string) (uint32, error) {
	q := pgx.Identifier{schema}.Sanitize()
	oid, ready, err := schemaState(ctx, c, schema, q)
	if err != nil || ready {
		return oid, err
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(setupLockKey)); err != nil {
		return 0, err
	}
	oid, ready, err = schemaState(ctx, tx.Conn(), schema, q)
	if err != nil || ready {
		return oid, err
	}
	if oid == 0 {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+q); err != nil {
			return 0, privilegeError(err, schema, "create schema", "the CREATE privilege on the database (or an administrator creating the schema and granting CREATE on it)")
		}
		if err := tx.QueryRow(ctx, `SELECT oid FROM pg_namespace WHERE nspname = $1`, schema).Scan(&oid); err != nil {
			return 0, err
		}
	}
	for _, s := range ddl(q, quoteLiteral(channelName(oid))) {
		if _, err := tx.Exec(ctx, s); err != nil {
			return 0, privilegeError(err, schema, "create tables", "the CREATE privilege on schema "+q)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return oid, nil
}

// schemaState returns the schema's OID (0 if missing) and whether its
// objects exist (they are all created in one transaction).
func schemaState(ctx context.Context, c *pgx.Conn, schema, q string) (uint32, bool, error) {
	var oid *uint32
	var ready bool
	err := c.QueryRow(ctx, `SELECT (SELECT oid FROM pg_namespace WHERE nspname = $1),
		to_regprocedure($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`,
		schema, q+".groups_notify()", q+".locks").Scan(&oid, &ready)
	if err != nil || oid == nil {
		return 0, false, err
	}
	return *oid, ready, nil
}

// privilegeError explains a missing privilege.
func privilegeError(err error, schema, what, need string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return driver.Errorf(driver.CodeInvalidArgument, "%s %q: permission denied; the user needs %s: %w", what, schema, need, err)
	}
	return err
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
