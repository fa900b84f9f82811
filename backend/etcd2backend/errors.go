package etcd2backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-go/baton/backend/driver"
)

// classify codes err, the result of a request made on behalf of a caller
// whose context is ctx. The raw error stays reachable with errors.As.
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := driver.CodeOf(err); ok {
		return err // classified already
	}
	if ctx.Err() != nil {
		return driver.Wrap(codeOfContext(ctx.Err()), fmt.Errorf("%s: %w (%w)", op, ctx.Err(), err))
	}
	return driver.Wrap(codeOf(err), fmt.Errorf("%s: %w", op, err))
}

func codeOfContext(err error) driver.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return driver.CodeDeadlineExceeded
	}
	return driver.CodeCanceled
}

// codeOf classifies a raw error of the client.
func codeOf(err error) driver.Code {
	if errors.Is(err, errNoV2) {
		return driver.CodeUnimplemented
	}
	var te *transportError
	if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// No answer: an unreachable endpoint, or the request timeout ran
		// out while the caller's context was still live.
		return driver.CodeUnavailable
	}
	var se *statusError
	if errors.As(err, &se) {
		switch {
		case se.Status == 401 || se.Status == 403:
			return driver.CodeInvalidArgument
		case se.Status >= 500:
			return driver.CodeUnavailable
		}
		return driver.CodeInternal
	}
	var ee *etcdError
	if errors.As(err, &ee) {
		switch {
		case ee.Code == ecodeKeyNotFound:
			return driver.CodeNotFound
		case ee.Code == ecodeNodeExist:
			return driver.CodeAlreadyExists
		case ee.Code == ecodeUnauthorized:
			return driver.CodeInvalidArgument
		case ee.Code >= 200 && ee.Code < 300: // malformed request
			return driver.CodeInvalidArgument
		case ee.Code >= 300: // Raft, watcher and server errors
			return driver.CodeUnavailable
		}
	}
	return driver.CodeInternal
}
