package bench

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkLockOp runs one contender of BenchmarkLock alone, b.N times
// back to back, so that the testing package's own tools apply to it:
// -benchmem (allocations per operation), -cpuprofile and -memprofile
// (select one contender with -bench 'LockOp/redis/baton'). Before the
// timed loop, it counts the round trips of one operation through a
// counting proxy (server targets: a round trip is a request answered,
// requests pipelined together count once), reported as round-trips/op.
func BenchmarkLockOp(b *testing.B) {
	for _, t := range targets {
		for _, who := range []string{"baton", "peer"} {
			b.Run(t.name+"/"+who, func(b *testing.B) {
				s := newSite(b, t)
				ctx := context.Background()
				trips := -1.0
				if len(s.hosts) == 1 && t.name != "ipc" {
					trips = roundTrips(b, s, who)
				}
				op := contender(b, s, who)
				if _, _, err := opLoop(ctx, op, lockSlice(b)/4); err != nil {
					b.Fatalf("%s: warm-up: %v", who, err)
				}
				b.ReportAllocs()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				for b.Loop() {
					if err := op(ctx); err != nil {
						b.Fatalf("%s: %v", who, err)
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				if trips >= 0 {
					b.ReportMetric(trips, "round-trips/op")
				}
				n := float64(b.N)
				addRecord(record{Metric: "lockop", Target: t.name, Peer: t.lockPeer, Values: map[string]float64{
					who + "_trips":  trips,
					who + "_allocs": float64(after.Mallocs-before.Mallocs) / n,
					who + "_bytes":  float64(after.TotalAlloc-before.TotalAlloc) / n,
					who + "_s":      b.Elapsed().Seconds() / n,
				}})
			})
		}
	}
}

// contender returns baton's or the peer's lock operation on s.
func contender(tb testing.TB, s *site, who string) lockOp {
	if who == "baton" {
		return newBatonLocker(tb, s)
	}
	return s.t.newLockPeer(tb, s)
}

// roundTripOps is how many operations the round-trip count averages.
const roundTripOps = 200

// roundTrips counts the round trips of one operation of who on s: the
// contender connects through a counting proxy, is warmed up, and runs
// roundTripOps operations. Background traffic in that window (a renewal,
// a ping) is counted too: it is a small fraction.
func roundTrips(tb testing.TB, s *site, who string) float64 {
	p := startCountingProxy(tb, s.hosts[0])
	ps := &site{t: s.t, url: strings.Replace(s.url, s.hosts[0], p.addr(), 1), hosts: []string{p.addr()}, dir: s.dir}
	op := contender(tb, ps, who)
	ctx := context.Background()
	for range 20 {
		if err := op(ctx); err != nil {
			tb.Fatalf("%s (proxied): %v", who, err)
		}
	}
	before := p.trips.Load()
	for range roundTripOps {
		if err := op(ctx); err != nil {
			tb.Fatalf("%s (proxied): %v", who, err)
		}
	}
	return float64(p.trips.Load()-before) / roundTripOps
}

// countingProxy forwards TCP connections to a server and counts round
// trips: on each connection, every time the server speaks after the
// client did.
type countingProxy struct {
	ln    net.Listener
	trips atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startCountingProxy(tb testing.TB, upstream string) *countingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			var spoke atomic.Bool // the client spoke since the server last did
			p.wg.Go(func() { p.pipe(u, c, func() { spoke.Store(true) }) })
			p.wg.Go(func() {
				p.pipe(c, u, func() {
					if spoke.Swap(false) {
						p.trips.Add(1)
					}
				})
			})
		}
	})
	tb.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

// pipe copies src to dst, calling seen before forwarding each read.
func (p *countingProxy) pipe(dst, src net.Conn, seen func()) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			seen()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}
