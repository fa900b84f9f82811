package driver

import (
	"errors"
	"fmt"
)

// Code classifies a driver error. The backend turns each code into one of
// its sentinel errors; the raw error stays reachable with errors.As.
type Code int

// The closed set of codes.
const (
	CodeInternal Code = iota
	CodeNotFound
	CodeGroupNotFound
	CodeAlreadyExists
	CodeGroupExists
	CodeGroupNotEmpty
	CodeMemberExists
	CodeNotMember
	CodeNotHeld
	CodeUnavailable
	CodeDeadlineExceeded
	CodeCanceled
	CodeUnimplemented
	CodeInvalidArgument
	CodeLost
)

var codeNames = map[Code]string{
	CodeInternal:         "internal",
	CodeNotFound:         "not found",
	CodeGroupNotFound:    "group not found",
	CodeAlreadyExists:    "already exists",
	CodeGroupExists:      "group already exists",
	CodeGroupNotEmpty:    "group not empty",
	CodeMemberExists:     "member already joined",
	CodeNotMember:        "not a member",
	CodeNotHeld:          "lock not held",
	CodeUnavailable:      "unavailable",
	CodeDeadlineExceeded: "deadline exceeded",
	CodeCanceled:         "canceled",
	CodeUnimplemented:    "unimplemented",
	CodeInvalidArgument:  "invalid argument",
	CodeLost:             "lost",
}

// String returns the code's name.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Error is a classified driver error.
type Error struct {
	Code Code
	// Err is the underlying error: the native client's error, or a
	// description. It may be nil.
	Err error
}

// Error returns the code and the underlying message.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message; %w wraps.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Wrap classifies err with code. Wrap(code, nil) returns an *Error with
// no underlying error.
func Wrap(code Code, err error) error {
	return &Error{Code: code, Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, and false
// when there is none.
func CodeOf(err error) (Code, bool) {
	var de *Error
	if errors.As(err, &de) {
		return de.Code, true
	}
	return CodeInternal, false
}
