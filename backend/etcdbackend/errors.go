package etcdbackend

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-go/baton/backend/driver"
)

// errNoAnswer is the cause of a request that ran out of the per-request
// timeout (the timeout option) while the caller's context was still live.
var errNoAnswer = errors.New("no answer within the request timeout")

// classify codes err, the result of a request made under ctx (the
// caller's context) with rctx (ctx plus the request timeout). The native
// error stays reachable with errors.As.
func classify(ctx, rctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", op, err)
	if ctx.Err() != nil {
		return driver.Wrap(codeOfContext(ctx.Err()), fmt.Errorf("%s: %w (%w)", op, ctx.Err(), err))
	}
	if rctx != nil && rctx.Err() != nil {
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%s: %w: %w", op, errNoAnswer, err))
	}
	return driver.Wrap(codeOf(err), wrapped)
}

func codeOfContext(err error) driver.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return driver.CodeDeadlineExceeded
	}
	return driver.CodeCanceled
}

// codeOf classifies an etcd client error.
func codeOf(err error) driver.Code {
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return driver.CodeLost
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// A context error that is not the caller's: the client was closed
		// or a deadline of its own ran out.
		return driver.CodeUnavailable
	case errors.Is(err, clientv3.ErrNoAvailableEndpoints):
		return driver.CodeUnavailable
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	} else {
		return driver.CodeInternal
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Canceled:
		return driver.CodeUnavailable
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return driver.CodeInvalidArgument
	case codes.Unimplemented:
		return driver.CodeUnimplemented
	}
	return driver.CodeInternal
}

// isCompacted reports whether err says the requested revision was
// compacted away.
func isCompacted(err error) bool { return errors.Is(err, rpctypes.ErrCompacted) }
