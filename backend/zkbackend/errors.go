package zkbackend

import (
	"context"
	"errors"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend/driver"
)

// classify codes a raw error (from go-zookeeper, a context, or the
// driver) for the backend. Errors that are already classified are
// returned as they are. Callers map the not-found / exists family
// themselves, where they know what the node is.
func (c *conn) classify(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := driver.CodeOf(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return driver.Wrap(driver.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	case errors.Is(err, zk.ErrSessionExpired):
		return driver.Wrap(driver.CodeLost, err)
	case errors.Is(err, zk.ErrClosing), transient(err):
		if serr := c.sess.err(); serr != nil {
			return serr // cut off because the session ended
		}
		return driver.Wrap(driver.CodeUnavailable, err)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed), errors.Is(err, zk.ErrInvalidACL):
		return driver.Errorf(driver.CodeInvalidArgument, "not authorized (check the URL's user:password against the znodes' ACLs): %w", err)
	}
	return driver.Wrap(driver.CodeInternal, err)
}

// transient reports whether err means the request may not have reached
// the server or its reply was lost with the connection: retrying it (when
// safe) can succeed.
func transient(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrSessionMoved):
		return true
	}
	// Server-side codes go-zookeeper does not name: connection loss (-4)
	// and operation timeout (-7).
	msg := err.Error()
	return strings.HasSuffix(msg, "unknown error: -4") || strings.HasSuffix(msg, "unknown error: -7")
}
