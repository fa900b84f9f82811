//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// store is one process's view of a namespace: its mutex semaphore and its
// attached shared memory segment.
type store struct {
	k       keys
	mutexID int
	segID   int
	mem     []byte
	slots   int
	blobCap int

	cacheMu  sync.Mutex
	cacheGen uint64
	cache    *state // decoded state of generation cacheGen; never mutated
}

// state is what the segment's state halves hold (JSON).
type state struct {
	Sessions map[string]*sessionRec    `json:"s,omitempty"` // by session ID (16 hex digits)
	Groups   map[string]*groupRec      `json:"g,omitempty"`
	Shared   map[string][]sharedHolder `json:"h,omitempty"` // by lock table index
}

// sessionRec is a live (or not yet pruned) session: its semaphore's key
// and ID, and its member.
type sessionRec struct {
	Member  string    `json:"m"`
	Key     int32     `json:"k"`
	SemID   int       `json:"i"`
	PID     int       `json:"p"`
	Started time.Time `json:"t"`
}

type groupRec struct {
	Created time.Time             `json:"c"`
	Members map[string]*memberRec `json:"m,omitempty"`
}

type memberRec struct {
	Session     string    `json:"s"`
	Incarnation string    `json:"i"`
	Joined      time.Time `json:"j"`
	Updated     time.Time `json:"u"`
	Caps        []byte    `json:"c,omitempty"`
}

