//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: the directory is tooz's (tooz.drivers.file); see doc.go.

// Backend lock key prefixes (backend/names.go).
const (
	userLockPrefix = "l/"
)

// toozConn is a connection in tooz mode.
type toozConn struct {
	dir, groups, tmp, driverLock string
	own                          string // DIR/.baton: baton's files tooz has no place for
	timeout                      time.Duration
	member                       string
	obs                          driver.SessionObserver
	log                          *zap.Logger
	clock                        driver.Clock

	mu     sync.Mutex
	joined map[string]bool
	grants map[toozGrantKey]string // → lock file path
	lost   error
	closed bool
}

type toozGrantKey struct {
	key   string
	token uint64
}

var (
	_ driver.Conn         = (*toozConn)(nil)
	_ driver.LockWaiter   = (*toozConn)(nil)
	_ driver.SharedLocker = (*toozConn)(nil)
)

// toozConns are this process's connections in tooz mode, by directory
// and member, for ExpireSession.
var toozConns = struct {
	sync.Mutex
	m map[string][]*toozConn
}{m: map[string][]*toozConn{}}

func toozConnKey(dir, member string) string { return dir + "\x00" + member }

// toozDir is tooz's directory of a file:// URL: its path, cleaned.
func toozDir(cfg *driver.Config) (string, error) {
	if _, err := resolve(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path, cfg.Options); err != nil {
		return "", err
	}
	if err := checkTooz(cfg.Options); err != nil {
		return "", err
	}
	return filepath.Clean(cfg.Path), nil
}

func openTooz(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	dir, err := toozDir(cfg)
	if err != nil {
		return nil, err
	}
	c := &toozConn{
		dir: dir, groups: filepath.Join(dir, "groups"), tmp: filepath.Join(dir, "tmp"),
		driverLock: filepath.Join(dir, ".driver_lock"), own: filepath.Join(dir, ".baton"),
		timeout: cfg.Options.Duration(optTimeout), member: cfg.MemberID, obs: cfg.Observer, log: cfg.Logger, clock: cfg.Clock,
		joined: map[string]bool{}, grants: map[toozGrantKey]string{},
	}
	for _, d := range []string{c.dir, c.groups, c.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, ioErr("create directory", err)
		}
	}
	toozConns.Lock()
	k := toozConnKey(dir, c.member)
	toozConns.m[k] = append(toozConns.m[k], c)
	toozConns.Unlock()
	return c, nil
}

// Session: liveness is tooz's, the mtime of the member files, which
// count for timeout after the last heartbeat.
func (c *toozConn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: c.timeout}
}

// check fails once the connection is closed or its session lost.
func (c *toozConn) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLocked()
}

func (c *toozConn) checkLocked() error {
	switch {
	case c.closed:
		return driver.Errorf(driver.CodeCanceled, "connection closed")
	case c.lost != nil:
		return c.lost
	}
	return nil
}

// Renew is tooz's heartbeat: it touches (utime) this member's files. A
// member file someone removed (an administrator, ExpireSession, a
// DeleteGroup that found it stale) ends the session.
func (c *toozConn) Renew(ctx context.Context) error {
	c.mu.Lock()
	if err := c.checkLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	var gone string
	now := time.Now()
	for g := range c.joined {
		err := os.Chtimes(c.memberPath(g, c.member), now, now)
		if errors.Is(err, os.ErrNotExist) {
			gone = g
			break
		}
		if err != nil {
			c.mu.Unlock()
			return ioErr("heartbeat", err)
		}
	}
	c.mu.Unlock()
	if gone != "" {
		return c.lose(fmt.Errorf("the member file of group %q was removed", gone))
	}
	return nil
}

// lose ends the session: the locks are released (other processes can
// take them), the member files removed, and the observer told.
func (c *toozConn) lose(cause error) error {
	c.mu.Lock()
	if c.lost != nil || c.closed {
		err := c.checkLocked()
		c.mu.Unlock()
		return err
	}
	c.lost = driver.Wrap(driver.CodeLost, fmt.Errorf("file session of %q: %w", c.member, cause))
	c.mu.Unlock()
	c.cleanup(context.Background())
	c.obs.Lost(cause)
	return c.lost
}

