package membackend

// QueueLen returns how many WaitLock calls are queued for key in the store
// called name (0 when either does not exist), for tests that must wait
// until a waiter is queued.
func QueueLen(name, key string) int {
	s := lookupStore(name)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls, ok := s.locks[key]; ok {
		return len(ls.waiters)
	}
	return 0
}

// StoreExists reports whether the store called name is registered.
func StoreExists(name string) bool { return lookupStore(name) != nil }
