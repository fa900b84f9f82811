//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sessionInfo is the content of a session file, for ExpireSession and for
// people looking at the directory.
type sessionInfo struct {
	Member  string    `json:"member"`
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started"`
}

// session is a connection's liveness: an exclusive flock held on its own
// session file for as long as the session lives. The kernel drops the
// flock when the process exits or is killed, which is how every other
// process learns, at once, that the member is gone.
type session struct {
	id   sessionID
	name string // hex of id: the file name
	path string

	mu    sync.Mutex
	fd    int
	ended bool
}

// createSession creates and locks a new session file. The file is
// created and locked under a temporary name and renamed into place, so no
// other process ever sees it unlocked and mistakes it for a dead one.
func createSession(l layout, member string, sync bool) (*session, error) {
	s := &session{}
	randomBytes(s.id[:])
	s.name = hex.EncodeToString(s.id[:])
	s.path = l.sessionPath(s.name)
	tmp := filepath.Join(l.tmp, "s-"+s.name)
	fd, err := openFile(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*session, error) {
		_ = os.Remove(tmp)
		closeFD(fd)
		return nil, err
	}
	ok, err := tryFlock(fd, unix.LOCK_EX)
	if err != nil || !ok {
		return fail(fmt.Errorf("lock new session file: ok=%v: %w", ok, err))
	}
	host, _ := os.Hostname()
	data, err := json.Marshal(sessionInfo{Member: member, PID: os.Getpid(), Host: host, Started: time.Now().Round(0)})
	if err != nil {
		return fail(err)
	}
	if err := pwriteAll(fd, data); err != nil {
		return fail(err)
	}
	if sync {
		if err := unix.Fsync(fd); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(err)
	}
	s.fd = fd
	return s, nil
}

// owned reports whether the session file is still this session's: not
// removed, not replaced. After end it reports false.
func (s *session) owned() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false, nil
	}
	return sameFile(s.fd, s.path)
}

// end removes the session file (when it is still ours) and closes it,
// which releases the flock: from then on every process sees the session
// as dead. Later calls do nothing.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	if same, err := sameFile(s.fd, s.path); err == nil && same {
		_ = os.Remove(s.path)
	}
	closeFD(s.fd)
}

// probeSession reports whether the session named name is alive: its file
// exists and is flocked by its owner. A shared flock is used to probe, so
// probes never disturb each other, and a probe can never succeed against
// a living owner (who holds an exclusive flock). A dead session's file is
// removed.
func probeSession(l layout, name string) (bool, error) {
	path := l.sessionPath(name)
	fd, err := openFile(path, unix.O_RDONLY)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	defer closeFD(fd)
	free, err := tryFlock(fd, unix.LOCK_SH)
	if err != nil {
		return false, err
	}
	if free {
		// The owner is gone and can never come back: session files are
		// locked before they get this name.
		_ = os.Remove(path)
	}
	return !free, nil
}

// readSessionInfo reads a session file's content.
func readSessionInfo(l layout, name string) (sessionInfo, error) {
	var si sessionInfo
	b, err := os.ReadFile(l.sessionPath(name))
	if err != nil {
		return si, err
	}
	err = json.Unmarshal(b, &si)
	return si, err
}

// sweep removes what crashed processes left behind: dead sessions'
// files, and temporary files and directories older than staleTemp (a live
// writer renames its temporary files within microseconds).
func sweep(l layout) {
	if ents, err := os.ReadDir(l.sessions); err == nil {
		for _, e := range ents {
			if _, ok := parseSessionName(e.Name()); ok {
				_, _ = probeSession(l, e.Name())
			}
		}
	}
	ents, err := os.ReadDir(l.tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < staleTemp {
			continue
		}
		_ = os.RemoveAll(filepath.Join(l.tmp, e.Name()))
	}
}

// staleTemp is the age after which a temporary file is garbage.
const staleTemp = 10 * time.Minute

// parseSessionName checks that name is a session file name.
func parseSessionName(name string) (sessionID, bool) {
	var id sessionID
	if len(name) != 2*sessionIDLen {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return id, false
	}
	return id, true
}

// sessionName returns the hex name of a session ID.
func sessionName(id sessionID) string { return hex.EncodeToString(id[:]) }
