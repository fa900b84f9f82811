package memcachedbackend

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/baton-go/baton/backend/driver"
)

// Errors the driver reports itself.
var (
	// errContended: a gets/cas loop met a conflicting write maxCASRetries
	// times in a row.
	errContended = errors.New("memcached: too many concurrent updates (compare-and-swap conflicts); try again")
	// errEvicted: a record the driver wrote is gone although nothing of
	// baton's deleted it: memcached evicted it, or restarted empty.
	errEvicted = errors.New("memcached: the record is gone (evicted under memory pressure, or the server restarted empty)")
	// errRestarted: the server that held a grant restarted since.
	errRestarted = errors.New("memcached: the server restarted since the grant was made")
)

// maxCASRetries bounds every gets/cas loop.
const maxCASRetries = 64

func isTimeout(err error) bool {
	var ne net.Error
	var ct *memcache.ConnectTimeoutError
	return errors.As(err, &ct) || errors.As(err, &ne) && ne.Timeout()
}

func isConnError(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &op) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, memcache.ErrNoServers) || errors.Is(err, net.ErrClosed)
}

// classify codes an error of gomemcache or of the meta connections; the
// native error stays reachable with errors.As.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var de *driver.Error
	if errors.As(err, &de) {
		return err
	}
	var se *serverError
	switch {
	case errors.Is(err, context.Canceled):
		return driver.Wrap(driver.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	case errors.Is(err, errContended), errors.Is(err, errPoolClosed):
		return driver.Wrap(driver.CodeUnavailable, err)
	case isTimeout(err), isConnError(err):
		return driver.Wrap(driver.CodeUnavailable, err)
	case errors.As(err, &se):
		if strings.Contains(se.line, "out of memory") || strings.HasPrefix(se.line, "SERVER_ERROR") {
			return driver.Wrap(driver.CodeUnavailable, err)
		}
		return driver.Wrap(driver.CodeInternal, err)
	case errors.Is(err, memcache.ErrServerError):
		return driver.Wrap(driver.CodeUnavailable, err)
	case errors.Is(err, memcache.ErrMalformedKey):
		return driver.Wrap(driver.CodeInvalidArgument, err)
	}
	return driver.Wrap(driver.CodeInternal, err)
}