type sharedHolder struct {
	Token   uint64 `json:"t"`
	Session string `json:"s"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errNamespaceGone says the namespace's mutex or segment was removed
// while this process used it (by ipcrm, or by the last connection of an
// expired session's namespace closing).
var errNamespaceGone = errors.New("ipc namespace objects were removed")

// openStore gets (creating when missing) the namespace's mutex and
// segment, and returns with the mutex held.
func openStore(ctx context.Context, s settings) (*store, error) {
	for attempt := 0; ; attempt++ {
		st, err := tryOpenStore(ctx, s)
		if err == nil || !errors.Is(err, errNamespaceGone) || attempt == 20 {
			return st, err
		}
	}
}

func tryOpenStore(ctx context.Context, s settings) (*store, error) {
	mid, err := semget(s.keys.mutex(), 1, unix.IPC_CREAT|permMode)
	if err != nil {
		return nil, sysErr("get mutex semaphore", err)
	}
	st := &store{k: s.keys, mutexID: mid}
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	if err := st.attach(s); err != nil {
		st.unlock()
		return nil, err
	}
	return st, nil
}

// attach gets or creates the segment and checks or writes its header.
// The caller holds the mutex.
func (st *store) attach(s settings) error {
	key := st.k.segment()
	id, err := unix.SysvShmGet(int(key), s.segmentSize, unix.IPC_CREAT|permMode)
	if err == unix.EINVAL {
		id, err = unix.SysvShmGet(int(key), 0, 0) // an existing, smaller segment
	}
	if err != nil {
		return sysErr("get shared memory segment", err)
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return sysErr("attach shared memory segment", err)
	}
	st.segID, st.mem = id, mem
	if *st.u64(hdrMagic) == 0 {
		slots := s.lockSlots
		blobCap := (len(mem) - headerSize - slots*slotSize) / 2
		if blobCap < minBlob {
			st.detach()
			return driver.Errorf(driver.CodeInvalidArgument, "shared memory segment of %d bytes is too small", len(mem))
		}
		binary.NativeEndian.PutUint32(mem[hdrVersion:], segVersion)
		binary.NativeEndian.PutUint32(mem[hdrSlots:], uint32(slots))
		binary.NativeEndian.PutUint32(mem[hdrBlobCap:], uint32(blobCap))
		binary.NativeEndian.PutUint32(mem[hdrNSLen:], uint32(len(st.k.ns)))
		copy(mem[hdrNS:], st.k.ns)
		atomic.StoreUint64(st.u64(hdrMagic), segMagic)
	}
	if *st.u64(hdrMagic) != segMagic || binary.NativeEndian.Uint32(mem[hdrVersion:]) != segVersion {
		st.detach()
		return driver.Errorf(driver.CodeInternal, "shared memory segment key %#x holds something else than a baton namespace", uint32(key))
	}
	nsLen := int(binary.NativeEndian.Uint32(mem[hdrNSLen:]))
	if nsLen > maxNamespaceLen || string(mem[hdrNS:hdrNS+nsLen]) != st.k.ns {
		st.detach()
		return driver.Errorf(driver.CodeInternal, "namespace %q: its segment key %#x is taken by another namespace", st.k.ns, uint32(key))
	}
	st.slots = int(binary.NativeEndian.Uint32(mem[hdrSlots:]))
	st.blobCap = int(binary.NativeEndian.Uint32(mem[hdrBlobCap:]))
	if headerSize+st.slots*slotSize+2*st.blobCap > len(mem) {
		st.detach()
		return driver.Errorf(driver.CodeInternal, "shared memory segment key %#x has a corrupt header", uint32(key))
	}
	return nil
}

// detach unmaps the segment.
func (st *store) detach() {
	if st.mem != nil {
		_ = unix.SysvShmDetach(st.mem)
		st.mem = nil
	}
}

// mutexWait bounds one blocking semtimedop, so a cancelled ctx is seen.
const mutexWait = 50 * time.Millisecond

// lock takes the namespace mutex: wait until the semaphore is zero and
// raise it to one, atomically, with SEM_UNDO (a holder killed in the
// critical section releases it). A zero semaphore is free, so a new set
// needs no initialisation.
func (st *store) lock(ctx context.Context) error {
	ops := []sembuf{{num: 0, op: 0}, {num: 0, op: 1, flg: semUndo}}
	ts := timespec(mutexWait)
	for {
		err := semop(st.mutexID, ops, &ts)
		switch {
		case err == nil:
			return nil
		case err == unix.EAGAIN:
			if err := ctx.Err(); err != nil {
				return ctxErr(err)
			}
		case gone(err):
			return driver.Wrap(driver.CodeLost, errNamespaceGone)
		default:
			return sysErr("lock namespace mutex", err)
		}
	}
}

// unlock releases the namespace mutex.
func (st *store) unlock() {
	_ = semop(st.mutexID, []sembuf{{num: 0, op: -1, flg: semUndo}}, nil)
}

func (st *store) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&st.mem[off])) }
func (st *store) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&st.mem[off])) }

// gen returns the state's generation.
func (st *store) gen() uint64 { return atomic.LoadUint64(st.u64(hdrGen)) }

// readLocked decodes the current state; the caller holds the mutex. The
// result is the caller's to change.
func (st *store) readLocked() (*state, error) {
	active := atomic.LoadUint32(st.u32(hdrActive)) & 1
	n := int(*st.u32(hdrLen0 + 4*int(active)))
	sum := *st.u32(hdrCRC0 + 4*int(active))
	s := &state{}
	if n > 0 {
		if n > st.blobCap {
			return nil, driver.Errorf(driver.CodeInternal, "ipc state length %d exceeds its room", n)
		}
		off := st.blobOff(int(active))
		b := st.mem[off : off+n]
		if crc32.Checksum(b, castagnoli) != sum {
			return nil, driver.Errorf(driver.CodeInternal, "ipc state fails its checksum")
		}
		if err := json.Unmarshal(b, s); err != nil {
			return nil, driver.Errorf(driver.CodeInternal, "ipc state: %w", err)
		}
	}
	if s.Sessions == nil {
		s.Sessions = map[string]*sessionRec{}
	}
	if s.Groups == nil {
		s.Groups = map[string]*groupRec{}
	}
	if s.Shared == nil {
		s.Shared = map[string][]sharedHolder{}
	}
	return s, nil
}

func (st *store) blobOff(half int) int { return headerSize + st.slots*slotSize + half*st.blobCap }

// writeLocked stores s in the inactive half, then makes it the active
// one: a writer killed half-way leaves the previous state in force. The
// caller holds the mutex.
func (st *store) writeLocked(s *state) error {
	b, err := json.Marshal(s)
	if err != nil {
		return driver.Wrap(driver.CodeInternal, err)
	}
	if len(b) > st.blobCap {
		return driver.Errorf(driver.CodeUnavailable, "ipc state of %d bytes does not fit the segment's %d (raise %s for a new namespace)",
			len(b), st.blobCap, optSegmentSize)
	}
	next := int(atomic.LoadUint32(st.u32(hdrActive))&1) ^ 1
	copy(st.mem[st.blobOff(next):], b)
	*st.u32(hdrLen0 + 4*next) = uint32(len(b))
	*st.u32(hdrCRC0 + 4*next) = crc32.Checksum(b, castagnoli)
	atomic.StoreUint32(st.u32(hdrActive), uint32(next))
	atomic.AddUint64(st.u64(hdrGen), 1)
	return nil
}

// read returns the current state for reading only: the cached one while
// the generation is unchanged, else a fresh one read under the mutex.
func (st *store) read(ctx context.Context) (*state, error) {
	g := st.gen()
	st.cacheMu.Lock()
	if st.cache != nil && st.cacheGen == g {
		s := st.cache
		st.cacheMu.Unlock()
		return s, nil
	}
	st.cacheMu.Unlock()
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	g = st.gen()
	s, err := st.readLocked()
	st.unlock()
	if err != nil {
		return nil, err
	}
	st.cacheMu.Lock()
	st.cache, st.cacheGen = s, g
	st.cacheMu.Unlock()
	return s, nil
}

// update runs edit on the current state under the mutex and writes the
// result back when edit returns nil.
func (st *store) update(ctx context.Context, edit func(*state) error) error {
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.unlock()
	s, err := st.readLocked()
	if err != nil {
		return err
	}
	if err := edit(s); err != nil {
		return err
	}
	return st.writeLocked(s)
}

// slot is the decoded content of a lock table entry.
type slot struct {
	last    uint64
	mode    uint32
	token   uint64
	session uint64
}

func (st *store) slotOff(i int) int { return headerSize + i*slotSize }

// findSlot returns the index of the entry of hash, or -1.
func (st *store) findSlot(hash [16]byte) int {
	start := int(binary.NativeEndian.Uint64(hash[:8]) % uint64(st.slots))
	for n := 0; n < st.slots; n++ {
		i := (start + n) % st.slots
		off := st.slotOff(i)
		if atomic.LoadUint32(st.u32(off+slotUsed)) == 0 {
			return -1
		}
		if [16]byte(st.mem[off+slotHash:off+slotHash+16]) == hash {
			return i
		}
	}
	return -1
}

// allocSlot returns the entry of hash, allocating it for a lock whose
// semaphore key is semKey. The caller holds the mutex.
func (st *store) allocSlot(hash [16]byte, semKey int32) (int, error) {
	start := int(binary.NativeEndian.Uint64(hash[:8]) % uint64(st.slots))
	for n := 0; n < st.slots; n++ {
		i := (start + n) % st.slots
		off := st.slotOff(i)
		if atomic.LoadUint32(st.u32(off+slotUsed)) == 0 {
			copy(st.mem[off+slotHash:], hash[:])
			*(*int32)(unsafe.Pointer(&st.mem[off+slotSemKey])) = semKey
			atomic.StoreUint32(st.u32(off+slotUsed), 1)
			return i, nil
		}
		if [16]byte(st.mem[off+slotHash:off+slotHash+16]) == hash {
			return i, nil
		}
	}
	return -1, driver.Errorf(driver.CodeUnavailable, "the lock table's %d entries are all in use (raise %s for a new namespace)",
		st.slots, optLockSlots)
}

// slotSemKey returns the semaphore key recorded in entry i.
func (st *store) slotKey(i int) int32 {
	return *(*int32)(unsafe.Pointer(&st.mem[st.slotOff(i)+slotSemKey]))
}

// readSlot reads entry i consistently: it retries while a write is under
// way. A writer killed half-way leaves the counter odd; after a while the
// fields are read as they are (the next writer repairs the counter), and
// callers check the holder's session anyway.
func (st *store) readSlot(i int) slot {
	off := st.slotOff(i)
	seq := st.u32(off + slotSeq)
	for attempt := 0; ; attempt++ {
		v1 := atomic.LoadUint32(seq)
		s := slot{
			last:    atomic.LoadUint64(st.u64(off + slotLast)),
			mode:    atomic.LoadUint32(st.u32(off + slotMode)),
			token:   atomic.LoadUint64(st.u64(off + slotToken)),
			session: atomic.LoadUint64(st.u64(off + slotSession)),
		}
		if (v1&1 == 0 && atomic.LoadUint32(seq) == v1) || attempt == 1000 {
			return s
		}
		runtime.Gosched()
	}
}

// writeSlot writes entry i. Only one writer at a time: the exclusive
// holder of the lock, or a shared holder under the mutex.
func (st *store) writeSlot(i int, s slot) {
	off := st.slotOff(i)
	seq := st.u32(off + slotSeq)
	v := atomic.LoadUint32(seq) | 1 // odd: a write is under way
	atomic.StoreUint32(seq, v)
	atomic.StoreUint64(st.u64(off+slotLast), s.last)
	atomic.StoreUint32(st.u32(off+slotMode), s.mode)
	atomic.StoreUint64(st.u64(off+slotToken), s.token)
	atomic.StoreUint64(st.u64(off+slotSession), s.session)
	atomic.StoreUint32(seq, v+1)
}

// probe reports whether the session of rec is alive: its semaphore
// exists, is the one recorded, and is held (non-zero). A dead session's
// semaphore is removed.
func probe(rec *sessionRec) bool {
	id, err := semget(rec.Key, 0, 0)
	if err != nil || id != rec.SemID {
		return false
	}
	v, err := semctl(id, 0, cmdGetVal, 0)
	if err != nil {
		return false
	}
	if v == 0 {
		_ = semRemove(id)
		return false
	}
	return true
}

// sysErr classifies a failed system call.
func sysErr(op string, err error) error {
	code := driver.CodeInternal
	switch err {
	case unix.ENOSPC, unix.ENOMEM, unix.ERANGE:
		code = driver.CodeUnavailable // a system-wide IPC limit (see ipcs -l)
	case unix.EACCES, unix.EPERM:
		code = driver.CodeInvalidArgument
	case unix.EIDRM:
		code = driver.CodeLost
	}
	return driver.Wrap(code, fmt.Errorf("%s: %w", op, err))
}

// ctxErr codes a context's error.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	}
	return driver.Wrap(driver.CodeCanceled, err)
}

// removeLockSems removes the namespace's lock semaphores that are free
// and have no waiter; a lock held or awaited by a process outside baton
// (tooz) is left alone. The caller holds the mutex and knows that no
// baton session is alive. The lock table keeps the last tokens.
func (st *store) removeLockSems() {
	for i := 0; i < st.slots; i++ {
		if atomic.LoadUint32(st.u32(st.slotOff(i)+slotUsed)) == 0 {
			continue
		}
		id, err := semget(st.slotKey(i), 0, 0)
		if err != nil {
			continue
		}
		if lockSemIdle(id) {
			_ = semRemove(id)
		}
	}
}

// removeAll removes every IPC object of the namespace: the free lock
// semaphores, the segment (destroyed when the last process detaches)
// and, last, the mutex, which the caller holds: processes waiting for it
// get EIDRM and start the namespace anew. The caller knows that no baton
// session is alive.
func (st *store) removeAll(log *zap.Logger) {
	st.removeLockSems()
	_, _ = unix.SysvShmCtl(st.segID, unix.IPC_RMID, nil)
	_ = semRemove(st.mutexID)
	log.Debug("ipc namespace removed", zap.String("namespace", st.k.ns))
}
