package filebackend

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

var (
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
)

// settleSteps are the re-checks after an event. One is not enough: a
// dying process's close is reported before the kernel drops its flocks,
// and a member's record can be written just after the event that woke us.
var settleSteps = []time.Duration{2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond}

// safetyRecheck is how often a watch re-checks with no event at all, in
// case a change produced none (nothing known does).
const safetyRecheck = 5 * time.Second

// watchLoop calls recheck after every event of subs (nil entries are
// subscriptions that failed: the loop then polls every check_interval),
// along settleSteps after the last event, and every safetyRecheck, until
// recheck reports done or fails, ctx is done (ctx.Err() is returned) or
// the session ends.
func (c *conn) watchLoop(ctx context.Context, subs [2]*subscription, recheck func() (bool, error)) error {
	var ch [2]<-chan struct{}
	polling := false
	for i, s := range subs {
		if s == nil {
			polling = true
		} else {
			ch[i] = s.C
		}
	}
	step := len(settleSteps)
	for {
		d := safetyRecheck
		if step < len(settleSteps) {
			d = settleSteps[step]
		}
		if polling {
			d = min(d, c.s.checkInterval)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-c.gone:
			t.Stop()
			return c.check(ctx)
		case <-ch[0]:
			step = 0
		case <-ch[1]:
			step = 0
		case <-t.C:
			if step < len(settleSteps) {
				step++
			}
		}
		t.Stop()
		done, err := recheck()
		if err != nil || done {
			return err
		}
	}
}

// WatchGroup pushes group's membership: a snapshot first, then the
// joins, leaves and updates that turn each listing into the next. inotify on the group's
// directory reports joins, leaves and updates; inotify on the sessions
// directory reports the death of a member's process (its session file is
// closed) and removed sessions. It blocks until ctx is done (returning
// ctx.Err()), the group is deleted (GroupDeleted is emitted, then it
// returns nil) or a listing fails. CodeGroupNotFound if the group does not
// exist at the start.
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	dir := c.l.groupDir(group)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return groupErr(group, "watch", err)
	}
	subG, err := c.subscribe(dir, watchGroupDir)
	if errors.Is(err, unix.ENOENT) {
		return groupNotFound(group)
	}
	subS, _ := c.subscribe(c.l.sessions, watchSessionsDir)
	for _, s := range []*subscription{subG, subS} {
		if s != nil {
			defer s.cancel()
		}
	}
	ms, err := c.members(ctx, group)
	if err != nil {
		return err
	}
	sortMembers(ms)
	emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
	last := ms
	return c.watchLoop(ctx, [2]*subscription{subG, subS}, func() (bool, error) {
		var now unix.Stat_t
		err := unix.Stat(dir, &now)
		if errors.Is(err, unix.ENOENT) || (err == nil && (now.Ino != st.Ino || now.Dev != st.Dev)) {
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return true, nil
		}
		if err != nil {
			return false, ioErr("watch group", err)
		}
		ms, err := c.members(ctx, group)
		if isCode(err, driver.CodeGroupNotFound) {
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return true, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, err
		}
		sortMembers(ms)
		for _, ev := range diffMembers(last, ms) {
			emit(ev)
		}
		last = ms
		return false, nil
	})
}

func sortMembers(ms []driver.Member) {
	slices.SortFunc(ms, func(a, b driver.Member) int { return strings.Compare(a.ID, b.ID) })
}

// diffMembers returns the events that turn listing a into listing b
// (both sorted by ID): departures first, then joins and updates in ID
// order. A member whose incarnation changed left and joined again.
func diffMembers(a, b []driver.Member) []driver.GroupEvent {
	var evs []driver.GroupEvent
	next := make(map[string]driver.Member, len(b))
	for _, m := range b {
		next[m.ID] = m
	}
	prev := make(map[string]driver.Member, len(a))
	for _, m := range a {
		prev[m.ID] = m
		if n, ok := next[m.ID]; !ok || n.Incarnation != m.Incarnation {
			evs = append(evs, driver.GroupEvent{Type: driver.MemberLeft, Member: m})
		}
	}
	for _, m := range b {
		p, ok := prev[m.ID]
		switch {
		case !ok || p.Incarnation != m.Incarnation:
			evs = append(evs, driver.GroupEvent{Type: driver.MemberJoined, Member: m})
		case !bytes.Equal(p.Capabilities, m.Capabilities) || !p.UpdatedAt.Equal(m.UpdatedAt):
			evs = append(evs, driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
		}
	}
	return evs
}

// WatchHolder pushes key's holder: the current one first, then every
// change, woken by inotify on the lock file (grants and releases write it,
// a dying holder's exit closes it) and on the sessions directory. It
// blocks until ctx is done (returning ctx.Err()) or the session ends.
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(h driver.Holder, held bool)) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	name := encodeName(key)
	// The lock file must exist to be watched; creating it is what the
	// first TryLock would do.
	fd, err := c.openLock(name, unix.O_RDONLY|unix.O_CREAT)
	if err != nil {
		return err
	}
	closeFD(fd)
	subL, _ := c.subscribe(c.l.lockFile(name), watchLockFile)
	subS, _ := c.subscribe(c.l.sessions, watchSessionsDir)
	for _, s := range []*subscription{subL, subS} {
		if s != nil {
			defer s.cancel()
		}
	}
	current := func() (driver.Holder, bool, error) {
		h, err := c.Holder(ctx, key)
		if isCode(err, driver.CodeNotFound) {
			return driver.Holder{}, false, nil
		}
		return h, err == nil, err
	}
	h, held, err := current()
	if err != nil {
		return err
	}
	emit(h, held)
	return c.watchLoop(ctx, [2]*subscription{subL, subS}, func() (bool, error) {
		nh, nheld, err := current()
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, err
		}
		if nh != h || nheld != held {
			h, held = nh, nheld
			emit(h, held)
		}
		return false, nil
	})
}
