package ipcbackend

import (
	"crypto/md5"
	"math/big"
	"strings"
)

// System V keys are 32-bit integers (key_t). tooz maps a name into the
// range of Python's sysv_ipc constants KEY_MIN and KEY_MAX, which on
// 64-bit Linux are those of a C long (-2⁶³ and 2⁶³-1), and sysv_ipc then
// narrows that value to key_t, keeping its low 32 bits.
const keyRange = 1<<64 - 1

// ftok is tooz's key derivation (tooz.drivers.ipc.ftok) as it reaches
// semget on 64-bit Linux: the MD5 of project followed by name, as a
// 128-bit integer, modulo the key range, plus KEY_MIN, narrowed to 32
// bits. Equal inputs give tooz's key, so a baton process and a tooz
// process on one host use the same semaphore for one lock name.
func ftok(name, project string) int32 {
	h := md5.New()
	h.Write([]byte(project))
	h.Write([]byte(name))
	n := new(big.Int).SetBytes(h.Sum(nil))
	n.Mod(n, new(big.Int).SetUint64(keyRange))
	// n + KEY_MIN = n - 2⁶³, whose low 32 bits are those of n (2⁶³ is a
	// multiple of 2³²).
	return int32(uint32(n.Uint64()))
}

// Projects of the keys. tooz's lock project is "__TOOZ_LOCK_"; the others
// are baton's own.
const (
	toozLockProject = "__TOOZ_LOCK_"
	keyProject      = "__BATON_KEY_"
	stateProject    = "__BATON_STATE_"
	sessionProject  = "__BATON_SESSION_"
)

// userLockPrefix is how the backend prefixes user lock names in
// LockRequest.Key; such a lock's tooz name is the rest.
const userLockPrefix = "l/"

// keys derives every key of one namespace.
type keys struct {
	ns string
}

// project qualifies a project with the namespace: the empty namespace is
// tooz's, any other is separated by a NUL (which a namespace cannot hold).
func (k keys) project(p string) string {
	if k.ns == "" {
		return p
	}
	return k.ns + "\x00" + p
}

// fix avoids IPC_PRIVATE (0), which is not a key.
func fix(key int32) int32 {
	if key == 0 {
		return 1
	}
	return key
}

// lock returns the semaphore key of a lock key as the backend names it:
// a user lock "l/NAME" gets tooz's key of NAME (in the empty namespace,
// exactly tooz's), any other lock (leadership) a key of its own project.
func (k keys) lock(key string) int32 {
	if name, ok := strings.CutPrefix(key, userLockPrefix); ok {
		return fix(ftok(name, k.project(toozLockProject)))
	}
	return fix(ftok(key, k.project(keyProject)))
}

// mutex is the key of the namespace's mutex semaphore.
func (k keys) mutex() int32 { return fix(ftok("mutex", k.project(stateProject))) }

// segment is the key of the namespace's shared memory segment.
func (k keys) segment() int32 { return fix(ftok("segment", k.project(stateProject))) }

// session is the key of a session's liveness semaphore.
func (k keys) session(id string) int32 { return fix(ftok(id, k.project(sessionProject))) }
