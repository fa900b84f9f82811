package etcdgwbackend

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Error is an error answer of the gateway: the gRPC status code and
// message etcd returned (in the JSON body of a non-200 answer, or as the
// error object of a stream), and the HTTP status. errors.As reaches it
// through every error the driver returns.
type Error struct {
	Code       int    // gRPC status code (google.golang.org/grpc/codes)
	Message    string // etcd's message, e.g. "etcdserver: requested lease not found"
	HTTPStatus int    // 0 inside a stream
}

func (e *Error) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("etcd gateway: %s (code %d, HTTP %d)", e.Message, e.Code, e.HTTPStatus)
	}
	return fmt.Sprintf("etcd gateway: %s (code %d)", e.Message, e.Code)
}

// gRPC status codes the driver tells apart.
const (
	grpcCanceled           = 1
	grpcInvalidArgument    = 3
	grpcDeadlineExceeded   = 4
	grpcNotFound           = 5
	grpcPermissionDenied   = 7
	grpcResourceExhausted  = 8
	grpcFailedPrecondition = 9
	grpcAborted            = 10
	grpcOutOfRange         = 11
	grpcUnimplemented      = 12
	grpcUnavailable        = 14
	grpcUnauthenticated    = 16
)

// errPathNotServed is the cause of a 404 whose body is not a gateway
// error: the server has no such API path (an api_version the server does
// not serve, or not an etcd server at all).
var errPathNotServed = errors.New("the server does not serve this gateway path")

// messages of etcd errors the driver branches on (etcd's rpctypes).
const (
	msgLeaseNotFound    = "etcdserver: requested lease not found"
	msgInvalidAuthToken = "etcdserver: invalid auth token"
)

// client speaks JSON to the gateway of a list of etcd endpoints. Requests
// go to the current endpoint; a connection failure (or a member that
// answers "unavailable") moves every later request to the next one, and
// an idempotent request is retried there at once. Safe for concurrent
// use.
type client struct {
	hc        *http.Client
	tr        *http.Transport
	scheme    string   // "http" or "https"
	endpoints []string // host:port
	cur       atomic.Uint32
	// silent[i] is when endpoint i may be used again (unix ns) after it
	// gave no answer within an attempt: calls start elsewhere meanwhile.
	silent []atomic.Int64
	prefix string // API path, e.g. "/v3/"
	// attempt bounds one attempt of a call on one endpoint (0: none), so
	// that a member that accepts connections but never answers (a
	// partition, a black hole) costs a fraction of the lease TTL before
	// the call moves on to the next endpoint.
	attempt time.Duration

	username, password string
	mu                 sync.Mutex
	token              string // auth token, "" without authentication
}

// newClient returns a client over its own transport (each connection its
// own pool, so closing one never disturbs another).
func newClient(scheme string, endpoints []string, tc *tls.Config, dialTimeout time.Duration, username, password string) *client {
	d := &net.Dialer{Timeout: dialTimeout, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
	}}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: dialTimeout,
		ForceAttemptHTTP2:   tc != nil,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &client{
		hc: &http.Client{Transport: tr}, tr: tr, scheme: scheme, endpoints: endpoints,
		silent:   make([]atomic.Int64, len(endpoints)),
		username: username, password: password,
	}
}

// TCP keep-alive of every connection, so that a watch stream on a dead
// connection (a member that vanished without closing it) ends.
const (
	keepAliveIdle     = 10 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
)

// close drops every idle connection; streams end with their contexts.
func (c *client) close() { c.tr.CloseIdleConnections() }

// endpoint returns the index and address of the current endpoint.
func (c *client) endpoint() (int, string) {
	i := int(c.cur.Load()) % len(c.endpoints)
	return i, c.endpoints[i]
}

// firstEndpoint is endpoint for a call's first attempt: when the current
// endpoint is muted (mute), the next one that is not, if any. Later
// attempts of the call go round every endpoint, muted or not, so that a
// call never waits on the only endpoint left unmuted (a dead one, say)
// while the muted ones would answer.
func (c *client) firstEndpoint() (int, string) {
	cur := c.cur.Load()
	i := int(cur) % len(c.endpoints)
	now := time.Now().UnixNano()
	for k := range len(c.endpoints) {
		j := (i + k) % len(c.endpoints)
		if c.silent[j].Load() <= now {
			if k > 0 {
				c.cur.CompareAndSwap(cur, uint32(j))
			}
			return j, c.endpoints[j]
		}
	}
	return i, c.endpoints[i] // every endpoint muted: keep to the current one
}

