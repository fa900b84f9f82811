package mysqlbackend

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// nowMicros is the server's clock in microseconds since the epoch: join
// and update times come from one clock for every member.
const nowMicros = `CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)`

func groupNotFound(group string) error {
	return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
}

// CreateGroup inserts the group's row.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	res, err := c.db.ExecContext(ctx, `INSERT IGNORE INTO `+c.t.groups+` (ns, gid, name) VALUES (?, ?, ?)`,
		c.ns, hash(group), []byte(group))
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", group)
	}
	return nil
}

// DeleteGroup deletes the group in one transaction that locks its row,
// removes dead members and refuses while a live member remains.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	gid := hash(group)
	return c.tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+c.t.groups+` WHERE ns = ? AND gid = ? FOR UPDATE`, c.ns, gid).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return groupNotFound(group)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+c.t.members+` WHERE ns = ? AND gid = ? AND IS_FREE_LOCK(sess) = 1`, c.ns, gid); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+c.t.members+` WHERE ns = ? AND gid = ?`, c.ns, gid).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has %d live members", group, n)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM `+c.t.groups+` WHERE ns = ? AND gid = ?`, c.ns, gid)
		return err
	})
}

// Groups lists the namespace's groups.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT name FROM `+c.t.groups+` WHERE ns = ?`, c.ns)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name []byte
		if err := rows.Scan(&name); err != nil {
			return nil, classify(err)
		}
		out = append(out, string(name))
	}
	return out, classify(rows.Err())
}

// Join inserts the member's row, owned by this session, with a fresh
// incarnation; a dead row of the same member is replaced.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	if err := c.lost(); err != nil {
		return err
	}
	gid := hash(group)
	var r [12]byte
	_, _ = rand.Read(r[:])
	inc := hex.EncodeToString(r[:])
	if caps == nil {
		caps = []byte{}
	}
	return c.tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+c.t.groups+` WHERE ns = ? AND gid = ? LOCK IN SHARE MODE`, c.ns, gid).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return groupNotFound(group)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+c.t.members+` WHERE ns = ? AND gid = ? AND mid = ? AND IS_FREE_LOCK(sess) = 1`,
			c.ns, gid, hash(c.memberID)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO `+c.t.members+` (ns, gid, mid, member, caps, sess, inc, joined, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, `+nowMicros+`, `+nowMicros+`)`,
			c.ns, gid, hash(c.memberID), []byte(c.memberID), caps, c.sessName, inc)
		if isDup(err) {
			return driver.Errorf(driver.CodeMemberExists, "member %q already joined group %q", c.memberID, group)
		}
		return err
	})
}

// Leave deletes the member's live row.
func (c *conn) Leave(ctx context.Context, group string) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM `+c.t.members+` WHERE ns = ? AND gid = ? AND mid = ? AND IS_USED_LOCK(sess) IS NOT NULL`,
		c.ns, hash(group), hash(c.memberID))
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	return c.notMember(ctx, group)
}

// notMember returns CodeGroupNotFound or CodeNotMember.
func (c *conn) notMember(ctx context.Context, group string) error {
	ok, err := c.groupExists(ctx, group)
	if err != nil {
		return err
	}
	if !ok {
		return groupNotFound(group)
	}
	return driver.Errorf(driver.CodeNotMember, "member %q is not in group %q", c.memberID, group)
}

func (c *conn) groupExists(ctx context.Context, group string) (bool, error) {
	var one int
	err := c.db.QueryRowContext(ctx, `SELECT 1 FROM `+c.t.groups+` WHERE ns = ? AND gid = ?`, c.ns, hash(group)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, classify(err)
	}
	return true, nil
}

// Members lists the live members in one query (the group's row joined
// with its members' rows); dead rows it meets are deleted.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	gid := hash(group)
	rows, err := c.db.QueryContext(ctx, `SELECT m.member, m.caps, m.inc, m.joined, m.updated, IS_USED_LOCK(m.sess) IS NOT NULL
FROM `+c.t.groups+` g LEFT JOIN `+c.t.members+` m ON m.ns = g.ns AND m.gid = g.gid
WHERE g.ns = ? AND g.gid = ?`, c.ns, gid)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	found, dead := false, false
	out := []driver.Member{}
	for rows.Next() {
		found = true
		var id, caps, inc []byte
		var joined, updated sql.NullInt64
		var live sql.NullBool
		if err := rows.Scan(&id, &caps, &inc, &joined, &updated, &live); err != nil {
			return nil, classify(err)
		}
		if id == nil {
			continue // the group has no member rows
		}
		if !live.Bool {
			dead = true
			continue
		}
		out = append(out, driver.Member{
			ID: string(id), Capabilities: caps, Incarnation: string(inc),
			JoinedAt: time.UnixMicro(joined.Int64), UpdatedAt: time.UnixMicro(updated.Int64),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	rows.Close()
	if !found {
		return nil, groupNotFound(group)
	}
	if dead {
		if _, err := c.db.ExecContext(ctx, `DELETE FROM `+c.t.members+` WHERE ns = ? AND gid = ? AND IS_FREE_LOCK(sess) = 1`, c.ns, gid); err != nil {
			return nil, classify(err)
		}
	}
	return out, nil
}

// UpdateCapabilities rewrites the member's live row.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	if caps == nil {
		caps = []byte{}
	}
	res, err := c.db.ExecContext(ctx, `UPDATE `+c.t.members+` SET caps = ?, updated = `+nowMicros+`
WHERE ns = ? AND gid = ? AND mid = ? AND IS_USED_LOCK(sess) IS NOT NULL`,
		caps, c.ns, hash(group), hash(c.memberID))
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	return c.notMember(ctx, group)
}

// tx runs f in a transaction on the pool, again after a deadlock or lock
// wait timeout (a few times).
func (c *conn) tx(ctx context.Context, f func(*sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		tx, err := c.db.BeginTx(ctx, nil)
		if err != nil {
			return classify(err)
		}
		err = f(tx)
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
		if err == nil {
			return nil
		}
		if retryable(err) && attempt < 5 && ctx.Err() == nil {
			continue
		}
		return classify(err)
	}
}
