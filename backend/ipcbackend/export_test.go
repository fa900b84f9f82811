package ipcbackend

// SegmentKey returns the shared memory key of namespace ns, for tests
// that check what is left behind.
func SegmentKey(ns string) int32 { return keys{ns: ns}.segment() }

// RemoveToozObjects removes tooz's group list segment and internal lock
// semaphore of namespace ns (the empty one is tooz's own), for tests
// that leave nothing behind.
func RemoveToozObjects(ns string) { keys{ns: ns}.removeToozObjects() }
