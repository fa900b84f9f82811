package ipcbackend

import "testing"

// The keys tooz 3.x derives for lock names on 64-bit Linux (the key that
// reaches semget, as ipcs shows it), computed with tooz.drivers.ipc.ftok
// and sysv_ipc.
func TestLockKeysAreTooz(t *testing.T) {
	tests := []struct {
		giveKey string
		wantKey int32
	}{
		{giveKey: "l/foo", wantKey: -1850087924},
		{giveKey: "l/bar", wantKey: 2026477986},
		{giveKey: "l/some lock", wantKey: -987958048},
		{giveKey: "l/e/x", wantKey: -1938471170},
	}
	for _, tt := range tests {
		if got := (keys{}).lock(tt.giveKey); got != tt.wantKey {
			t.Errorf("lock key of %q = %d, want tooz's %d", tt.giveKey, got, tt.wantKey)
		}
	}
}

// Namespaces and key kinds give distinct keys.
func TestKeysDiffer(t *testing.T) {
	seen := map[int32]string{}
	for _, ns := range []string{"", "a", "b"} {
		k := keys{ns: ns}
		for what, key := range map[string]int32{
			"lock l/x": k.lock("l/x"), "lock e/x": k.lock("e/x"), "mutex": k.mutex(),
			"segment": k.segment(), "session": k.session("0123456789abcdef"),
		} {
			name := ns + ":" + what
			if prev, ok := seen[key]; ok {
				t.Errorf("%s and %s share key %#x", prev, name, uint32(key))
			}
			if key == 0 {
				t.Errorf("%s has IPC_PRIVATE as its key", name)
			}
			seen[key] = name
		}
	}
}
