package membackend

import (
	"sync"
	"sync/atomic"
)

// registry holds the stores of the process by name, the last fencing
// token of every dropped store (kept for the life of the process, so a
// re-created store continues where it left off), and the counter member
// incarnations are drawn from. It is the package's only mutable state.
// Lock order: registry.mu, then a store's faultMu, then its mu.
var registry = struct {
	mu     sync.Mutex
	stores map[string]*store
	tokens map[string]uint64
	incs   atomic.Uint64
}{stores: map[string]*store{}, tokens: map[string]uint64{}}

// nextIncarnation returns a process-wide number greater than every
// earlier one.
func nextIncarnation() uint64 { return registry.incs.Add(1) }

// store is one named in-memory coordination store.
type store struct {
	name string

	// faultMu serializes fault injection so that observer notifications
	// are delivered in the order of the state changes.
	faultMu sync.Mutex

	mu     sync.Mutex
	token  uint64 // the last fencing token issued
	conns  map[*conn]struct{}
	groups map[string]*group
	locks  map[string]*lockState
	leased bool // a lease-mode connection attached: expiry is evaluated
}

// attach registers c with the store called name, creating it if needed.
func attach(name string, c *conn) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	s, ok := registry.stores[name]
	if !ok {
		s = &store{
			name:   name,
			conns:  map[*conn]struct{}{},
			groups: map[string]*group{},
			locks:  map[string]*lockState{},
			token:  registry.tokens[name],
		}
		registry.stores[name] = s
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.leased = s.leased || c.ttl > 0
	s.mu.Unlock()
	c.s = s
}

// lookupStore returns the store called name, or nil.
func lookupStore(name string) *store {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.stores[name]
}

// nextTokenLocked returns a fencing token greater than every token the
// store (and every earlier store of its name) issued.
func (s *store) nextTokenLocked() uint64 {
	s.token++
	return s.token
}

// detachLocked unregisters c and drops the store when it holds nothing
// any more. The caller holds registry.mu and s.mu.
func (s *store) detachLocked(c *conn) {
	delete(s.conns, c)
	if len(s.conns) == 0 && len(s.groups) == 0 && len(s.locks) == 0 {
		registry.tokens[s.name] = s.token
		delete(registry.stores, s.name)
	}
}
