//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: groups are tooz's list (tooz.drivers.ipc): a 1024-byte
// shared memory segment at ftok("GROUP_LIST", "_TOOZ_INTERNAL") holding a
// native-endian uint16 length and a msgpack array of the group ids
// (bytes), changed under tooz's IPC lock "TOOZ_INTERNAL_LOCK". Members,
// which tooz's ipc driver does not have, stay in baton's segment.

const (
	toozSegmentSize   = 1024
	toozGroupListName = "GROUP_LIST"
	toozGroupProject  = "_TOOZ_INTERNAL"
	toozInternalLock  = "TOOZ_INTERNAL_LOCK"
)

// toozConn is a connection in tooz mode. It offers no shared locks: a
// baton shared hold leaves tooz's semaphore at 1, where a tooz process
// would take it.
type toozConn struct {
	driver.Conn
	c *conn
}

var (
	_ driver.Conn       = (*toozConn)(nil)
	_ driver.LockWaiter = (*toozConn)(nil)
)

func (t *toozConn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	return t.c.WaitLock(ctx, req)
}

// toozMutex takes tooz's internal lock as tooz's IPCLock does: the
// one-semaphore set at ftok(name, "__TOOZ_LOCK_") is created at 1 when
// missing, then taken (-1, SEM_UNDO); a set removed meanwhile (tooz's
// release removes it) is looked up again. The returned function releases
// it by giving the semaphore back (+1, SEM_UNDO): waiters, tooz's too,
// wake normally.
func (k keys) toozMutex(ctx context.Context) (func(), error) {
	key := k.lock(userLockPrefix + toozInternalLock)
	for {
		if err := ctx.Err(); err != nil {
			return nil, ctxErr(err)
		}
		id, err := semget(key, 1, unix.IPC_CREAT|unix.IPC_EXCL|permMode)
		switch {
		case err == nil:
			if _, err := semctl(id, 0, cmdSetVal, 1); err != nil {
				return nil, sysErr("initialise tooz's internal lock", err)
			}
		case errors.Is(err, unix.EEXIST):
			if id, err = semget(key, 0, 0); err != nil {
				if gone(err) {
					continue
				}
				return nil, sysErr("get tooz's internal lock", err)
			}
		default:
			return nil, sysErr("create tooz's internal lock", err)
		}
		ts := timespec(50 * time.Millisecond)
		err = semop(id, []sembuf{{num: 0, op: -1, flg: semUndo}}, &ts)
		switch {
		case err == nil:
			return func() { _ = semop(id, []sembuf{{num: 0, op: 1, flg: semUndo}}, nil) }, nil
		case errors.Is(err, unix.EAGAIN), gone(err):
			continue
		}
		return nil, sysErr("take tooz's internal lock", err)
	}
}

