package pgbackend

import (
	"fmt"
	"strings"
)

// queries are the statements of one schema, with the schema name, the
// advisory key space (the schema's OID) and the channel filled in, so
// that pgx prepares and caches each once per connection.
type queries struct {
	tryLock, tryLockShared, unlock, holder, held  string
	tryLockWaiting                                string
	breakLock, wait, unwait, createLock           string
	createGroup, deleteGroup, groups, groupExists string
	join, leave, members, update, caps            string
	registerSession, janitor, closeSession        string
	key                                           string // the advisory key space
}

// newQueries fills in the statements. dead(sid) is the SQL test that the
// session sid of this schema has ended: its advisory lock, held
// exclusively by its session connection while it lives, is free. When
// the session is gone the test takes a shared hold for the rest of the
// transaction, which harms nobody: session numbers are never reused, and
// shared holds do not conflict, so concurrent tests (other statements,
// other Backends' janitors, session watchers) never make a dead session
// look alive to each other.
func newQueries(schemaQuoted string, oid uint32, channel string) *queries {
	key := fmt.Sprint(int32(oid))
	r := strings.NewReplacer("S.", schemaQuoted+".", "KEY", key, "CHAN", quoteLiteral(channel))
	dead := func(col string) string { return "pg_try_advisory_xact_lock_shared(KEY, " + col + ")" }
	liveShared := `(SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM jsonb_each(l.shared) e
		WHERE NOT ` + dead("(e.value->>0)::integer") + `)`
	// An exclusive grant: the row is free, or its holders' sessions are
	// gone; the counter is bumped in the same statement, which takes
	// WAITING off the row's count of waiters.
	grantExclusive := func(waiting string) string {
		return `UPDATE S.locks l SET token = l.token + 1, sid = $2, member = $3, shared = '{}',
				waiters = greatest(l.waiters - ` + waiting + `, 0)
			WHERE l.name = $1 AND (l.sid IS NULL OR ` + dead("l.sid") + `)
			AND (l.shared = '{}'::jsonb OR NOT EXISTS (SELECT 1 FROM jsonb_each(l.shared) e WHERE NOT ` + dead("(e.value->>0)::integer") + `))
			RETURNING token`
	}
	q := &queries{
		key:     key,
		tryLock: grantExclusive("$4::integer"),
		// A counted waiter's try: the grant's token, or else the session
		// of a live holder (read in the statement's snapshot), so that
		// the session watcher can wait for its end.
		tryLockWaiting: `WITH u AS (` + grantExclusive("1") + `)
			SELECT token, NULL::integer FROM u
			UNION ALL
			SELECT NULL::bigint, h.sid FROM S.locks l, LATERAL (
				SELECT l.sid AS sid WHERE l.sid IS NOT NULL AND NOT ` + dead("l.sid") + `
				UNION ALL
				SELECT (e.value->>0)::integer FROM jsonb_each(l.shared) e WHERE NOT ` + dead("(e.value->>0)::integer") + `
				LIMIT 1) h
			WHERE l.name = $1 AND NOT EXISTS (SELECT 1 FROM u)
			LIMIT 1`,
		// The first grant of a name creates its row; a conflict means
		// someone created it meanwhile, and holds it.
		createLock: `INSERT INTO S.locks (name, token, sid, member) VALUES ($1, 1, $2, $3) ON CONFLICT DO NOTHING RETURNING token`,
		tryLockShared: `INSERT INTO S.locks AS l (name, token, shared)
			VALUES ($1, 1, jsonb_build_object('1', jsonb_build_array($2::integer, $3::text)))
			ON CONFLICT (name) DO UPDATE SET token = l.token + 1, sid = NULL, member = NULL,
				shared = ` + liveShared + ` || jsonb_build_object((l.token + 1)::text, jsonb_build_array($2::integer, $3::text))
			WHERE l.sid IS NULL OR ` + dead("l.sid") + `
			RETURNING token`,
		unlock: `WITH u AS (UPDATE S.locks l
				SET sid = CASE WHEN l.sid = $2 AND l.token = $3 THEN NULL ELSE l.sid END,
					member = CASE WHEN l.sid = $2 AND l.token = $3 THEN NULL ELSE l.member END,
					shared = l.shared - ($3::bigint)::text
				WHERE l.name = $1 AND ((l.sid = $2 AND l.token = $3) OR (l.shared -> (($3::bigint)::text) ->> 0)::integer = $2)
				RETURNING l.name, l.waiters)
			SELECT CASE WHEN waiters > 0 THEN pg_notify(CHAN, 'L' || md5(name)) END FROM u`,
		// A waiter counts itself on the lock's row before its last try, so
		// that a release it could miss sees it and notifies.
		wait:   `INSERT INTO S.locks AS l (name, token, waiters) VALUES ($1, 0, 1) ON CONFLICT (name) DO UPDATE SET waiters = l.waiters + 1`,
		unwait: `UPDATE S.locks SET waiters = greatest(waiters - 1, 0) WHERE name = $1`,
		held: `SELECT EXISTS (SELECT 1 FROM S.locks l WHERE l.name = $1
			AND ((l.sid = $2 AND l.token = $3) OR (l.shared -> (($3::bigint)::text) ->> 0)::integer = $2))`,
		holder: `SELECT l.member, l.token FROM S.locks l WHERE l.name = $1 AND l.sid IS NOT NULL AND NOT ` + dead("l.sid") + `
			UNION ALL
			SELECT e.value->>1, e.key::bigint FROM S.locks l, jsonb_each(l.shared) e
			WHERE l.name = $1 AND NOT ` + dead("(e.value->>0)::integer") + `
			LIMIT 1`,
		breakLock: `WITH u AS (UPDATE S.locks l SET sid = NULL, member = NULL, shared = '{}'
				WHERE l.name = $1 AND ((l.sid IS NOT NULL AND NOT ` + dead("l.sid") + `)
					OR EXISTS (SELECT 1 FROM jsonb_each(l.shared) e WHERE NOT ` + dead("(e.value->>0)::integer") + `))
				RETURNING l.name)
			SELECT pg_notify(CHAN, 'L' || md5(name)) FROM u`,
		createGroup: `INSERT INTO S.groups (name) VALUES ($1) ON CONFLICT DO NOTHING`,
		// Members of dead sessions go first, in the same statement, so
		// that only live members keep the group (the foreign key refuses
		// the deletion, checked at the end of the statement).
		deleteGroup: `WITH dead AS (DELETE FROM S.members WHERE grp = $1 AND ` + dead("sid") + ` RETURNING 1)
			DELETE FROM S.groups WHERE name = $1 AND (SELECT count(*) FROM dead) >= 0`,
		groups:      `SELECT name FROM S.groups`,
		groupExists: `SELECT EXISTS (SELECT 1 FROM S.groups WHERE name = $1)`,
		// A member row of a dead session is taken over (a new incarnation).
		join: `INSERT INTO S.members AS m (grp, member, sid, caps, inc, joined, updated)
			VALUES ($1, $2, $3, $4, nextval('S.incarnations'), now(), now())
			ON CONFLICT (grp, member) DO UPDATE SET sid = EXCLUDED.sid, caps = EXCLUDED.caps, inc = EXCLUDED.inc,
				joined = EXCLUDED.joined, updated = EXCLUDED.updated
			WHERE ` + dead("m.sid") + `
			RETURNING inc`,
		leave:  `DELETE FROM S.members WHERE grp = $1 AND member = $2`,
		update: `UPDATE S.members SET caps = $3, updated = clock_timestamp() WHERE grp = $1 AND member = $2`,
		// One row per member (or one row of NULLs for an empty group, none
		// for a missing group), with the statement's snapshot for watches.
		members: `SELECT pg_current_snapshot()::text, m.member, m.caps, m.inc, m.joined, m.updated,
				m.sid IS NOT NULL AND NOT ` + dead("m.sid") + `
			FROM S.groups g LEFT JOIN S.members m ON m.grp = g.name WHERE g.name = $1 ORDER BY m.member`,
		caps:            `SELECT caps FROM S.members WHERE grp = $1 AND member = $2 AND inc = $3`,
		registerSession: `INSERT INTO S.sessions (sid, member) VALUES ($1, $2)`,
		// The janitor removes what sessions that ended left behind: their
		// session rows, memberships and holds; waiters of the locks they
		// held are notified.
		janitor: `WITH dead AS (DELETE FROM S.sessions s WHERE s.sid <> $1 AND ` + dead("s.sid") + ` RETURNING s.sid),
			dm AS (DELETE FROM S.members m USING dead WHERE m.sid = dead.sid RETURNING 1),
			dl AS (UPDATE S.locks l SET sid = NULL, member = NULL FROM dead WHERE l.sid = dead.sid RETURNING l.name),
			ds AS (UPDATE S.locks l SET shared = (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
					FROM jsonb_each(l.shared) e WHERE (e.value->>0)::integer NOT IN (SELECT sid FROM dead))
				WHERE l.shared <> '{}'::jsonb
				AND EXISTS (SELECT 1 FROM jsonb_each(l.shared) e WHERE (e.value->>0)::integer IN (SELECT sid FROM dead))
				RETURNING l.name)
			SELECT pg_notify(CHAN, 'L' || md5(name)) FROM (SELECT name FROM dl UNION SELECT name FROM ds) x`,
		closeSession: `WITH dm AS (DELETE FROM S.members WHERE sid = $1 RETURNING 1),
			dl AS (UPDATE S.locks SET sid = NULL, member = NULL WHERE sid = $1 RETURNING name),
			ds AS (UPDATE S.locks l SET shared = (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
					FROM jsonb_each(l.shared) e WHERE (e.value->>0)::integer <> $1)
				WHERE l.shared <> '{}'::jsonb AND EXISTS (SELECT 1 FROM jsonb_each(l.shared) e WHERE (e.value->>0)::integer = $1)
				RETURNING l.name),
			dss AS (DELETE FROM S.sessions WHERE sid = $1 RETURNING 1)
			SELECT pg_notify(CHAN, 'L' || md5(name)) FROM (SELECT name FROM dl UNION SELECT name FROM ds) x`,
	}
	for _, p := range []*string{&q.tryLock, &q.tryLockWaiting, &q.tryLockShared, &q.unlock, &q.held, &q.holder, &q.breakLock, &q.wait, &q.unwait, &q.createLock, &q.createGroup, &q.deleteGroup,
		&q.groups, &q.groupExists, &q.join, &q.leave, &q.update, &q.members, &q.caps, &q.registerSession, &q.janitor, &q.closeSession} {
		*p = r.Replace(*p)
	}
	return q
}
