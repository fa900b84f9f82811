package consulbackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend/driver"
)

// errNoAnswer is the cause of a request that ran out of the per-request
// timeout (the timeout option) while the caller's context was still live.
var errNoAnswer = errors.New("no answer within the request timeout")

// classify codes err, the result of a request made under ctx (the
// caller's context) with rctx (ctx plus the request timeout). The native
// error stays reachable with errors.As. Consul's errors never carry the
// request's token (it travels in a header), so err is safe to show.
func classify(ctx, rctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		code := driver.CodeCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = driver.CodeDeadlineExceeded
		}
		return driver.Wrap(code, fmt.Errorf("%s: %w (%w)", op, ctx.Err(), err))
	}
	if rctx != nil && rctx.Err() != nil {
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%s: %w: %w", op, errNoAnswer, err))
	}
	return driver.Wrap(codeOf(err), fmt.Errorf("%s: %w", op, err))
}

// codeOf classifies an error of the Consul client: transport failures and
// server-side unavailability (no leader, RPC failures, 5xx) are
// CodeUnavailable; a refused token or request is CodeInvalidArgument.
func codeOf(err error) driver.Code {
	var se api.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == 401 || se.Code == 403 || se.Code == 400 || se.Code == 413:
			return driver.CodeInvalidArgument
		case se.Code == 404:
			return driver.CodeNotFound
		case se.Code >= 500 && aclMessage(se.Body):
			return driver.CodeInvalidArgument
		case se.Code >= 500 && strings.Contains(se.Body, "Invalid Session TTL"):
			return driver.CodeInvalidArgument
		case se.Code >= 500:
			return driver.CodeUnavailable
		}
		return driver.CodeInternal
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return driver.CodeUnavailable
	}
	msg := err.Error()
	switch {
	case aclMessage(msg), strings.Contains(msg, "Invalid Session TTL"),
		strings.Contains(msg, "too large"), strings.Contains(msg, "Request body too large"):
		return driver.CodeInvalidArgument
	case strings.Contains(msg, "No cluster leader"), strings.Contains(msg, "rpc error"),
		strings.Contains(msg, "Unexpected response code: 5"), strings.Contains(msg, "EOF"),
		strings.Contains(msg, "connection refused"), strings.Contains(msg, "connection reset"):
		return driver.CodeUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return driver.CodeUnavailable
	}
	return driver.CodeInternal
}

// aclMessage reports whether a server message says the token was refused.
func aclMessage(msg string) bool {
	return strings.Contains(msg, "ACL not found") || strings.Contains(msg, "Permission denied") ||
		strings.Contains(msg, "permission denied")
}

// txnFailure describes why a transaction was rolled back, for messages.
func txnFailure(resp *api.TxnResponse) string {
	if resp == nil || len(resp.Errors) == 0 {
		return "rolled back"
	}
	var parts []string
	for _, e := range resp.Errors {
		parts = append(parts, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
	}
	return strings.Join(parts, "; ")
}

// failedOp returns the index of the first failed operation of a rolled
// back transaction, or -1.
func failedOp(resp *api.TxnResponse) int {
	if resp == nil || len(resp.Errors) == 0 {
		return -1
	}
	return resp.Errors[0].OpIndex
}

// containsAny reports whether s contains any of subs.
func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
