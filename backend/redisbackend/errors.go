package redisbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend/driver"
)

// serverKind sorts a server error reply by its first word: "retry" for a
// server that cannot serve writes for now but soon will (loading its data,
// a replica while a failover is under way, without its master),
// "unavailable" for other states of the server (a busy script, out of
// memory, unable to persist), "config" for authentication and permission
// errors, "" for anything else.
func serverKind(msg string) string {
	word, _, _ := strings.Cut(msg, " ")
	switch word {
	case "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN":
		return "retry"
	case "BUSY", "OOM", "MISCONF", "NOREPLICAS", "CLUSTERDOWN", "NOMASTERLINK":
		return "unavailable"
	case "NOAUTH", "WRONGPASS", "NOPERM":
		return "config"
	}
	if strings.HasPrefix(msg, "ERR AUTH") || strings.HasPrefix(msg, "ERR invalid password") || strings.HasPrefix(msg, "ERR Client sent AUTH") {
		return "config"
	}
	return ""
}

func serverError(err error) (string, bool) {
	var re redis.Error
	if errors.As(err, &re) && !errors.Is(err, redis.Nil) {
		return re.Error(), true
	}
	return "", false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isConnError reports a broken or refused connection, or an exhausted pool.
func isConnError(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &op) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) ||
		strings.Contains(err.Error(), "pool timeout") || strings.Contains(err.Error(), "connection pool")
}

// retryable says whether a failed command may be sent again.
func (c *conn) retryable(err error) bool {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrClosed):
		return false
	case isTimeout(err):
		return c.s.retryOnTimeout
	}
	if msg, ok := serverError(err); ok {
		return serverKind(msg) == "retry"
	}
	return isConnError(err)
}

// classify codes an error of the Redis client; the native error stays
// reachable with errors.As.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var de *driver.Error
	if errors.As(err, &de) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return driver.Wrap(driver.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	}
	if msg, ok := serverError(err); ok {
		switch serverKind(msg) {
		case "retry", "unavailable":
			return driver.Wrap(driver.CodeUnavailable, err)
		case "config":
			return driver.Wrap(driver.CodeInvalidArgument, err)
		}
		return driver.Wrap(driver.CodeInternal, err)
	}
	return driver.Wrap(driver.CodeUnavailable, err)
}

// ctxError reports a command cut short by its context: coded canceled or
// deadline exceeded, with both the context's and the client's error
// reachable.
func ctxError(ctx context.Context, err error) error {
	code := driver.CodeCanceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = driver.CodeDeadlineExceeded
	}
	if err == nil || errors.Is(err, ctx.Err()) {
		return driver.Wrap(code, ctx.Err())
	}
	return driver.Wrap(code, fmt.Errorf("%w: %w", ctx.Err(), err))
}
