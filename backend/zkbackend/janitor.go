package zkbackend

import (
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// janitor deletes, in the background, ephemeral lock nodes of this
// session that must go but whose deletion failed or was abandoned (a
// release interrupted by a connection drop, a wait whose context ended
// mid-request). Until it succeeds such a node would block the lock for as
// long as the session lives. It retries with the command_retry_* pacing
// (attempts unbounded) and stops when the session ends, which deletes
// every ephemeral node anyway.
type janitor struct {
	c     *conn
	mu    sync.Mutex
	paths map[string]struct{}
	wake  chan struct{}
	quit  chan struct{}
	once  sync.Once
	done  chan struct{}
}

func newJanitor(c *conn) *janitor {
	j := &janitor{c: c, paths: map[string]struct{}{}, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		j.run()
	}()
	return j
}

// remove schedules the deletion of path.
func (j *janitor) remove(path string) {
	j.mu.Lock()
	j.paths[path] = struct{}{}
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// stop ends the janitor and waits for it.
func (j *janitor) stop() {
	j.once.Do(func() { close(j.quit) })
	<-j.done
}

func (j *janitor) run() {
	defer close(j.done)
	for n := 0; ; {
		select {
		case <-j.quit:
			return
		case <-j.c.sess.end():
			return
		case <-j.wake:
		}
		j.mu.Lock()
		paths := make([]string, 0, len(j.paths))
		for p := range j.paths {
			paths = append(paths, p)
		}
		j.mu.Unlock()
		failed := false
		for _, p := range paths {
			err := j.c.zk.Delete(p, -1)
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				failed = true
				j.c.log.Debug("deleting an abandoned lock node failed; will retry", zap.String("path", p), zap.Error(err))
				continue
			}
			j.mu.Lock()
			delete(j.paths, p)
			j.mu.Unlock()
		}
		if !failed {
			n = 0
			continue
		}
		n++
		t := time.NewTimer(j.c.s.cmd.wait(n))
		select {
		case <-j.quit:
			t.Stop()
			return
		case <-j.c.sess.end():
			t.Stop()
			return
		case <-t.C:
		}
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
}
