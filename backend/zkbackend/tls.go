package zkbackend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// newTLS builds the TLS wrapper of the dialer from the TLS options (the
// ones tooz passes to kazoo: use_ssl, verify_certs, ca, certfile, keyfile,
// keyfile_password). It returns nil when TLS is off. Errors are coded
// CodeInvalidArgument (unreadable or malformed files) or
// CodeUnimplemented (PKCS#8-encrypted keys).
func newTLS(t *tlsSettings) (tlsConfigFunc, error) {
	if t == nil {
		return nil, nil
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !t.verify} //nolint:gosec // verify_certs=false asks for it
	if t.ca != "" {
		pemData, err := os.ReadFile(t.ca)
		if err != nil {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, driver.Errorf(driver.CodeInvalidArgument, "ca %q holds no PEM certificate", t.ca)
		}
		base.RootCAs = pool
	}
	if t.cert != "" {
		cert, err := loadKeyPair(t.cert, t.key, t.keyPassword)
		if err != nil {
			return nil, err
		}
		base.Certificates = []tls.Certificate{cert}
	}
	return func(raw net.Conn, host string, timeout time.Duration) (net.Conn, error) {
		cfg := base.Clone()
		cfg.ServerName = host
		c := tls.Client(raw, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake with %s: %w", host, err)
		}
		return c, nil
	}, nil
}

// loadKeyPair loads a PEM certificate chain and its key, decrypting a key
// in the legacy encrypted PEM form (Proc-Type: 4,ENCRYPTED) with password.
func loadKeyPair(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, driver.Errorf(driver.CodeInvalidArgument, "certfile: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, driver.Errorf(driver.CodeInvalidArgument, "keyfile: %w", err)
	}
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY":
			return tls.Certificate{}, driver.Errorf(driver.CodeUnimplemented, "keyfile %q is PKCS#8-encrypted, which Go cannot decrypt; convert it with `openssl pkcs8 -topk8 -nocrypt` or to legacy PEM encryption (openssl rsa/ec -aes256)", keyFile)
		case x509.IsEncryptedPEMBlock(block): //nolint:staticcheck // the legacy form is what keyfile_password decrypts
			if password == "" {
				return tls.Certificate{}, driver.Errorf(driver.CodeInvalidArgument, "keyfile %q is encrypted; set keyfile_password", keyFile)
			}
			der, err := x509.DecryptPEMBlock(block, []byte(password)) //nolint:staticcheck // see above
			if err != nil {
				return tls.Certificate{}, driver.Errorf(driver.CodeInvalidArgument, "keyfile %q: wrong keyfile_password or damaged key", keyFile)
			}
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, driver.Errorf(driver.CodeInvalidArgument, "certfile/keyfile: %w", err)
	}
	return cert, nil
}
