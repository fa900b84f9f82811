package mysqlbackend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/go-sql-driver/mysql"

	bdriver "github.com/baton-go/baton/backend/driver"
)

// MySQL and MariaDB error numbers the driver branches on.
const (
	erDBAccessDenied     = 1044
	erAccessDenied       = 1045
	erBadDB              = 1049
	erDupEntry           = 1062
	erTableAccessDenied  = 1142
	erColumnAccessDenied = 1143
	erLockWaitTimeout    = 1205
	erLockDeadlock       = 1213
	erSpecificAccess     = 1227
	erQueryInterrupted   = 1317
	erConnKilled         = 1927 // MariaDB: connection was killed
	erServerShutdown     = 1053
)

// classify codes a raw error for the backend. Already classified errors
// are returned as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := bdriver.CodeOf(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return bdriver.Wrap(bdriver.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return bdriver.Wrap(bdriver.CodeDeadlineExceeded, err)
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case erAccessDenied:
			return bdriver.Errorf(bdriver.CodeInvalidArgument, "access denied (check the URL's user and password): %w", err)
		case erDBAccessDenied, erBadDB:
			return bdriver.Errorf(bdriver.CodeInvalidArgument, "cannot use the URL's database: %w", err)
		case erTableAccessDenied, erColumnAccessDenied, erSpecificAccess:
			return bdriver.Errorf(bdriver.CodeInvalidArgument, "missing privilege: %w", err)
		case erLockWaitTimeout, erLockDeadlock:
			return bdriver.Wrap(bdriver.CodeUnavailable, err)
		case erQueryInterrupted, erConnKilled, erServerShutdown:
			return bdriver.Wrap(bdriver.CodeUnavailable, err)
		}
		return bdriver.Wrap(bdriver.CodeInternal, err)
	}
	if tlsError(err) {
		return bdriver.Errorf(bdriver.CodeInvalidArgument, "TLS (check the ssl_* options against the server's certificate): %w", err)
	}
	if connectionError(err) {
		return bdriver.Wrap(bdriver.CodeUnavailable, err)
	}
	return bdriver.Wrap(bdriver.CodeInternal, err)
}

// tlsError reports a certificate the TLS options reject.
func tlsError(err error) bool {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &ve)
}

// connectionError reports whether err means the connection is unusable.
func connectionError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.As(err, &ne), errors.As(err, &oe):
		return true
	case errors.As(err, &me):
		return me.Number == erConnKilled || me.Number == erServerShutdown || me.Number == erQueryInterrupted
	}
	return false
}

// isDup reports a duplicate-key error.
func isDup(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erDupEntry
}

// retryable reports a deadlock or lock wait timeout, after which a
// transaction may be run again.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == erLockDeadlock || me.Number == erLockWaitTimeout)
}

// schemaError explains a failure to create the tables.
func schemaError(db, prefix string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == erTableAccessDenied || me.Number == erDBAccessDenied || me.Number == erSpecificAccess) {
		return bdriver.Errorf(bdriver.CodeInvalidArgument,
			"create the tables %s_*: the user lacks the CREATE privilege on database %q (GRANT CREATE, INDEX ON `%s`.* TO the user, or create the tables once with a user that has it): %w",
			prefix, db, db, err)
	}
	return fmt.Errorf("create the tables %s_*: %w", prefix, classify(err))
}
