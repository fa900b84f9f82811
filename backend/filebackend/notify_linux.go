package filebackend

import (
	"encoding/binary"
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// watchKind: Linux pushes membership changes through inotify.
const watchKind = driver.WatchPush

// watchTarget says what a subscription watches, which picks its events.
type watchTarget int

const (
	// watchLockFile: a lock file is written (grant, release) or closed by
	// a writer (release, or the exit of a holder or acquirer).
	watchLockFile watchTarget = iota + 1
	// watchGroupDir: a member record appears, is replaced or removed, or
	// the group directory itself goes away.
	watchGroupDir
	// watchSessionsDir: a session file is closed by its writer (its
	// process exited or was killed) or removed.
	watchSessionsDir
)

func (t watchTarget) mask() uint32 {
	switch t {
	case watchLockFile:
		return unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	case watchGroupDir:
		return unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
			unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	default:
		return unix.IN_CLOSE_WRITE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_ONLYDIR
	}
}

// notifier is a connection's single inotify instance, created on first
// use, with one reader goroutine that wakes subscribers. Its zero value is
// ready; close stops the goroutine and waits for it.
type notifier struct {
	mu      sync.Mutex
	closed  bool
	broken  bool // the reader failed: no more events
	f       *os.File
	fd      int
	done    chan struct{}
	watches map[int32]map[*subscription]struct{}
}

// subscription receives a value on C (buffered, coalesced) after events of
// its path, and after an inotify queue overflow.
type subscription struct {
	C  chan struct{}
	n  *notifier
	wd int32
}

// errNoNotify reports that the connection is closed or its inotify
// instance failed.
var errNoNotify = errors.New("file notifications unavailable")

// subscribe watches path. It fails when inotify is unavailable (e.g. the
// per-user instance or watch limit is reached, or path is gone); callers
// then poll.
func (n *notifier) subscribe(path string, t watchTarget) (*subscription, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.broken {
		return nil, errNoNotify
	}
	if n.f == nil {
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			return nil, err
		}
		n.fd = fd
		n.f = os.NewFile(uintptr(fd), "inotify")
		n.done = make(chan struct{})
		n.watches = map[int32]map[*subscription]struct{}{}
		go n.read(n.f, n.done)
	}
	wd, err := unix.InotifyAddWatch(n.fd, path, t.mask()|unix.IN_MASK_ADD)
	if err != nil {
		return nil, err
	}
	s := &subscription{C: make(chan struct{}, 1), n: n, wd: int32(wd)}
	subs := n.watches[s.wd]
	if subs == nil {
		subs = map[*subscription]struct{}{}
		n.watches[s.wd] = subs
	}
	subs[s] = struct{}{}
	return s, nil
}

// cancel ends the subscription; the watch is removed with its last one.
func (s *subscription) cancel() {
	n := s.n
	n.mu.Lock()
	defer n.mu.Unlock()
	subs := n.watches[s.wd]
	if _, ok := subs[s]; !ok {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(n.watches, s.wd)
		if !n.closed {
			_, _ = unix.InotifyRmWatch(n.fd, uint32(s.wd))
		}
	}
}

// read is the reader goroutine: it blocks in the runtime poller until
// events arrive, and ends when the file is closed.
func (n *notifier) read(f *os.File, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 64<<10)
	for {
		m, err := f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			n.mu.Lock()
			n.broken = true
			n.wakeAllLocked()
			n.mu.Unlock()
			return
		}
		n.dispatch(buf[:m])
	}
}

// dispatch wakes the subscribers of every event in b.
func (n *notifier) dispatch(b []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		b = b[min(len(b), unix.SizeofInotifyEvent+nameLen):]
		if mask&unix.IN_Q_OVERFLOW != 0 {
			n.wakeAllLocked()
			continue
		}
		for s := range n.watches[wd] {
			wake(s.C)
		}
		if mask&unix.IN_IGNORED != 0 {
			// The kernel dropped the watch (its file is gone); the
			// subscribers were just woken and will find out.
			delete(n.watches, wd)
		}
	}
}

func (n *notifier) wakeAllLocked() {
	for _, subs := range n.watches {
		for s := range subs {
			wake(s.C)
		}
	}
}

// wake sends on a coalescing channel without blocking.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// close closes the inotify instance and waits for the reader goroutine.
func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	f, done := n.f, n.done
	n.mu.Unlock()
	if f == nil {
		return
	}
	_ = f.Close()
	<-done
}