// cleanup releases every grant and removes every member file.
func (c *toozConn) cleanup(ctx context.Context) {
	c.mu.Lock()
	grants := c.grants
	c.grants = map[toozGrantKey]string{}
	joined := c.joined
	c.joined = map[string]bool{}
	c.mu.Unlock()
	for k, p := range grants {
		unlockFile(p, k.token)
	}
	if len(joined) == 0 {
		return
	}
	_ = withDriverLock(ctx, c.driverLock, func() error {
		for g := range joined {
			_ = os.Remove(c.memberPath(g, c.member))
		}
		return nil
	})
}

// Close releases the locks and leaves the groups, as tooz's stop does.
func (c *toozConn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cleanup(ctx)
	toozConns.Lock()
	k := toozConnKey(c.dir, c.member)
	cs := toozConns.m[k]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(toozConns.m, k)
	} else {
		toozConns.m[k] = cs
	}
	toozConns.Unlock()
	return nil
}

// --- locks ---

// lockPath is the file of a backend lock key. A user lock NAME is tooz's
// file: the absolute path of DIR joined with NAME, as tooz's
// utils.safe_abs_path makes it (dot segments resolved, so "a/../b" is the
// lock "b", as in tooz). A name tooz refuses (the path leaves DIR, or is
// DIR, groups, tmp or .driver_lock) or cannot open (a directory in the
// way, a component over 255 bytes) cannot be held by tooz, and gets a
// file of baton's own under DIR/.baton/locks; so do leadership keys,
// under DIR/.baton/keys. A name whose path tooz's prefix check lets out
// of DIR (DIR=/a and "../ab") is refused.
func (c *toozConn) lockPath(key string) (string, error) {
	name, user := strings.CutPrefix(key, userLockPrefix)
	if !user {
		return filepath.Join(c.own, "keys", encodeName(key)), nil
	}
	own := filepath.Join(c.own, "locks", encodeName(name))
	p := name
	if !strings.HasPrefix(p, "/") {
		p = c.dir + "/" + p
	} else if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
		return own, nil // Python keeps a leading "//": never under DIR
	}
	p = filepath.Clean(p)
	switch {
	case !strings.HasPrefix(p, c.dir):
		return own, nil
	case p == c.dir || p == c.groups || p == c.tmp || p == c.driverLock:
		return own, nil
	case !strings.HasPrefix(p, c.dir+"/"):
		return "", driver.Errorf(driver.CodeInvalidArgument,
			"compat=tooz: tooz would lock %q, outside the directory (its prefix check lets it through); refused", p)
	}
	var st unix.Stat_t
	switch err := unix.Stat(p, &st); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return own, nil
	case errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.ENOTDIR):
		return own, nil
	}
	return p, nil
}

func (c *toozConn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	return c.tryLock(ctx, req, false)
}

func (c *toozConn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	return c.tryLock(ctx, req, true)
}

func (c *toozConn) tryLock(ctx context.Context, req driver.LockRequest, shared bool) (driver.Lease, bool, error) {
	if err := ctx.Err(); err != nil {
		return driver.Lease{}, false, ctxErr(err)
	}
	if err := c.check(); err != nil {
		return driver.Lease{}, false, err
	}
	p, err := c.lockPath(req.Key)
	if err != nil {
		return driver.Lease{}, false, err
	}
	token, ok, err := tryLockFile(p, req.Member, shared)
	if errors.Is(err, errNoTooz) {
		// The path became unusable for tooz (a race with a tooz
		// process creating a directory there): baton's own file.
		name := strings.TrimPrefix(req.Key, userLockPrefix)
		p = filepath.Join(c.own, "locks", encodeName(name))
		token, ok, err = tryLockFile(p, req.Member, shared)
	}
	if err != nil {
		return driver.Lease{}, false, ioErr("lock", err)
	}
	if !ok {
		return driver.Lease{}, false, nil
	}
	c.mu.Lock()
	if err := c.checkLocked(); err != nil {
		c.mu.Unlock()
		unlockFile(p, token)
		return driver.Lease{}, false, err
	}
	c.grants[toozGrantKey{req.Key, token}] = p
	c.mu.Unlock()
	return driver.Lease{Token: token}, true, nil
}

