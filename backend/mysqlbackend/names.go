package mysqlbackend

import "sync"

// maxCachedNames bounds a connection's cache of GET_LOCK names.
const maxCachedNames = 1024

// lockNames caches the GET_LOCK name of each key a connection uses (a
// SHA-256 and its encoding per acquire and per release otherwise). The
// cache starts over when full.
type lockNames struct {
	mu sync.Mutex
	m  map[string]string
}

// lockName returns key's GET_LOCK name in this connection's namespace.
func (c *conn) lockName(key string) string {
	c.names.mu.Lock()
	defer c.names.mu.Unlock()
	if name, ok := c.names.m[key]; ok {
		return name
	}
	if c.names.m == nil || len(c.names.m) >= maxCachedNames {
		c.names.m = make(map[string]string)
	}
	name := lockName(c.dbName, c.s.tablePrefix, c.ns, key)
	c.names.m[key] = name
	return name
}
