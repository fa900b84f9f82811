package redisbackend

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// go-redis logs through one process-wide logger (dial failures, sentinel
// events), which writes to stderr by default. The driver replaces it,
// once, with clientLog: its lines go to the loggers of the open
// connections (each distinct logger once), and nowhere while none is open.
var clientLog = &clientLogger{loggers: map[*zap.Logger]int{}}

type clientLogger struct {
	once    sync.Once
	mu      sync.Mutex
	loggers map[*zap.Logger]int // open connections per logger
}

// add routes go-redis's log to l until the returned func is called.
func (cl *clientLogger) add(l *zap.Logger) (remove func()) {
	cl.once.Do(func() { redis.SetLogger(cl) })
	cl.mu.Lock()
	cl.loggers[l]++
	cl.mu.Unlock()
	var done sync.Once
	return func() {
		done.Do(func() {
			cl.mu.Lock()
			if cl.loggers[l]--; cl.loggers[l] <= 0 {
				delete(cl.loggers, l)
			}
			cl.mu.Unlock()
		})
	}
}

// Printf implements go-redis's internal.Logging.
func (cl *clientLogger) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	cl.mu.Lock()
	ls := make([]*zap.Logger, 0, len(cl.loggers))
	for l := range cl.loggers {
		ls = append(ls, l)
	}
	cl.mu.Unlock()
	for _, l := range ls {
		l.Info("go-redis", zap.String("msg", msg))
	}
}
