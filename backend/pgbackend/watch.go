package pgbackend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend/driver"
)

// snapshot is a PostgreSQL snapshot (pg_current_snapshot): which
// transactions' effects a read saw.
type snapshot struct {
	xmin, xmax uint64
	xip        []uint64
}

// parseSnapshot parses "xmin:xmax:xip,xip,...".
func parseSnapshot(s string) (*snapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed snapshot %q", s)
	}
	var sn snapshot
	var err error
	if sn.xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return nil, fmt.Errorf("malformed snapshot %q", s)
	}
	if sn.xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return nil, fmt.Errorf("malformed snapshot %q", s)
	}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("malformed snapshot %q", s)
			}
			sn.xip = append(sn.xip, v)
		}
	}
	return &sn, nil
}

// visible reports whether the committed transaction xid's effects are in
// the snapshot (pg_visible_in_snapshot).
func (s *snapshot) visible(xid uint64) bool {
	switch {
	case xid < s.xmin:
		return true
	case xid >= s.xmax:
		return false
	}
	return !slices.Contains(s.xip, xid)
}

// WatchGroup pushes group's changes: it subscribes to the schema's
// channel first, then reads the members with the read's snapshot (the
// first event), and applies every later notification whose transaction
// the snapshot did not see, in commit order. After the listener
// reconnected, or when a payload was too large to carry the names, it
// reads the group again (a further snapshot). It returns nil after
// emitting GroupDeleted.
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	if err := c.check(); err != nil {
		return err
	}
	s := c.hub.subscribeGroup(group)
	defer c.hub.remove(s)
	view := map[string]int64{}
	var snap *snapshot
	resync := func() error {
		ms, sn, err := c.members(ctx, group)
		if err != nil {
			return err
		}
		clear(view)
		for _, m := range ms {
			inc, _ := strconv.ParseInt(m.Incarnation, 10, 64)
			view[m.ID] = inc
		}
		snap = sn
		emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
		return nil
	}
	if err := resync(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			if err := c.check(); err != nil {
				return err
			}
			return driver.Errorf(driver.CodeCanceled, "postgresql connection closed")
		case <-s.wake:
		}
		for _, n := range s.drain() {
			if n.resync {
				err := resync()
				if errors.Is(err, errGroupGone) || isGroupNotFound(err) {
					emit(driver.GroupEvent{Type: driver.GroupDeleted})
					return nil
				}
				if err != nil {
					return err
				}
				continue
			}
			ev := n.ev
			xid, err := strconv.ParseUint(ev.Xid, 10, 64)
			if err != nil || snap.visible(xid) {
				continue
			}
			switch ev.Kind {
			case "d":
				emit(driver.GroupEvent{Type: driver.GroupDeleted})
				return nil
			case "j":
				if inc, ok := view[ev.Member]; ok && inc >= ev.Inc {
					continue
				}
				m, err := c.eventMember(ctx, ev)
				if err != nil {
					return err
				}
				view[ev.Member] = ev.Inc
				emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
			case "u":
				if inc, ok := view[ev.Member]; !ok || inc != ev.Inc {
					continue
				}
				m, err := c.eventMember(ctx, ev)
				if err != nil {
					return err
				}
				emit(driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
			case "l":
				if inc, ok := view[ev.Member]; !ok || inc != ev.Inc {
					continue
				}
				delete(view, ev.Member)
				emit(driver.GroupEvent{Type: driver.MemberLeft, Member: driver.Member{ID: ev.Member, Incarnation: strconv.FormatInt(ev.Inc, 10)}})
			}
		}
	}
}

var errGroupGone = errors.New("group deleted")

func isGroupNotFound(err error) bool {
	code, ok := driver.CodeOf(err)
	return ok && code == driver.CodeGroupNotFound
}

// eventMember builds the member an event reports, reading capabilities
// too large for the notification from the table.
func (c *conn) eventMember(ctx context.Context, ev *memberEvent) (driver.Member, error) {
	m := driver.Member{ID: ev.Member, Incarnation: strconv.FormatInt(ev.Inc, 10),
		JoinedAt: time.UnixMicro(ev.Joined), UpdatedAt: time.UnixMicro(ev.Updated)}
	switch {
	case ev.Caps != nil:
		b, err := base64.StdEncoding.DecodeString(*ev.Caps)
		if err != nil {
			return m, driver.Wrap(driver.CodeInternal, fmt.Errorf("notification capabilities: %w", err))
		}
		m.Capabilities = b
	case ev.BigCaps:
		err := c.pool.QueryRow(ctx, c.q.caps, ev.Group, ev.Member, ev.Inc).Scan(&m.Capabilities)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return m, c.classify(fmt.Errorf("read capabilities: %w", err))
		}
	default:
		m.Capabilities = []byte{}
	}
	return m, nil
}
