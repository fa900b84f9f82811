package ipcbackend

// SegmentKey returns the shared memory key of namespace ns, for tests
// that check what is left behind.
func SegmentKey(ns string) int32 { return keys{ns: ns}.segment() }
