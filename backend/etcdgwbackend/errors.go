package etcdgwbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-go/baton/backend/driver"
)

// errNoAnswer is the cause of a request that ran out of the per-request
// timeout (the timeout option) while the caller's context was still live.
var errNoAnswer = errors.New("no answer within the request timeout")

// errCompacted is the cause of a watch that asked for a revision etcd has
// compacted away.
var errCompacted = errors.New("etcd gateway: required revision has been compacted")

// classify codes err, the result of a request made under ctx (the
// caller's context) with rctx (ctx plus the request timeout). The gateway's
// *Error stays reachable with errors.As.
func classify(ctx, rctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return driver.Wrap(codeOfContext(ctx.Err()), fmt.Errorf("%s: %w (%w)", op, ctx.Err(), err))
	}
	if rctx != nil && rctx.Err() != nil {
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%s: %w: %w", op, errNoAnswer, err))
	}
	return driver.Wrap(codeOf(err), fmt.Errorf("%s: %w", op, err))
}

func codeOfContext(err error) driver.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return driver.CodeDeadlineExceeded
	}
	return driver.CodeCanceled
}

// codeOf classifies a gateway or transport error.
func codeOf(err error) driver.Code {
	if c, ok := driver.CodeOf(err); ok {
		return c
	}
	var ge *Error
	if errors.As(err, &ge) {
		if ge.Message == msgLeaseNotFound {
			return driver.CodeLost
		}
		switch ge.Code {
		case grpcUnavailable, grpcDeadlineExceeded, grpcAborted, grpcResourceExhausted, grpcCanceled:
			return driver.CodeUnavailable
		case grpcUnauthenticated, grpcPermissionDenied, grpcInvalidArgument, grpcFailedPrecondition, grpcOutOfRange:
			return driver.CodeInvalidArgument
		case grpcUnimplemented:
			return driver.CodeUnimplemented
		}
		return driver.CodeInternal
	}
	if errors.Is(err, errPathNotServed) || errors.Is(err, errNotEtcd) {
		return driver.CodeInvalidArgument
	}
	// The rest is transport: connection refused or reset, EOF mid-answer,
	// a context of the client's own.
	return driver.CodeUnavailable
}

// errorsIsCompacted reports whether err says the requested revision was
// compacted away.
func errorsIsCompacted(err error) bool { return errors.Is(err, errCompacted) }
