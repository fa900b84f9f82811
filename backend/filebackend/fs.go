//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// File and directory modes: the directory tree is private to the user the
// coordinating processes run as.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// ioErr classifies a file-system error: the directory is the "server",
// so failing I/O makes it unavailable. The native error stays reachable.
func ioErr(op string, err error) error {
	return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%s: %w", op, err))
}

// ctxErr classifies a context error.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	}
	return driver.Wrap(driver.CodeCanceled, err)
}

// openFile opens path with flags, close-on-exec, retrying EINTR.
func openFile(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, fileMode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// closeFD closes fd, ignoring errors (every fd closed here was only read
// from, or its writes have already been checked).
func closeFD(fd int) { _ = unix.Close(fd) }

// tryFlock tries once to take a flock of kind how (LOCK_EX or LOCK_SH);
// it reports false when another open file description holds a
// conflicting one.
func tryFlock(fd, how int) (bool, error) {
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EWOULDBLOCK:
			return false, nil
		case unix.EINTR:
			continue
		}
		return false, err
	}
}

// flockCtx takes a flock that is only ever held briefly (a mutex around a
// few writes), polling with a short backoff so ctx can interrupt it: a
// blocking flock(2) could not be cancelled.
func flockCtx(ctx context.Context, fd, how int) error {
	wait := 20 * time.Microsecond
	for {
		ok, err := tryFlock(fd, how)
		if err != nil || ok {
			return err
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(wait*2, 2*time.Millisecond)
	}
}

// sleepCtx sleeps d with ±25% jitter, or returns ctx's classified error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(jitter(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx.Err())
	case <-t.C:
		return nil
	}
}

// jitter spreads d uniformly over [0.75d, 1.25d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + rand.N(d/2+1)
}

// preadAll reads the whole content of fd from offset 0 (small files),
// into buf when it is large enough: a read that does not fill the buffer
// is the whole file, so the common case costs one system call.
func preadAll(fd int, buf []byte) ([]byte, error) {
	buf = buf[:cap(buf)]
	if len(buf) == 0 {
		buf = make([]byte, 4096)
	}
	n := 0
	for {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, err
		}
		n += m
		if m == 0 || n < len(buf) {
			return buf[:n], nil
		}
		buf = append(buf, make([]byte, len(buf))...)
	}
}

// pwriteAll writes b at offset 0 of fd.
func pwriteAll(fd int, b []byte) error {
	n := 0
	for n < len(b) {
		m, err := unix.Pwrite(fd, b[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		n += m
	}
	return nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	randomBytes(b)
	return hex.EncodeToString(b)
}

// randomBytes fills b from the system's secure random source, which
// never fails on the supported systems.
func randomBytes(b []byte) { _, _ = cryptorand.Read(b) }

// writeFileAtomic publishes data at path: it writes a temporary file in
// tmpDir (same file system), optionally fsyncs it, and renames it over
// path, so readers see the old content or the new one, never a part.
func writeFileAtomic(tmpDir, path string, data []byte, sync bool) error {
	tmp := filepath.Join(tmpDir, "w-"+randomHex(12))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// sameFile reports whether fd is still the file at path (not removed, not
// replaced).
func sameFile(fd int, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(fd, &a); err != nil {
		return false, err
	}
	if a.Nlink == 0 {
		return false, nil
	}
	if err := unix.Stat(path, &b); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