// toozList runs fn on tooz's group list, under tooz's internal lock; when
// fn returns write=true the list is written back. The segment is looked
// up for each call: tooz's stop removes it, and a new one is then
// created.
func (k keys) toozList(ctx context.Context, fn func(groups map[string]bool) (write bool, err error)) error {
	unlock, err := k.toozMutex(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	key := fix(ftok(toozGroupListName, k.project(toozGroupProject)))
	id, err := unix.SysvShmGet(int(key), toozSegmentSize, unix.IPC_CREAT|permMode)
	if err != nil {
		return sysErr("get tooz's group list segment", err)
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return sysErr("attach tooz's group list segment", err)
	}
	defer func() { _ = unix.SysvShmDetach(mem) }()
	if len(mem) < toozSegmentSize {
		return driver.Errorf(driver.CodeInternal, "tooz's group list segment has %d bytes", len(mem))
	}
	groups := map[string]bool{}
	if n := int(binary.NativeEndian.Uint16(mem)); n > 0 {
		if n > toozSegmentSize-2 {
			return driver.Errorf(driver.CodeInternal, "tooz's group list has a bad length %d", n)
		}
		var list []any
		if err := msgpack.Unmarshal(mem[2:2+n], &list); err != nil {
			return driver.Wrap(driver.CodeInternal, fmt.Errorf("tooz's group list: %w", err))
		}
		for _, g := range list {
			switch g := g.(type) {
			case []byte:
				groups[string(g)] = true
			case string:
				groups[g] = true
			}
		}
	}
	write, err := fn(groups)
	if err != nil || !write {
		return err
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeArrayLen(len(groups)); err != nil {
		return err
	}
	for g := range groups {
		if err := enc.EncodeBytes([]byte(g)); err != nil {
			return err
		}
	}
	if buf.Len() >= toozSegmentSize-2 {
		return driver.Errorf(driver.CodeInvalidArgument, "the group list would not fit tooz's segment (%d bytes of msgpack; it holds %d): delete groups or use shorter names", buf.Len(), toozSegmentSize-3)
	}
	binary.NativeEndian.PutUint16(mem, uint16(buf.Len()))
	copy(mem[2:], buf.Bytes())
	return nil
}

// removeToozObjects removes tooz's group list segment and internal lock
// of the namespace (RemoveNamespace).
func (k keys) removeToozObjects() {
	key := fix(ftok(toozGroupListName, k.project(toozGroupProject)))
	if id, err := unix.SysvShmGet(int(key), 0, 0); err == nil {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	if id, err := semget(k.lock(userLockPrefix+toozInternalLock), 0, 0); err == nil {
		_ = semRemove(id)
	}
}

// ensureGroup creates baton's record of a group of tooz's list.
func ensureGroup(s *state, group string) *groupRec {
	g, ok := s.Groups[group]
	if !ok {
		g = &groupRec{Created: time.Now().Round(0)}
		s.Groups[group] = g
	}
	return g
}

func (t *toozConn) CreateGroup(ctx context.Context, group string) error {
	if err := t.c.check(ctx); err != nil {
		return err
	}
	return t.c.s.keys.toozList(ctx, func(groups map[string]bool) (bool, error) {
		if groups[group] {
			return false, driver.Errorf(driver.CodeGroupExists, "group %q already exists", group)
		}
		if err := t.c.update(ctx, func(s *state) error { ensureGroup(s, group); return nil }); err != nil {
			return false, err
		}
		groups[group] = true
		return true, nil
	})
}

func (t *toozConn) DeleteGroup(ctx context.Context, group string) error {
	if err := t.c.check(ctx); err != nil {
		return err
	}
	return t.c.s.keys.toozList(ctx, func(groups map[string]bool) (bool, error) {
		if !groups[group] {
			return false, groupNotFound(group)
		}
		if err := t.c.DeleteGroup(ctx, group); err != nil && !isCode(err, driver.CodeGroupNotFound) {
			return false, err
		}
		delete(groups, group)
		return true, nil
	})
}

func (t *toozConn) Groups(ctx context.Context) ([]string, error) {
	if err := t.c.check(ctx); err != nil {
		return nil, err
	}
	var out []string
	err := t.c.s.keys.toozList(ctx, func(groups map[string]bool) (bool, error) {
		for g := range groups {
			out = append(out, g)
		}
		return false, nil
	})
	return out, err
}

// inList runs fn while group is in tooz's list (CodeGroupNotFound
// otherwise).
func (t *toozConn) inList(ctx context.Context, group string, fn func() error) error {
	if err := t.c.check(ctx); err != nil {
		return err
	}
	return t.c.s.keys.toozList(ctx, func(groups map[string]bool) (bool, error) {
		if !groups[group] {
			return false, groupNotFound(group)
		}
		return false, fn()
	})
}

func (t *toozConn) Join(ctx context.Context, group string, caps []byte) error {
	return t.inList(ctx, group, func() error {
		if err := t.c.update(ctx, func(s *state) error { ensureGroup(s, group); return nil }); err != nil {
			return err
		}
		return t.c.Join(ctx, group, caps)
	})
}

func (t *toozConn) Leave(ctx context.Context, group string) error {
	return t.inList(ctx, group, func() error {
		err := t.c.Leave(ctx, group)
		if isCode(err, driver.CodeGroupNotFound) {
			return notMember(t.c.member, group)
		}
		return err
	})
}

func (t *toozConn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	return t.inList(ctx, group, func() error {
		err := t.c.UpdateCapabilities(ctx, group, caps)
		if isCode(err, driver.CodeGroupNotFound) {
			return notMember(t.c.member, group)
		}
		return err
	})
}

func (t *toozConn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	var out []driver.Member
	err := t.inList(ctx, group, func() error {
		ms, err := t.c.Members(ctx, group)
		if isCode(err, driver.CodeGroupNotFound) {
			return nil
		}
		out = ms
		return err
	})
	return out, err
}

// Close first drops baton's records of groups tooz deleted (tooz's
// delete_group knows nothing of them) that no other live member holds,
// so that the namespace's last connection can remove the segment.
func (t *toozConn) Close(ctx context.Context) error {
	if t.c.check(ctx) == nil {
		_ = t.c.s.keys.toozList(ctx, func(groups map[string]bool) (bool, error) {
			return false, t.c.update(ctx, func(s *state) error {
				for g, rec := range s.Groups {
					if groups[g] {
						continue
					}
					live := false
					for _, m := range rec.Members {
						if m.Session != t.c.sessHex && t.c.alive(s, m.Session) {
							live = true
						}
					}
					if !live {
						delete(s.Groups, g)
					}
				}
				return nil
			})
		})
	}
	return t.c.Close(ctx)
}