// mute moves away from endpoint i, which gave no answer within an
// attempt (a frozen or partitioned member accepts connections and never
// answers), and keeps calls from starting on it for muteSpan attempts
// (firstEndpoint), so that renewals do not spend attempt after attempt on
// it.
func (c *client) mute(i int) {
	if len(c.endpoints) > 1 && c.attempt > 0 {
		c.silent[i].Store(time.Now().Add(muteSpan * c.attempt).UnixNano())
	}
	c.advance(i)
}

// muteSpan is how many attempts long an endpoint that gave no answer is
// avoided.
const muteSpan = 4

// advance moves away from endpoint i, unless another request did already.
func (c *client) advance(i int) {
	if len(c.endpoints) > 1 {
		c.cur.CompareAndSwap(uint32(i), uint32((i+1)%len(c.endpoints)))
	}
}

// url returns the URL of path (relative to the API prefix unless it
// starts with '/') on endpoint ep.
func (c *client) url(ep, path string) string {
	if !strings.HasPrefix(path, "/") {
		path = c.prefix + path
	}
	return c.scheme + "://" + ep + path
}

// call posts in as JSON to the gateway's path and decodes the answer into
// out. On a failure to connect, no answer within the attempt deadline, or
// an "unavailable" answer (a member without a leader), it moves to the
// next endpoint. A request that is not idempotent is retried there only
// when it certainly was not sent. An idempotent one asks the member for a
// leader (so a member cut off from its quorum answers at once instead of
// holding it) and is retried: with one endpoint once, with several until
// it succeeds or ctx ends, pausing (10 ms doubling to 200 ms) once every
// endpoint was tried. An expired auth token is renewed once.
func (c *client) call(ctx context.Context, path string, in, out any, idempotent bool) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var hdr http.Header
	if idempotent {
		hdr = requireLeader
	}
	reauthed := false
	pause := 10 * time.Millisecond
	var last error
	for attempt := 0; ; attempt++ {
		if attempt >= len(c.endpoints) {
			if !idempotent || len(c.endpoints) == 1 {
				return last
			}
			if attempt%len(c.endpoints) == 0 {
				t := time.NewTimer(pause)
				select {
				case <-ctx.Done():
					t.Stop()
					return last
				case <-t.C:
				}
				pause = min(2*pause, 200*time.Millisecond)
			}
		}
		i, ep := c.endpoint()
		if attempt == 0 {
			i, ep = c.firstEndpoint()
		}
		err := c.postAttempt(ctx, ep, path, body, out, hdr)
		if err == nil {
			return nil
		}
		last = err
		var ge *Error
		if ctx.Err() != nil {
			if !errors.As(err, &ge) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// The call's time ran out on this endpoint: the next
				// call starts on another one.
				c.mute(i)
			}
			return err
		}
		switch {
		case errors.As(err, &ge) && ge.Code == grpcUnauthenticated && ge.Message == msgInvalidAuthToken && c.username != "" && !reauthed:
			reauthed = true
			if aerr := c.authenticate(ctx); aerr != nil {
				return aerr
			}
			attempt--
			continue
		case errors.As(err, &ge) && ge.Code == grpcUnavailable:
			c.advance(i)
			if !idempotent {
				return err
			}
		case ge != nil || errors.Is(err, errPathNotServed):
			return err
		default: // transport
			if errors.Is(err, errSilent) {
				c.mute(i)
			} else {
				c.advance(i)
			}
			if !idempotent && !notSent(err) {
				return err
			}
		}
	}
}

// notSent reports whether err means the request never reached a server
// (the connection could not be made), so that retrying cannot apply a
// write twice.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// postAttempt is post bounded by the attempt timeout.
func (c *client) postAttempt(ctx context.Context, ep, path string, body []byte, out any, hdr http.Header) error {
	if c.attempt <= 0 {
		return c.post(ctx, ep, path, body, out, hdr)
	}
	actx, cancel := context.WithTimeout(ctx, c.attempt)
	defer cancel()
	err := c.post(actx, ep, path, body, out, hdr)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("%s %w within %v: %w", ep, errSilent, c.attempt, err)
	}
	return err
}

// errSilent is the cause of an attempt that got no answer from its
// endpoint within the attempt timeout.
var errSilent = errors.New("gave no answer")

