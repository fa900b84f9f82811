package etcdgwbackend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/internal/testutil"
)

// silentMember is a listener that accepts connections and never answers,
// as a frozen (SIGSTOP) or partitioned etcd member does: it counts the
// connections made to it.
type silentMember struct {
	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
	done  sync.WaitGroup
}

func startSilentMember(t *testing.T) *silentMember {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentMember{ln: ln}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.done.Wait()
		s.mu.Lock()
		for _, c := range s.open {
			_ = c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

// A call whose own deadline runs out on an endpoint that never answers
// mutes that endpoint: the calls that follow start on another one instead
// of spending their time on it again (a renewal after a renewal on a
// frozen leader, until the session's lease expired). An attempt that gets
// no answer mutes its endpoint as well; a muted endpoint is used again
// once every other one is muted too.
func TestSilentEndpointIsMuted(t *testing.T) {
	silent := startSilentMember(t)
	var served atomic.Int64
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(good.Close)
	c := newClient("http", []string{silent.ln.Addr().String(), good.Listener.Addr().String()}, nil, time.Second, "", "")
	t.Cleanup(c.close)
	c.prefix = "/v3/"
	c.attempt = time.Minute // the calls' own deadlines run out first

	// The call's deadline runs out on the silent endpoint.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := c.call(ctx, "kv/range", struct{}{}, nil, true)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call on the silent endpoint: %v", err)
	}
	if silent.conns.Load() != 1 || served.Load() != 0 {
		t.Fatalf("connections to the silent endpoint %d, requests served %d; want 1, 0", silent.conns.Load(), served.Load())
	}
	// The next calls start on the other endpoint.
	for range 3 {
		if err := c.call(context.Background(), "kv/range", struct{}{}, nil, true); err != nil {
			t.Fatalf("call after the silent endpoint was muted: %v", err)
		}
	}
	if silent.conns.Load() != 1 || served.Load() != 3 {
		t.Fatalf("connections to the silent endpoint %d, requests served %d; want 1, 3", silent.conns.Load(), served.Load())
	}
	// Even when the current endpoint is moved back to the muted one.
	c.cur.Store(0)
	if err := c.call(context.Background(), "kv/range", struct{}{}, nil, true); err != nil {
		t.Fatal(err)
	}
	if silent.conns.Load() != 1 || served.Load() != 4 {
		t.Fatalf("connections to the silent endpoint %d, requests served %d; want 1, 4", silent.conns.Load(), served.Load())
	}
	// With every endpoint muted, the current one is used.
	c.silent[1].Store(time.Now().Add(time.Hour).UnixNano())
	if i, _ := c.firstEndpoint(); i != 1 {
		t.Fatalf("first endpoint %d with every endpoint muted, want the current one, 1", i)
	}
}

// Muting only picks where a call starts: a call whose first endpoint
// fails goes on to the muted ones, so it is served even when the only
// endpoint left unmuted is dead (connections refused).
func TestMutedEndpointStillTried(t *testing.T) {
	var served atomic.Int64
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(good.Close)
	dead := "127.0.0.1:" + testutil.DeadPort(t)
	c := newClient("http", []string{good.Listener.Addr().String(), dead}, nil, time.Second, "", "")
	t.Cleanup(c.close)
	c.prefix = "/v3/"
	c.attempt = time.Second
	c.silent[0].Store(time.Now().Add(time.Hour).UnixNano()) // the live one muted
	if err := c.call(context.Background(), "kv/range", struct{}{}, nil, true); err != nil {
		t.Fatalf("call with the live endpoint muted and the other dead: %v", err)
	}
	if served.Load() != 1 {
		t.Fatalf("requests served %d, want 1", served.Load())
	}
}
