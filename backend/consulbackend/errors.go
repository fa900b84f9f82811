package consulbackend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend/driver"
)

// ErrCertificate is wrapped by the error of a request whose TLS handshake
// failed over a certificate: the agent's certificate is not trusted (not
// signed by a CA of ca_cert, or of the system's pool with protocol=https
// alone; expired; not naming the agent's address; the native
// *tls.CertificateVerificationError stays reachable with errors.As), or
// the agent refused the client's (verify_incoming: cert_cert and cert_key
// missing, or not signed by a CA it trusts). Such errors are coded
// CodeInvalidArgument (backend.ErrInvalidArgument): retrying cannot help.
var ErrCertificate = errors.New("TLS certificate refused")

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
	if terr := tlsProblem(err); terr != nil {
		return driver.Wrap(driver.CodeInvalidArgument, fmt.Errorf("%s: %w", op, terr))
	}
	if rctx != nil && rctx.Err() != nil {
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%s: %w: %w", op, errNoAnswer, err))
	}
	return driver.Wrap(codeOf(err), fmt.Errorf("%s: %w", op, err))
}

// tlsProblem explains err when it is a TLS handshake that failed for a
// reason of configuration, which no retry mends, and returns nil
// otherwise. Certificate failures wrap ErrCertificate.
func tlsProblem(err error) error {
	var (
		ve *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		rh tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, ErrCertificate): // explained by the dialer
		return err
	case errors.As(err, &ve), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return fmt.Errorf("%w: the agent's certificate is not trusted (check ca_cert, or the system's CA pool when only protocol=https is set, and that the certificate names the agent's address): %w", ErrCertificate, err)
	case errors.As(err, &rh):
		return fmt.Errorf("the agent does not speak TLS on this port (give its HTTPS port, or drop protocol=https and the TLS options): %w", err)
	}
	alert, ok := remoteAlert(err)
	switch {
	case !ok:
		return nil
	case certificateAlert(alert):
		return fmt.Errorf("%w: the agent refused the TLS handshake over the client certificate (an agent with verify_incoming needs cert_cert and cert_key, signed by a CA it trusts): %w", ErrCertificate, err)
	case alert == alertProtocolVersion || alert == alertHandshakeFailure || alert == alertInsufficientSecurity:
		return fmt.Errorf("the agent refused the TLS handshake (no TLS version or cipher suite in common): %w", err)
	}
	return nil
}

// TLS alerts (RFC 8446 section 6.2) that a handshake refused for its
// configuration ends with.
const (
	alertHandshakeFailure     = 40
	alertBadCertificate       = 42
	alertCertificateExpired   = 45
	alertCertificateUnknown   = 46
	alertUnknownCA            = 48
	alertProtocolVersion      = 70
	alertInsufficientSecurity = 71
	alertCertificateRequired  = 116
)

// certificateAlert reports an alert about the client's certificate (or
// its absence: TLS 1.2 agents send bad_certificate for a missing one).
func certificateAlert(a uint8) bool {
	return (a >= alertBadCertificate && a <= alertCertificateUnknown) || a == alertUnknownCA || a == alertCertificateRequired
}

// remoteAlert returns the TLS alert the agent sent, when err carries one:
// crypto/tls reports a received alert as a *net.OpError with Op "remote
// error" whose Err is the alert, an unexported uint8 type.
func remoteAlert(err error) (uint8, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 {
		return 0, false
	}
	return uint8(v.Uint()), true
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
