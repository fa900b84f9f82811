package backend

import (
	"context"
	"errors"

	"github.com/baton-go/baton/backend/driver"
)

// Code classifies an error; see the Err… sentinels.
type Code = driver.Code

// Error is the one error type the portable layer returns. It wraps the
// driver's error once: errors.Is(err, ErrGroupNotFound) matches on the
// code, and errors.As reaches the native client's error underneath.
type Error struct {
	Code Code
	// Op is what was being done ("join group \"g\"").
	Op string
	// Err is the underlying error (often a *driver.Error wrapping the
	// native client's error).
	Err error
}

// Error returns "op: code: detail".
func (e *Error) Error() string {
	msg := e.Op
	if msg != "" {
		msg += ": "
	}
	var de *driver.Error
	if e.Err != nil && errors.As(e.Err, &de) && de.Code == e.Code {
		return msg + e.Err.Error()
	}
	msg += e.Code.String()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches sentinel errors by code: a sentinel (an *Error with no Op and
// no Err) matches every *Error with the same code, and the general
// sentinels ErrNotFound and ErrAlreadyExists also match their specific
// codes.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t.Op != "" || t.Err != nil {
		return false
	}
	return e.Code == t.Code || parentCode(e.Code) == t.Code
}

func parentCode(c Code) Code {
	switch c {
	case driver.CodeGroupNotFound, driver.CodeNotMember, driver.CodeNotHeld:
		return driver.CodeNotFound
	case driver.CodeGroupExists, driver.CodeMemberExists:
		return driver.CodeAlreadyExists
	}
	return -1
}

// Sentinel errors, for errors.Is.
var (
	ErrNotFound         = &Error{Code: driver.CodeNotFound}
	ErrGroupNotFound    = &Error{Code: driver.CodeGroupNotFound}
	ErrAlreadyExists    = &Error{Code: driver.CodeAlreadyExists}
	ErrGroupExists      = &Error{Code: driver.CodeGroupExists}
	ErrMemberExists     = &Error{Code: driver.CodeMemberExists}
	ErrGroupNotEmpty    = &Error{Code: driver.CodeGroupNotEmpty}
	ErrNotMember        = &Error{Code: driver.CodeNotMember}
	ErrNotHeld          = &Error{Code: driver.CodeNotHeld}
	ErrUnavailable      = &Error{Code: driver.CodeUnavailable}
	ErrDeadlineExceeded = &Error{Code: driver.CodeDeadlineExceeded}
	ErrCanceled         = &Error{Code: driver.CodeCanceled}
	ErrUnimplemented    = &Error{Code: driver.CodeUnimplemented}
	ErrInvalidArgument  = &Error{Code: driver.CodeInvalidArgument}
	ErrLost             = &Error{Code: driver.CodeLost}
	ErrInternal         = &Error{Code: driver.CodeInternal}
)

// ErrClosed is returned by operations on a Backend after Close. It is
// coded canceled: errors.Is(err, ErrCanceled) also holds.
var ErrClosed = &Error{Code: driver.CodeCanceled, Op: "backend", Err: errors.New("closed")}

// CodeOf returns err's code: that of the first *Error or *driver.Error in
// its chain, canceled/deadline for context errors, internal otherwise.
func CodeOf(err error) Code {
	var be *Error
	if errors.As(err, &be) {
		return be.Code
	}
	if c, ok := driver.CodeOf(err); ok {
		return c
	}
	switch {
	case errors.Is(err, context.Canceled):
		return driver.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return driver.CodeDeadlineExceeded
	}
	return driver.CodeInternal
}

// wrap wraps err once with op; an error that is already an *Error is
// returned as is.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	return &Error{Code: CodeOf(err), Op: op, Err: err}
}

// newError builds a new *Error for a failure found by the portable layer.
func newError(code Code, op string, err error) error {
	return &Error{Code: code, Op: op, Err: err}
}

// endedBy returns why ctx ended, as the error a stream's Err reports: the
// cause itself when it is already an *Error (the Backend closed or lost,
// a Close), else the context error coded and wrapped with op.
func endedBy(ctx context.Context, op string) error {
	cause := context.Cause(ctx)
	var be *Error
	if errors.As(cause, &be) {
		return cause
	}
	return newError(CodeOf(ctx.Err()), op, cause)
}
