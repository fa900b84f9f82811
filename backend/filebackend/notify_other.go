//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"errors"

	"github.com/baton-go/baton/backend/driver"
)

// watchKind: without inotify, the backend polls group listings.
const watchKind = driver.WatchPoll

// watchTarget says what a subscription would watch.
type watchTarget int

const (
	watchLockFile watchTarget = iota + 1
	watchGroupDir
	watchSessionsDir
)

// notifier has no file notifications on this system: every subscription
// fails and waiters poll.
type notifier struct{}

// subscription is never created on this system.
type subscription struct{ C chan struct{} }

var errNoNotify = errors.New("file notifications unavailable on this system")

func (*notifier) subscribe(string, watchTarget) (*subscription, error) { return nil, errNoNotify }

func (*notifier) close() {}

func (*subscription) cancel() {}
