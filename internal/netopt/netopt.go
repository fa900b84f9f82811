// Package netopt reads the network options the HTTP and gRPC drivers
// (etcd3://, etcd3+http://, etcd://, consul://) share: a URL host with a
// default port, and TLS from the options protocol, ca_cert, cert_cert and
// cert_key. Its functions are pure but for reading the named PEM files,
// and safe for concurrent use.
package netopt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/baton-go/baton/backend/driver"
)

// HostPort returns "host:port" for one URL host h ("host", "host:port",
// "[v6]" or "[v6]:port"), adding defaultPort when h has none. An empty
// host name is an error.
func HostPort(h, defaultPort string) (string, error) {
	if host, port, err := net.SplitHostPort(h); err == nil {
		if host == "" {
			return "", fmt.Errorf("host %q has no host name", h)
		}
		return net.JoinHostPort(host, port), nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if host == "" {
		return "", errors.New("empty host")
	}
	return net.JoinHostPort(host, defaultPort), nil
}

// TLSOptionSpecs returns the option specs TLSConfig reads: protocol
// (http or https, default http) documented by protocolDoc, ca_cert
// documented by caDoc, cert_cert and cert_key. Each call returns a new
// slice.
func TLSOptionSpecs(protocolDoc, caDoc string) []driver.OptionSpec {
	return []driver.OptionSpec{
		{
			Key: "protocol", Type: driver.String, Default: "http", Enum: []string{"http", "https"},
			Doc: protocolDoc,
		},
		{
			Key: "ca_cert", Type: driver.String,
			Doc: caDoc,
		},
		{
			Key: "cert_cert", Type: driver.String,
			Doc: "PEM file of the client certificate for TLS client authentication (needs cert_key); turns TLS on.",
		},
		{
			Key: "cert_key", Type: driver.String,
			Doc: "PEM file of the client certificate's private key (needs cert_cert).",
		},
	}
}

// TLSConfig builds the TLS configuration the options of TLSOptionSpecs
// ask for, or nil for plain text: protocol=https or any of ca_cert,
// cert_cert and cert_key turns TLS on, and an explicit protocol=http
// with one of them is an error. See LoadTLS for the files.
func TLSConfig(o driver.Values) (*tls.Config, error) {
	ca, cert, key := o.String("ca_cert"), o.String("cert_cert"), o.String("cert_key")
	if o.String("protocol") != "https" && ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if o.IsSet("protocol") && o.String("protocol") == "http" {
		return nil, errors.New("protocol=http contradicts the TLS options ca_cert, cert_cert, cert_key")
	}
	return LoadTLS(ca, cert, key)
}

// LoadTLS builds a TLS configuration (TLS 1.2 at least) from PEM files:
// the CA certificates ca (the system's pool when ""), and the client
// certificate cert with its private key key, which go together (both ""
// for none). Errors name the option (ca_cert, cert_cert, cert_key) at
// fault.
func LoadTLS(ca, cert, key string) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, errors.New("cert_cert and cert_key go together")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert %q holds no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("cert_cert/cert_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
