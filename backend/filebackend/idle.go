//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import "sync"

// maxIdleLocks bounds the lock files a connection keeps open between
// grants.
const maxIdleLocks = 64

// idleLock is an open description of a lock file whose flock this
// connection released: the next grant of the same key takes it instead of
// opening the file anew (an open and a close, and the name's encoding,
// saved per grant). A description is never used by two grants at once:
// it leaves the cache when a grant takes it, which keeps two grants of
// one connection excluding each other. Lock files are never removed, so
// a kept description stays the file every other process opens.
type idleLock struct {
	name string // the lock file's name in the locks directory
	fd   int
	mem  []byte // its mapping (mmap.go); nil when none
}

// idleLocks is a connection's cache of idle lock-file descriptors, by
// key. Close closes them (closed: nothing is kept any more).
type idleLocks struct {
	mu     sync.Mutex
	closed bool
	m      map[string]idleLock
}

// take returns the idle description of key's lock file and removes it
// from the cache, if there is one.
func (c *idleLocks) take(key string) (idleLock, bool) {
	c.mu.Lock()
	il, ok := c.m[key]
	if ok {
		delete(c.m, key)
	}
	c.mu.Unlock()
	return il, ok
}

// put keeps fd, unlocked, and its mapping as key's idle description, or
// closes both when the cache is closed or full or already has one for
// key.
func (c *idleLocks) put(key, name string, fd int, mem []byte) {
	c.mu.Lock()
	if _, dup := c.m[key]; c.closed || dup || len(c.m) >= maxIdleLocks {
		c.mu.Unlock()
		closeLockFile(fd, mem)
		return
	}
	if c.m == nil {
		c.m = make(map[string]idleLock)
	}
	c.m[key] = idleLock{name: name, fd: fd, mem: mem}
	c.mu.Unlock()
}

// close closes every idle description and keeps none from now on.
func (c *idleLocks) close() {
	c.mu.Lock()
	c.closed = true
	m := c.m
	c.m = nil
	c.mu.Unlock()
	for _, il := range m {
		closeLockFile(il.fd, il.mem)
	}
}
