package zkbackend

import (
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// client wraps go-zookeeper's connection so that it can be closed safely.
// go-zookeeper's Close races with requests being queued at the same
// moment: such a request may get more replies than its reply channel
// holds, and go-zookeeper's goroutine then blocks forever while flushing
// it, so Close never completes. client therefore refuses new requests
// first, waits for those in progress (cutting the connection when it is
// down, which makes go-zookeeper fail them), and only then closes.
type client struct {
	conn *zk.Conn

	mu      sync.Mutex
	active  int
	closing bool
	idle    chan struct{} // closed when closing and no request is active
}

func newClient(conn *zk.Conn) *client {
	return &client{conn: conn, idle: make(chan struct{})}
}

// enter registers a request; false once the client is closing.
func (c *client) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.active++
	return true
}

func (c *client) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	if c.closing && c.active == 0 {
		close(c.idle)
	}
}

// close stops new requests, waits for the active ones and closes the
// connection (which ends the session on the server when it is
// reachable). cut makes go-zookeeper fail the requests it holds; it is
// called at once when connected is false, else after a grace period.
// Safe to call more than once.
func (c *client) close(connected bool, cut func()) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		if c.active == 0 {
			close(c.idle)
		}
	}
	c.mu.Unlock()
	if !connected {
		cut()
	}
	t := time.NewTimer(2 * time.Second)
	select {
	case <-c.idle:
		t.Stop()
	case <-t.C:
		cut()
		<-c.idle
	}
	c.conn.Close()
}

// Server returns the server of the current or last connection.
func (c *client) Server() string { return c.conn.Server() }

// The requests the driver uses, each refused with zk.ErrClosing once the
// client is closing.

func (c *client) AddAuth(scheme string, auth []byte) error {
	if !c.enter() {
		return zk.ErrClosing
	}
	defer c.leave()
	return c.conn.AddAuth(scheme, auth)
}

func (c *client) Children(path string) ([]string, *zk.Stat, error) {
	if !c.enter() {
		return nil, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Children(path)
}

func (c *client) ChildrenW(path string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	if !c.enter() {
		return nil, nil, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.ChildrenW(path)
}

func (c *client) Create(path string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	if !c.enter() {
		return "", zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Create(path, data, flags, acl)
}

func (c *client) CreateContainer(path string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	if !c.enter() {
		return "", zk.ErrClosing
	}
	defer c.leave()
	return c.conn.CreateContainer(path, data, flags, acl)
}

func (c *client) Delete(path string, version int32) error {
	if !c.enter() {
		return zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Delete(path, version)
}

func (c *client) Exists(path string) (bool, *zk.Stat, error) {
	if !c.enter() {
		return false, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Exists(path)
}

func (c *client) ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	if !c.enter() {
		return false, nil, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.ExistsW(path)
}

func (c *client) Get(path string) ([]byte, *zk.Stat, error) {
	if !c.enter() {
		return nil, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Get(path)
}

func (c *client) GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	if !c.enter() {
		return nil, nil, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.GetW(path)
}

func (c *client) GetACL(path string) ([]zk.ACL, *zk.Stat, error) {
	if !c.enter() {
		return nil, nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.GetACL(path)
}

func (c *client) Multi(ops ...any) ([]zk.MultiResponse, error) {
	if !c.enter() {
		return nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Multi(ops...)
}

func (c *client) Set(path string, data []byte, version int32) (*zk.Stat, error) {
	if !c.enter() {
		return nil, zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Set(path, data, version)
}

func (c *client) Sync(path string) (string, error) {
	if !c.enter() {
		return "", zk.ErrClosing
	}
	defer c.leave()
	return c.conn.Sync(path)
}
