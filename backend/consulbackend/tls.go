package consulbackend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
)

// useTLS makes tr dial the agent over TLS with tc, for every request of
// the connection: session creation and renewal, writes, transactions and
// the blocking queries of watches and lock waits all share tr.
//
// It dials itself rather than leave it to tr, so that a refused client
// certificate is reported as such. With TLS 1.3 the client's handshake
// completes before the agent has checked the client's certificate; an
// agent with verify_incoming then sends its alert and closes the
// connection, and the client sees only a failed first read or write
// ("broken pipe", or HTTP/2's "client conn could not be established").
// The dialer notes when the agent asked for a client certificate, and a
// connection on which nothing was ever read reports its failure as
// ErrCertificate. It speaks HTTP/1.1, as over plain HTTP.
func useTLS(tr *http.Transport, tc *tls.Config) {
	tr.TLSClientConfig = tc
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := &tlsConn{}
		cfg := tc.Clone()
		cfg.NextProtos = nil // HTTP/1.1: the transport cannot use HTTP/2 on a wrapped conn
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg.ServerName = host
		}
		certs := cfg.Certificates
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c.asked = true
			// crypto/tls's own choice: the first certificate the
			// request accepts, else none.
			for i := range certs {
				if cri.SupportsCertificate(&certs[i]) == nil {
					return &certs[i], nil
				}
			}
			return &tls.Certificate{}, nil
		}
		c.Conn = tls.Client(raw, cfg)
		if err := c.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return c, nil
	}
}

// tlsConn is a TLS connection to the agent that explains the failure of
// its first exchange when the agent asked for a client certificate.
type tlsConn struct {
	*tls.Conn
	asked bool        // the agent asked for a client certificate (set during the handshake)
	heard atomic.Bool // a read returned data: the agent accepted the handshake
}

func (c *tlsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.heard.Store(true)
	}
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

func (c *tlsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

// explain wraps err in ErrCertificate when the connection failed before
// the agent ever answered on it, after it asked for a client
// certificate: the agent refused the certificate (or its absence).
func (c *tlsConn) explain(err error) error {
	if !c.asked || c.heard.Load() || errors.Is(err, ErrCertificate) || errors.Is(err, net.ErrClosed) {
		return err
	}
	return &refusedCertError{err: err}
}

// refusedCertError is the failure of a connection's first exchange with an
// agent that asked for a client certificate. It matches ErrCertificate
// and unwraps to the I/O error.
type refusedCertError struct{ err error }

func (e *refusedCertError) Error() string {
	return fmt.Sprintf("%v: the agent closed the connection after asking for a client certificate (an agent with verify_incoming needs cert_cert and cert_key, signed by a CA it trusts): %v", ErrCertificate, e.err)
}

func (e *refusedCertError) Unwrap() []error { return []error{ErrCertificate, e.err} }