// post sends one request to endpoint ep.
func (c *client) post(ctx context.Context, ep, path string, body []byte, out any, hdr http.Header) error {
	resp, err := c.do(ctx, ep, path, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return answerError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", path, err)
	}
	return nil
}

// do sends one POST and returns the response as it arrives.
func (c *client) do(ctx context.Context, ep, path string, body []byte, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(ep, path), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := c.authToken(); tok != "" {
		req.Header.Set("Authorization", tok)
	}
	return c.hc.Do(req)
}

// answerError decodes the error body of a non-200 answer.
func answerError(status int, data []byte) error {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Code    int    `json:"code"`
	}
	if json.Unmarshal(data, &e) == nil && (e.Message != "" || e.Error != "") {
		msg := e.Message
		if msg == "" {
			msg = e.Error
		}
		return &Error{Code: e.Code, Message: msg, HTTPStatus: status}
	}
	if status == http.StatusNotFound {
		return errPathNotServed
	}
	return &Error{Code: grpcUnavailable, Message: "HTTP " + strconv.Itoa(status) + ": " + strings.TrimSpace(string(clip(data, 200))), HTTPStatus: status}
}

// clip shortens b to at most n bytes.
func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// openStream posts a streaming request (a watch) to the current endpoint
// and returns the answer's body once the server accepted it, and the
// endpoint's index. The caller closes the body; ending ctx ends the stream.
func (c *client) openStream(ctx context.Context, path string, in any, hdr http.Header) (io.ReadCloser, int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, 0, err
	}
	i, ep := c.endpoint()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(ep, path), bytes.NewReader(body))
	if err != nil {
		return nil, i, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	if tok := c.authToken(); tok != "" {
		req.Header.Set("Authorization", tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, i, err
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, i, answerError(resp.StatusCode, data)
	}
	return resp.Body, i, nil
}

func (c *client) authToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// authenticate gets a token for the user name and password (etcd's simple
// or JWT tokens) and sends it with every later request.
func (c *client) authenticate(ctx context.Context) error {
	if c.username == "" {
		return nil
	}
	var resp struct {
		Token string `json:"token"`
	}
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
	err := c.call(ctx, "auth/authenticate", map[string]string{"name": c.username, "password": c.password}, &resp, true)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.token = resp.Token
	c.mu.Unlock()
	return nil
}

// serverVersion is the answer of GET /version.
type serverVersion struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
}

// version asks the endpoints, in turn, for the server's version.
func (c *client) version(ctx context.Context) (serverVersion, error) {
	var last error
	for attempt := 0; attempt < len(c.endpoints); attempt++ {
		i, ep := c.endpoint()
		actx, cancel := ctx, context.CancelFunc(func() {})
		if c.attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, c.attempt)
		}
		v, err := c.getVersion(actx, ep)
		cancel()
		if err == nil {
			return v, nil
		}
		last = err
		if ctx.Err() != nil || errors.Is(err, errNotEtcd) {
			return serverVersion{}, err
		}
		c.advance(i)
	}
	return serverVersion{}, last
}

// errNotEtcd is the cause of a /version answer that is not etcd's.
var errNotEtcd = errors.New("GET /version did not answer an etcd version")

func (c *client) getVersion(ctx context.Context, ep string) (serverVersion, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(ep, "/version"), nil)
	if err != nil {
		return serverVersion{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return serverVersion{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return serverVersion{}, err
	}
	var v serverVersion
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &v) != nil || v.Server == "" {
		return serverVersion{}, fmt.Errorf("%w (HTTP %d from %s)", errNotEtcd, resp.StatusCode, ep)
	}
	return v, nil
}

// apiPathFor returns the gateway path an etcd server version serves, as
// etcd3gw (tooz 5.0's client) picks it: /v3/ from 3.4, /v3beta/ on 3.3,
// /v3alpha/ before.
func apiPathFor(server string) (string, error) {
	parts := strings.SplitN(server, ".", 3)
	if len(parts) < 2 {
		return "", fmt.Errorf("etcd version %q is not major.minor[.patch]", server)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("etcd version %q is not major.minor[.patch]", server)
	}
	switch {
	case major > 3 || major == 3 && minor >= 4:
		return "v3", nil
	case major == 3 && minor == 3:
		return "v3beta", nil
	case major == 3:
		return "v3alpha", nil
	}
	return "", fmt.Errorf("etcd %s has no v3 gateway", server)
}