// WaitLock polls TryLock, as fasteners polls: from 1ms, doubling up to
// 50ms.
func (c *toozConn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	pause := time.Millisecond
	for {
		sent := c.clock.Now()
		l, ok, err := c.TryLock(ctx, req)
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			l.Sent = sent
			return l, nil
		}
		t := c.clock.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return driver.Lease{}, ctxErr(ctx.Err())
		case <-t.C():
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func (c *toozConn) Unlock(ctx context.Context, key string, token uint64) error {
	k := toozGrantKey{key, token}
	c.mu.Lock()
	p, ok := c.grants[k]
	delete(c.grants, k)
	c.mu.Unlock()
	if !ok || !unlockFile(p, token) {
		return driver.Errorf(driver.CodeNotHeld, "lock is not held by grant %d", token)
	}
	return nil
}

// RefreshLock: locks live as long as the process (Lease.TTL 0); it
// reports whether the grant still holds.
func (c *toozConn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	c.mu.Lock()
	_, ok := c.grants[toozGrantKey{key, token}]
	c.mu.Unlock()
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "lock is not held by grant %d", token)
	}
	return nil
}

func (c *toozConn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	if err := c.check(); err != nil {
		return driver.Holder{}, err
	}
	p, err := c.lockPath(key)
	if err != nil {
		return driver.Holder{}, err
	}
	m, t, held, err := holderOfFile(p)
	if err != nil {
		return driver.Holder{}, ioErr("read lock holder", err)
	}
	if !held && strings.HasPrefix(key, userLockPrefix) {
		// A name whose tooz path is unusable may be held in baton's file.
		own := filepath.Join(c.own, "locks", encodeName(strings.TrimPrefix(key, userLockPrefix)))
		if own != p {
			if m, t, held, err = holderOfFile(own); err != nil {
				return driver.Holder{}, ioErr("read lock holder", err)
			}
		}
	}
	if !held {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock is free")
	}
	return driver.Holder{Member: m, Token: t}, nil
}

// --- groups ---

// toozHash is tooz's file-system-safe name of an id: the hex SHA-1 of
// its UTF-8 bytes.
func toozHash(id string) string {
	h := sha1.Sum([]byte(id))
	return hex.EncodeToString(h[:])
}

func (c *toozConn) groupDir(group string) string { return filepath.Join(c.groups, toozHash(group)) }

func (c *toozConn) memberPath(group, member string) string {
	return filepath.Join(c.groupDir(group), toozHash(member)+".raw")
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// groupMetadata is tooz's .metadata: {group_id: bytes, encoded: true}.
func groupMetadata(group string) []byte {
	var w mpWriter
	w.mapHeader(2)
	w.str("group_id")
	w.bin([]byte(group))
	w.str("encoded")
	w.boolean(true)
	return w.Bytes()
}

// CreateGroup creates groups/SHA1/ and its .metadata (written under tmp
// and linked into place, so that of two creators exactly one wins; tooz
// itself renames, and rewrites the metadata of an existing group).
func (c *toozConn) CreateGroup(ctx context.Context, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	dir := c.groupDir(group)
	meta := filepath.Join(dir, ".metadata")
	if exists(meta) {
		return driver.Errorf(driver.CodeGroupExists, "group exists")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ioErr("create group", err)
	}
	tmp := filepath.Join(c.tmp, "baton-"+randomHex(12))
	if err := os.WriteFile(tmp, groupMetadata(group), 0o644); err != nil {
		return ioErr("create group", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, meta); err != nil {
		if errors.Is(err, os.ErrExist) {
			return driver.Errorf(driver.CodeGroupExists, "group exists")
		}
		return ioErr("create group", err)
	}
	return nil
}

// live reports whether a member file's mtime is within tooz's window:
// 0 <= now - mtime <= timeout.
func (c *toozConn) live(mtime time.Time) bool {
	d := time.Since(mtime)
	return d >= 0 && d <= c.timeout
}

// DeleteGroup deletes a group with no live member, under the driver
// lock. Member files older than the timeout (dead members, which tooz
// never removes and whose files make tooz's delete_group fail) are
// removed first.
func (c *toozConn) DeleteGroup(ctx context.Context, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	dir := c.groupDir(group)
	return withDriverLock(ctx, c.driverLock, func() error {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return driver.Errorf(driver.CodeGroupNotFound, "group not found")
		}
		if err != nil {
			return ioErr("list group", err)
		}
		for _, e := range ents {
			if e.Name() == ".metadata" {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return ioErr("list group", err)
			}
			if strings.HasSuffix(e.Name(), ".raw") && !c.live(info.ModTime()) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
				continue
			}
			return driver.Errorf(driver.CodeGroupNotEmpty, "group has live members")
		}
		gone := filepath.Join(c.tmp, "baton-del-"+randomHex(12))
		if err := os.Rename(dir, gone); err != nil {
			return ioErr("delete group", err)
		}
		return os.RemoveAll(gone)
	})
}

