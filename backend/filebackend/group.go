//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

func groupNotFound(group string) error {
	return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
}

// CreateGroup creates a group: its directory is built under a temporary
// name (name file, lock file) and renamed into place, so a group exists
// completely or not at all. CodeGroupExists when it exists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	tmp := filepath.Join(c.l.tmp, "g-"+randomHex(12))
	if err := os.Mkdir(tmp, dirMode); err != nil {
		return ioErr("create group", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, groupNameFile), []byte(group), fileMode); err != nil {
		return ioErr("create group", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, groupLockFile), nil, fileMode); err != nil {
		return ioErr("create group", err)
	}
	dir := c.l.groupDir(group)
	err := os.Rename(tmp, dir)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY):
		if err := c.checkGroupName(dir, group); err != nil {
			return err
		}
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", group)
	}
	return ioErr("create group", err)
}

// checkGroupName verifies, for a hashed directory name, that dir belongs
// to group and not to another name with the same SHA-256.
func (c *conn) checkGroupName(dir, group string) error {
	if !strings.HasPrefix(filepath.Base(dir), hashPrefix) {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, groupNameFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return groupNotFound(group)
	case err != nil:
		return ioErr("read group name", err)
	case string(b) != group:
		return driver.Errorf(driver.CodeInternal, "group %q: SHA-256 of its name collides with group %q", group, b)
	}
	return nil
}

// lockGroup takes the flock serializing changes to group (joins, leaves,
// updates, removal of dead members, deletion) and returns the descriptor
// to pass to unlockClose. The flock is taken on the group's current lock
// file: when the group was deleted (or deleted and created again) while
// this call waited, it starts over. CodeGroupNotFound when the group does
// not exist.
func (c *conn) lockGroup(ctx context.Context, group string) (int, error) {
	dir := c.l.groupDir(group)
	path := filepath.Join(dir, groupLockFile)
	for {
		fd, err := openFile(path, unix.O_RDONLY)
		if errors.Is(err, unix.ENOENT) {
			return -1, groupNotFound(group)
		}
		if err != nil {
			return -1, ioErr("open group lock", err)
		}
		if err := flockCtx(ctx, fd, unix.LOCK_EX); err != nil {
			closeFD(fd)
			if _, ok := driver.CodeOf(err); ok {
				return -1, err
			}
			return -1, ioErr("lock group", err)
		}
		same, err := sameFile(fd, path)
		if err != nil {
			unlockClose(fd)
			return -1, ioErr("check group lock", err)
		}
		if same {
			if err := c.checkGroupName(dir, group); err != nil {
				unlockClose(fd)
				return -1, err
			}
			return fd, nil
		}
		unlockClose(fd)
	}
}

// DeleteGroup deletes a group without live members: under the group's
// flock it checks every member's session (removing dead members), then
// renames the directory away (the group is gone at that instant) and
// removes it. CodeGroupNotFound, CodeGroupNotEmpty.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	fd, err := c.lockGroup(ctx, group)
	if err != nil {
		return err
	}
	defer unlockClose(fd)
	ms, err := c.listMembersLocked(group)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has %d live members", group, len(ms))
	}
	trash := filepath.Join(c.l.tmp, "d-"+randomHex(12))
	if err := os.Rename(c.l.groupDir(group), trash); err != nil {
		return ioErr("delete group", err)
	}
	if err := os.RemoveAll(trash); err != nil {
		c.log.Debug("remove a deleted group's files", zap.String("dir", trash), zap.Error(err))
	}
	return nil
}

// Groups lists every group: the directories under groups/, named by
// their encoded name (or, for hashed names, by their name file).
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(c.l.groups)
	if err != nil {
		return nil, ioErr("list groups", err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		name, err := decodeName(e.Name())
		if errors.Is(err, errHashedName) {
			b, rerr := os.ReadFile(filepath.Join(c.l.groups, e.Name(), groupNameFile))
			if errors.Is(rerr, os.ErrNotExist) {
				continue // deleted meanwhile
			}
			if rerr != nil {
				return nil, ioErr("read group name", rerr)
			}
			name, err = string(b), nil
		}
		if err != nil {
			c.log.Debug("ignoring a foreign entry in the groups directory")
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

// groupErr turns a failure to reach a group's directory into
// CodeGroupNotFound when it is missing.
func groupErr(group, op string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return groupNotFound(group)
	}
	return ioErr(fmt.Sprintf("%s %q", op, group), err)
}
