package etcd2backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// node is a node of the v2 store as its JSON answers show it.
type node struct {
	Key           string  `json:"key"`
	Value         string  `json:"value"`
	Dir           bool    `json:"dir"`
	Nodes         []*node `json:"nodes"`
	CreatedIndex  uint64  `json:"createdIndex"`
	ModifiedIndex uint64  `json:"modifiedIndex"`
	TTL           int64   `json:"ttl"`
}

// response is a successful answer: an action on a node, or an event of
// a watch.
type response struct {
	Action   string `json:"action"`
	Node     *node  `json:"node"`
	PrevNode *node  `json:"prevNode"`
	// Index is the X-Etcd-Index header: the store's index when the
	// request was served (when a watch was registered, for a watch).
	Index uint64 `json:"-"`
}

// etcdError is an error answer of the v2 API.
type etcdError struct {
	Code    int    `json:"errorCode"`
	Message string `json:"message"`
	Cause   string `json:"cause"`
	// Index is the store's index when the request failed.
	Index uint64 `json:"index"`
}

func (e *etcdError) Error() string {
	if e.Cause != "" {
		return fmt.Sprintf("etcd error %d: %s (%s)", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("etcd error %d: %s", e.Code, e.Message)
}

// The v2 error codes the driver acts on.
const (
	ecodeKeyNotFound    = 100
	ecodeTestFailed     = 101
	ecodeNotFile        = 102
	ecodeNodeExist      = 105
	ecodeDirNotEmpty    = 108
	ecodeUnauthorized   = 110
	ecodeWatcherCleared = 400
	ecodeEventCleared   = 401
)

// isCode reports whether err is a v2 error answer with one of codes.
func isCode(err error, codes ...int) bool {
	var ee *etcdError
	if !errors.As(err, &ee) {
		return false
	}
	for _, c := range codes {
		if ee.Code == c {
			return true
		}
	}
	return false
}

// errIndex returns the store index of a v2 error answer.
func errIndex(err error) uint64 {
	var ee *etcdError
	if errors.As(err, &ee) {
		return ee.Index
	}
	return 0
}

// errNoV2 is the cause of an answer showing the server does not serve
// the v2 keys API at all.
var errNoV2 = errors.New("the server does not serve the etcd v2 keys API (/v2/keys): etcd 3.4 and 3.5 serve it only when started with --enable-v2=true, etcd 3.6 removed it; use etcd3:// or etcd3+http:// instead")

// statusError is an answer that is neither a v2 result nor a v2 error.
type statusError struct {
	Status int
	Body   string
}

func (e *statusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// transportError is a request that got no answer: the endpoint could
// not be reached, or the connection broke.
type transportError struct {
	Endpoint string
	// Sent is false when the request certainly did not reach the server
	// (the connection could not be made).
	Sent bool
	Err  error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("%s: %v", e.Endpoint, e.Err)
}

func (e *transportError) Unwrap() error { return e.Err }

// client speaks the v2 keys API to the endpoints of one cluster over one
// HTTP transport. Requests go to the current endpoint; when it cannot be
// reached the next one becomes current. Reads, and writes that certainly
// did not reach a server, are retried on the other endpoints within the
// same request.
type client struct {
	endpoints []string // "http://host:port"
	cur       atomic.Uint32
	hc        *http.Client
	tr        *http.Transport
	username  string
	password  string
	timeout   time.Duration // of each request that does not wait
}

func newClient(endpoints []string, tr *http.Transport, username, password string, timeout time.Duration) *client {
	return &client{
		endpoints: endpoints,
		hc:        &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		tr:        tr,
		username:  username,
		password:  password,
		timeout:   timeout,
	}
}

func newTransport(dialTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // a coordination client must not go through an environment proxy
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 15 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// close drops the idle connections; connections in use close when their
// requests end.
func (c *client) close() { c.tr.CloseIdleConnections() }

// get reads key (quorum reads are linearizable: they go through Raft).
func (c *client) get(ctx context.Context, key string, q url.Values) (*response, error) {
	return c.do(ctx, http.MethodGet, key, q, false)
}

// put writes key with the form values f.
func (c *client) put(ctx context.Context, key string, f url.Values) (*response, error) {
	return c.do(ctx, http.MethodPut, key, f, false)
}

// post creates an in-order key under dir.
func (c *client) post(ctx context.Context, dir string, f url.Values) (*response, error) {
	return c.do(ctx, http.MethodPost, dir, f, false)
}

// del deletes key.
func (c *client) del(ctx context.Context, key string, q url.Values) (*response, error) {
	return c.do(ctx, http.MethodDelete, key, q, false)
}

// wait long-polls key for the first event at or after index (recursive:
// of any key under it). It waits as long as ctx lasts.
func (c *client) wait(ctx context.Context, key string, index uint64, recursive bool) (*response, error) {
	q := url.Values{"wait": {"true"}, "waitIndex": {strconv.FormatUint(index, 10)}}
	if recursive {
		q.Set("recursive", "true")
	}
	return c.do(ctx, http.MethodGet, key, q, true)
}

// retry sends an idempotent request (a read, a refresh) with a deadline
// of attempt per try, trying the next endpoint after a try that got no
// answer, timed out or met a server without a leader, until one answers
// or ctx ends. A proposal forwarded to a leader that then died is never
// answered before etcd's own request timeout (seconds): a short try
// moves on instead of spending the grant's remaining lease on it.
func (c *client) retry(ctx context.Context, method, key string, params url.Values, attempt time.Duration) (*response, error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		resp, err := c.do(actx, method, key, params, true)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return resp, err
		}
		c.cur.Add(1)
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// transient reports whether a request that failed with err may succeed
// when sent again, maybe to another endpoint.
func transient(err error) bool {
	var te *transportError
	var se *statusError
	var ee *etcdError
	switch {
	case errors.As(err, &te), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &se):
		return se.Status >= 500
	case errors.As(err, &ee):
		return ee.Code >= 300 && ee.Code < 400 // Raft: no leader, timeouts
	}
	return false
}

// do sends one request, trying the endpoints in turn while the request
// may be repeated: always for reads, only when nothing was sent for
// writes.
func (c *client) do(ctx context.Context, method, key string, params url.Values, long bool) (*response, error) {
	if dl, ok := ctx.Deadline(); !long && (!ok || time.Until(dl) > c.timeout) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	n := uint32(len(c.endpoints))
	start := c.cur.Load()
	var last error
	for i := uint32(0); i < n; i++ {
		ep := c.endpoints[(start+i)%n]
		resp, err := c.once(ctx, ep, method, key, params)
		var te *transportError
		if !errors.As(err, &te) {
			return resp, err
		}
		last = err
		// Move away from an endpoint that failed, unless another request
		// did already.
		c.cur.CompareAndSwap(start+i, start+i+1)
		if ctx.Err() != nil || (te.Sent && method != http.MethodGet) {
			break
		}
	}
	return nil, last
}

// once sends one request to one endpoint.
func (c *client) once(ctx context.Context, ep, method, key string, params url.Values) (*response, error) {
	u := ep + "/v2/keys" + key
	var body io.Reader
	if method == http.MethodPut || method == http.MethodPost {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.username != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		// The URL holds no secret (the credentials travel in a header),
		// but drop the url.Error wrapper that repeats it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var oe *net.OpError
		sent := !(errors.As(err, &oe) && oe.Op == "dial")
		return nil, &transportError{Endpoint: ep, Sent: sent, Err: err}
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(hr.Body)
	if err != nil {
		return nil, &transportError{Endpoint: ep, Sent: true, Err: err}
	}
	if hr.StatusCode/100 == 2 {
		var r response
		if err := json.Unmarshal(data, &r); err != nil || r.Node == nil {
			return nil, &statusError{Status: hr.StatusCode, Body: snippet(data)}
		}
		r.Index, _ = strconv.ParseUint(hr.Header.Get("X-Etcd-Index"), 10, 64)
		return &r, nil
	}
	var ee etcdError
	if strings.HasPrefix(hr.Header.Get("Content-Type"), "application/json") && json.Unmarshal(data, &ee) == nil && ee.Code != 0 {
		return nil, &ee
	}
	if hr.StatusCode == http.StatusNotFound {
		return nil, errNoV2
	}
	return nil, &statusError{Status: hr.StatusCode, Body: snippet(data)}
}

// snippet returns the start of an unexpected answer, for errors.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// form builds request parameters from key/value pairs.
func form(kv ...string) url.Values {
	v := make(url.Values, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// seconds renders a TTL as the v2 API wants it: whole seconds, rounded up.
func seconds(d time.Duration) string {
	return strconv.FormatInt(ttlSeconds(d), 10)
}

// ttlSeconds rounds d up to whole seconds, at least one.
func ttlSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(1, s)
}

// wholeSeconds returns d rounded up to whole seconds, as the store keeps it.
func wholeSeconds(d time.Duration) time.Duration { return time.Duration(ttlSeconds(d)) * time.Second }

// quorum is the query of a linearizable read.
var quorum = url.Values{"quorum": {"true"}}

// quorumSorted is a linearizable, sorted directory listing.
var quorumSorted = url.Values{"quorum": {"true"}, "sorted": {"true"}}
