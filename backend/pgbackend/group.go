package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend/driver"
)

// CreateGroup inserts the group's row: CodeGroupExists if it exists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	tag, err := c.pool.Exec(ctx, c.q.createGroup, group)
	if err != nil {
		return c.classify(fmt.Errorf("create group: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return driver.Errorf(driver.CodeGroupExists, "group exists")
	}
	return nil
}

// DeleteGroup deletes an empty group (members of ended sessions do not
// count and are deleted with it): CodeGroupNotFound, CodeGroupNotEmpty.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	tag, err := c.pool.Exec(ctx, c.q.deleteGroup, group)
	switch {
	case pgCode(err) == "23503":
		return driver.Errorf(driver.CodeGroupNotEmpty, "group has members")
	case err != nil:
		return c.classify(fmt.Errorf("delete group: %w", err))
	case tag.RowsAffected() == 0:
		return driver.Errorf(driver.CodeGroupNotFound, "no such group")
	}
	return nil
}

// Groups lists every group.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	rows, err := c.pool.Query(ctx, c.q.groups)
	if err != nil {
		return nil, c.classify(fmt.Errorf("list groups: %w", err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, c.classify(fmt.Errorf("list groups: %w", err))
	}
	return out, nil
}

// Join inserts this session's member row (a fresh incarnation), taking
// over a row left by an ended session: CodeGroupNotFound,
// CodeMemberExists.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	if err := c.check(); err != nil {
		return err
	}
	if caps == nil {
		caps = []byte{}
	}
	var inc int64
	err := c.pool.QueryRow(ctx, c.q.join, group, c.cfg.MemberID, c.sid, caps).Scan(&inc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return driver.Errorf(driver.CodeMemberExists, "member %q already joined", c.cfg.MemberID)
	case pgCode(err) == "23503":
		return driver.Errorf(driver.CodeGroupNotFound, "no such group")
	case err != nil:
		return c.classify(fmt.Errorf("join: %w", err))
	}
	return nil
}

// Leave deletes this member's row: CodeGroupNotFound, CodeNotMember.
func (c *conn) Leave(ctx context.Context, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	tag, err := c.pool.Exec(ctx, c.q.leave, group, c.cfg.MemberID)
	if err != nil {
		return c.classify(fmt.Errorf("leave: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return c.notMember(ctx, group)
	}
	return nil
}

// UpdateCapabilities replaces this member's capabilities:
// CodeGroupNotFound, CodeNotMember.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	if err := c.check(); err != nil {
		return err
	}
	if caps == nil {
		caps = []byte{}
	}
	tag, err := c.pool.Exec(ctx, c.q.update, group, c.cfg.MemberID, caps)
	if err != nil {
		return c.classify(fmt.Errorf("update capabilities: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return c.notMember(ctx, group)
	}
	return nil
}

// notMember returns CodeGroupNotFound or CodeNotMember.
func (c *conn) notMember(ctx context.Context, group string) error {
	var exists bool
	if err := c.pool.QueryRow(ctx, c.q.groupExists, group).Scan(&exists); err != nil {
		return c.classify(fmt.Errorf("read group: %w", err))
	}
	if !exists {
		return driver.Errorf(driver.CodeGroupNotFound, "no such group")
	}
	return driver.Errorf(driver.CodeNotMember, "member %q has not joined", c.cfg.MemberID)
}

// Members lists the live members of group: CodeGroupNotFound.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ms, _, err := c.members(ctx, group)
	return ms, err
}

// members reads group's live members and the snapshot of the read; rows
// of ended sessions are skipped and deleted.
func (c *conn) members(ctx context.Context, group string) ([]driver.Member, *snapshot, error) {
	rows, err := c.pool.Query(ctx, c.q.members, group)
	if err != nil {
		return nil, nil, c.classify(fmt.Errorf("list members: %w", err))
	}
	var out []driver.Member
	var snap string
	var dead []int64
	found := false
	for rows.Next() {
		var (
			id              *string
			caps            []byte
			inc             *int64
			joined, updated *time.Time
			alive           bool
		)
		if err := rows.Scan(&snap, &id, &caps, &inc, &joined, &updated, &alive); err != nil {
			rows.Close()
			return nil, nil, c.classify(fmt.Errorf("list members: %w", err))
		}
		found = true
		switch {
		case id == nil:
		case !alive:
			dead = append(dead, *inc)
		default:
			out = append(out, driver.Member{ID: *id, Capabilities: caps, Incarnation: strconv.FormatInt(*inc, 10),
				JoinedAt: *joined, UpdatedAt: *updated})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, c.classify(fmt.Errorf("list members: %w", err))
	}
	if !found {
		return nil, nil, driver.Errorf(driver.CodeGroupNotFound, "no such group")
	}
	if len(dead) > 0 {
		_, _ = c.pool.Exec(ctx, `DELETE FROM `+c.schema+`.members WHERE grp = $1 AND inc = ANY($2)
			AND pg_try_advisory_xact_lock_shared(`+c.q.key+`, sid)`, group, dead)
	}
	sn, err := parseSnapshot(snap)
	if err != nil {
		return nil, nil, driver.Wrap(driver.CodeInternal, err)
	}
	return out, sn, nil
}
