package pgbackend

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baton-go/baton/backend/driver"
)

// classify codes a raw error (from pgx, a context, or the driver) for the
// backend. Errors that are already classified are returned as they are.
// Callers map constraint violations themselves, where they know what the
// row is. Once the session is lost, every failure reports the loss.
func (c *conn) classify(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := driver.CodeOf(err); ok {
		return err
	}
	if serr := c.sessionErr(); serr != nil {
		return serr
	}
	return classify(err)
}

// classify codes err without a connection's state.
func classify(err error) error {
	if _, ok := driver.CodeOf(err); ok {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return driver.Errorf(driver.CodeInvalidArgument, "authentication failed (check the URL's user and password): %w", err)
		case pe.Code == "3D000":
			return driver.Errorf(driver.CodeInvalidArgument, "the database does not exist: %w", err)
		case pe.Code == "42501":
			return driver.Errorf(driver.CodeInvalidArgument, "permission denied: %w", err)
		case pe.Code == "57014":
			return driver.Wrap(driver.CodeDeadlineExceeded, err)
		case pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "55P03":
			return driver.Wrap(driver.CodeUnavailable, err)
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:2] == "53" || pe.Code[:2] == "57"):
			// connection exceptions, insufficient resources (too many
			// connections), operator intervention (shutdown, restart)
			return driver.Wrap(driver.CodeUnavailable, err)
		}
		return driver.Wrap(driver.CodeInternal, err)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return driver.Wrap(driver.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return driver.Wrap(driver.CodeUnavailable, err)
	}
	return driver.Wrap(driver.CodeInternal, err)
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
