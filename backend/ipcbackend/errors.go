package ipcbackend

import "errors"

// Errors wrapped by the driver's classified errors; reach them with
// errors.Is.
var (
	// ErrSessionRemoved is the cause of a session that ended because its
	// session semaphore was removed by someone else (ipcrm, or
	// ExpireSession): every later call of the connection fails with an
	// error coded lost that wraps it.
	ErrSessionRemoved = errors.New("ipc session semaphore removed")
	// ErrConnClosed is wrapped by the errors, coded canceled, of calls on
	// a closed connection.
	ErrConnClosed = errors.New("ipc connection closed")
	// ErrNoSession is wrapped by ExpireSession's error (coded not found)
	// when the member has no session in the namespace.
	ErrNoSession = errors.New("ipc: member has no session")
)