// Groups lists the groups whose .metadata reads (tooz's get_groups).
func (c *toozConn) Groups(ctx context.Context) ([]string, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(c.groups)
	if err != nil {
		return nil, ioErr("list groups", err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(c.groups, e.Name(), ".metadata"))
		if err != nil {
			continue // being created or deleted, or not a group
		}
		m, err := mpMap(b)
		if err != nil {
			continue
		}
		id, err := mpText(m["group_id"])
		if err != nil {
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// memberFile builds tooz's member file: {capabilities, joined_on,
// member_id (bytes), encoded: true}. Capabilities that are one msgpack
// object (as membership encodes them, like tooz's utils.dumps) are that
// object; other bytes are stored as a msgpack bin, flagged by an extra
// key that tooz ignores, so that baton reads the same bytes back.
func memberFile(member string, caps []byte, joined, updated time.Time) []byte {
	raw := len(caps) == 0 || !mpOneObject(caps) || mpIsBin(caps)
	var w mpWriter
	n := 4
	if raw {
		n++
	}
	if !updated.IsZero() {
		n++
	}
	w.mapHeader(n)
	w.str("capabilities")
	if raw {
		w.bin(caps)
	} else {
		w.Write(caps)
	}
	w.str("joined_on")
	w.datetime(joined)
	w.str("member_id")
	w.bin([]byte(member))
	w.str("encoded")
	w.boolean(true)
	if raw {
		w.str(rawCapsKey)
		w.boolean(true)
	}
	if !updated.IsZero() {
		w.str(updatedKey)
		w.datetime(updated)
	}
	return w.Bytes()
}

// Extra keys of baton's member files (tooz's schema allows extra keys):
// rawCapsKey marks capabilities stored as bytes, updatedKey is when they
// were last updated.
const (
	rawCapsKey = "baton_raw_capabilities"
	updatedKey = "baton_updated_on"
)

// readMember decodes a member file.
func readToozMember(b []byte) (driver.Member, []byte, error) {
	m, err := mpMap(b)
	if err != nil {
		return driver.Member{}, nil, err
	}
	id, err := mpText(m["member_id"])
	if err != nil {
		return driver.Member{}, nil, fmt.Errorf("member_id: %w", err)
	}
	joined, err := mpDatetime(m["joined_on"])
	if err != nil {
		return driver.Member{}, nil, fmt.Errorf("joined_on: %w", err)
	}
	caps := []byte(m["capabilities"])
	if flag, ok := m[rawCapsKey]; ok && len(flag) == 1 && flag[0] == 0xc3 {
		if caps, err = mpBytes(m["capabilities"]); err != nil {
			return driver.Member{}, nil, fmt.Errorf("capabilities: %w", err)
		}
	}
	if len(caps) == 0 {
		caps = nil
	}
	updated := joined
	if raw, ok := m[updatedKey]; ok {
		if u, err := mpDatetime(raw); err == nil && u.After(joined) {
			updated = u
		}
	}
	return driver.Member{ID: id, Capabilities: caps, Incarnation: hex.EncodeToString(m["joined_on"]),
		JoinedAt: joined, UpdatedAt: updated}, m["joined_on"], nil
}

// Join writes this member's file under the driver lock, as tooz does
// (atomically, through tmp). A file of the same member that is live is
// CodeMemberExists; a stale one (a dead incarnation, which tooz would
// refuse forever) is replaced.
func (c *toozConn) Join(ctx context.Context, group string, caps []byte) error {
	if err := c.check(); err != nil {
		return err
	}
	dir := c.groupDir(group)
	me := c.memberPath(group, c.member)
	return withDriverLock(ctx, c.driverLock, func() error {
		if !exists(filepath.Join(dir, ".metadata")) {
			return driver.Errorf(driver.CodeGroupNotFound, "group not found")
		}
		if st, err := os.Stat(me); err == nil && c.live(st.ModTime()) {
			return driver.Errorf(driver.CodeMemberExists, "member exists")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.checkLocked(); err != nil {
			return err
		}
		if err := writeFileAtomic(c.tmp, me, memberFile(c.member, caps, time.Now(), time.Time{}), false); err != nil {
			return ioErr("join", err)
		}
		c.joined[group] = true
		return nil
	})
}

func (c *toozConn) Leave(ctx context.Context, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	dir := c.groupDir(group)
	return withDriverLock(ctx, c.driverLock, func() error {
		if !exists(filepath.Join(dir, ".metadata")) {
			return driver.Errorf(driver.CodeGroupNotFound, "group not found")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		err := os.Remove(c.memberPath(group, c.member))
		delete(c.joined, group)
		if errors.Is(err, os.ErrNotExist) {
			return driver.Errorf(driver.CodeNotMember, "not a member")
		}
		if err != nil {
			return ioErr("leave", err)
		}
		return nil
	})
}

// Members lists the member files whose mtime is within the timeout, under
// the driver lock (tooz writes member files in place under it).
func (c *toozConn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	dir := c.groupDir(group)
	var out []driver.Member
	err := withDriverLock(ctx, c.driverLock, func() error {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return driver.Errorf(driver.CodeGroupNotFound, "group not found")
		}
		if err != nil {
			return ioErr("list members", err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".raw") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			st, err := os.Stat(p)
			if err != nil || !c.live(st.ModTime()) {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			m, _, err := readToozMember(b)
			if err != nil {
				c.log.Debug("tooz member file unreadable", zap.String("path", p), zap.Error(err))
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// UpdateCapabilities rewrites this member's file with new capabilities
// (tooz's file driver lacks update_capabilities; its get_member_
// capabilities reads them).
func (c *toozConn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	if err := c.check(); err != nil {
		return err
	}
	dir := c.groupDir(group)
	me := c.memberPath(group, c.member)
	return withDriverLock(ctx, c.driverLock, func() error {
		if !exists(filepath.Join(dir, ".metadata")) {
			return driver.Errorf(driver.CodeGroupNotFound, "group not found")
		}
		b, err := os.ReadFile(me)
		if errors.Is(err, os.ErrNotExist) {
			return driver.Errorf(driver.CodeNotMember, "not a member")
		}
		if err != nil {
			return ioErr("update capabilities", err)
		}
		m, _, err := readToozMember(b)
		if err != nil {
			return driver.Wrap(driver.CodeInternal, fmt.Errorf("member file: %w", err))
		}
		if err := writeFileAtomic(c.tmp, me, memberFile(c.member, caps, m.JoinedAt, time.Now()), false); err != nil {
			return ioErr("update capabilities", err)
		}
		return nil
	})
}

// expireTooz is ExpireSession in tooz mode: it removes the member's files
// in every group of dir (tooz and baton no longer list it) and ends the
// sessions of that member's connections in this process (a connection in
// another process ends at its next heartbeat, finding its file gone).
func expireTooz(dir, member string) (int, error) {
	n := 0
	groups := filepath.Join(dir, "groups")
	ents, err := os.ReadDir(groups)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, ioErr("list groups", err)
	}
	name := toozHash(member) + ".raw"
	for _, e := range ents {
		if err := os.Remove(filepath.Join(groups, e.Name(), name)); err == nil {
			n++
		}
	}
	toozConns.Lock()
	cs := append([]*toozConn(nil), toozConns.m[toozConnKey(dir, member)]...)
	toozConns.Unlock()
	for _, c := range cs {
		if c.check() == nil {
			_ = c.lose(errors.New("session expired (ExpireSession)"))
			n++
		}
	}
	return n, nil
}
