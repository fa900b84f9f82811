package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-go/baton/internal/testutil"
)

// The raw etcd v2 recipe the etcd:// driver is measured against: a lock
// key created with PUT prevExist=false and a TTL, deleted with DELETE
// prevIndex=, on net/http with one keep-alive transport; a waiter
// long-polls the key's deletion (wait=true&waitIndex=).

// v2Client is a bare v2 keys API client on one endpoint.
type v2Client struct {
	base string
	hc   *http.Client
}

func newV2Client(tb testing.TB, s *site) *v2Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	tb.Cleanup(tr.CloseIdleConnections)
	return &v2Client{base: "http://" + s.hosts[0] + "/v2/keys", hc: &http.Client{Transport: tr}}
}

// v2Answer is the part of a v2 answer the recipe reads.
type v2Answer struct {
	Action    string `json:"action"`
	ErrorCode int    `json:"errorCode"`
	Index     uint64 `json:"index"`
	Node      struct {
		ModifiedIndex uint64 `json:"modifiedIndex"`
	} `json:"node"`
}

func (c *v2Client) do(ctx context.Context, method, key string, v url.Values) (*v2Answer, error) {
	u := c.base + key
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader(v.Encode())
	} else if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a v2Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, err
	}
	return &a, nil
}

// acquire creates key if absent; ok false (with the index) when it exists.
func (c *v2Client) acquire(ctx context.Context, key string, ttl int) (idx uint64, ok bool, err error) {
	a, err := c.do(ctx, http.MethodPut, key, url.Values{"value": {"x"}, "ttl": {strconv.Itoa(ttl)}, "prevExist": {"false"}})
	switch {
	case err != nil:
		return 0, false, err
	case a.ErrorCode == 105:
		return a.Index, false, nil
	case a.ErrorCode != 0:
		return 0, false, fmt.Errorf("v2 error %d", a.ErrorCode)
	}
	return a.Node.ModifiedIndex, true, nil
}

func (c *v2Client) release(ctx context.Context, key string, idx uint64) error {
	a, err := c.do(ctx, http.MethodDelete, key, url.Values{"prevIndex": {strconv.FormatUint(idx, 10)}})
	if err == nil && a.ErrorCode != 0 {
		err = fmt.Errorf("v2 error %d", a.ErrorCode)
	}
	return err
}

// newV2Locker is the raw recipe: create with prevExist=false, delete
// with prevIndex.
func newV2Locker(tb testing.TB, s *site) lockOp {
	c := newV2Client(tb, s)
	key := "/bench-" + testutil.Unique() + "/lock"
	return func(ctx context.Context) error {
		idx, ok, err := c.acquire(ctx, key, 30)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("raw v2: uncontended acquire failed")
		}
		return c.release(ctx, key, idx)
	}
}

// newV2Elector is the raw recipe as an election: acquire, or long-poll
// the key's deletion and try again; resign by deleting it.
func newV2Elector(tb testing.TB, s *site, _ bool, name string) elector {
	c := newV2Client(tb, s)
	key := "/bench-elect/" + name
	return funcElector(func(ctx context.Context) (func() error, error) {
		for {
			idx, ok, err := c.acquire(ctx, key, 30)
			if err != nil {
				return nil, err
			}
			if ok {
				return func() error { return c.release(context.Background(), key, idx) }, nil
			}
			for {
				a, err := c.do(ctx, http.MethodGet, key, url.Values{"wait": {"true"}, "waitIndex": {strconv.FormatUint(idx+1, 10)}})
				if err != nil {
					return nil, err
				}
				if a.ErrorCode != 0 || a.Action == "delete" || a.Action == "compareAndDelete" || a.Action == "expire" {
					break
				}
				idx = a.Node.ModifiedIndex
			}
		}
	})
}
