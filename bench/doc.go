// Package bench holds baton's side-by-side benchmarks: every figure is a
// ratio measured in one run against the strongest peer on the same server,
// with the contenders interleaved so that the load of the machine weighs
// on all of them alike. The package has no API; everything is in its
// tests.
//
// Run the benchmarks of the report, with the servers started for the run
// and stopped after it, and write docs/performance.md (with its results,
// performance.json, and its chart, performance.svg, drawn by
// docs_test.go):
//
//	make bench              # every backend, within 15 minutes
//	make bench BENCH=redis  # one backend: its rows of the report updated
//
// make bench then runs the scale scenarios (BenchmarkScaleLocks,
// BenchmarkScaleMembers, BenchmarkScaleBackends, see scale_test.go) once
// each, with -benchtime 1x, for the report's "Scale per process" tables.
//
// or, with the servers of `scripts/servers.sh start` already up:
//
//	BATON_BENCH_REPORT=$PWD/docs/performance.md \
//	go test -run '^$' -bench '^Benchmark(Lock|LockOp|Handoff|Takeover|Watch|Rebalance|Balance)$' -benchtime 1s ./bench/
//
// Most of a full run is in the crash rounds (BATON_BENCH_ROUNDS, 3 in
// make bench).
//
// BenchmarkLock measures uncontended lock acquire+release through the lock
// package (lock.New, TryAcquire, Release) against the Go peer on the same
// server — bsm/redislock on Redis, go-zookeeper's zk.Lock on ZooKeeper,
// etcd's concurrency.Mutex on etcd, flock(2) plus one pwrite(2) of a
// counter (a fencing token) on file://, semop(2) on ipc://, GET_LOCK on
// MariaDB, pg_try_advisory_lock on PostgreSQL, gomemcache add/delete,
// api.Lock on Consul, raw CAS requests on etcd's v2 API, baton's gRPC
// driver for the etcd gateway, and a sync.Mutex on mem:// (the floor) — and against tooz, the Python
// library, run by the system interpreter (/usr/bin/python3) on the same
// server. Each round has two phases, in an order that alternates from
// round to round: baton and the Go peer in alternating bursts of about a
// millisecond of work, for two slices (BATON_BENCH_SLICE, default 200ms),
// and tooz for one slice. There are -benchtime / slice rounds (N for
// -benchtime Nx); each ratio reported is the median of the per-round
// ratios. On a ZooKeeper ensemble every client talks to its first member.
//
// BenchmarkLockOp runs each contender of BenchmarkLock alone, b.N
// times, for -benchmem, -cpuprofile and -memprofile (one contender:
// -bench 'LockOp/redis/baton'), and counts its round trips per operation
// through a proxy between client and server.
//
// BenchmarkHandoff measures a lock contended by 8 clients (a connection
// each) looping lock, release: the time from a Release call to the next
// holder's Lock returning (p50, p90, p99), in milliseconds and in round
// trips to the server, for baton's Backend.Lock and the peer's blocking
// recipe.
//
// BenchmarkTakeover measures how long a group is without a working leader:
// graceful (the leader's election.Run context is cancelled, it resigns;
// until the successor's work function starts) and after a crash (the
// leader's process is killed with SIGKILL; on mem:// its session is cut off
// and expired), against the peer's own recipe under the same conditions —
// etcd's concurrency.Election, go-zookeeper's zk.Lock, bsm/redislock
// (which cannot wait for a release: it retries every 10ms), flock(2) —
// in alternating rounds (BATON_BENCH_ROUNDS per side, default 10). Crash
// takeover on a TTL or session-timeout backend is bounded by that timeout:
// the crash rounds use a 2s TTL, reported alongside, and the kill strikes
// at a random point of the leader's renewal period, the same for both
// sides of a round.
//
// BenchmarkWatch measures, on every backend, how long a join or a leave
// takes to reach another Backend's group watch (from the start of the
// Join or Leave call), p50 and p99 over 50 of each.
//
// BenchmarkRebalance measures the partitioner (Exclusive mode) on mem,
// file, redis, zookeeper and etcd, with 16 members and 256 partitions and
// with 5 members and 16 partitions: the time from a member joining,
// leaving (Close) or being killed (SIGKILL of its process, 2s TTL; on
// mem:// its session is cut off) until every partition is owned exactly
// once again by the member the assignment names, p50 and p90.
// BenchmarkBalance measures the Balanced and Ring assignments' balance and
// movement on a join and a leave (P ∈ {8, 64, 256}, N ∈ {3, 4, 16, 100},
// random member names, the same sets every run).
//
// A driver whose server variable (BATON_TEST_REDIS_URL, ...) is unset
// fails with a hint on how to start it; mem:// and file:// need nothing.
// The comparison with tooz needs Debian's python3-tooz and its client
// libraries (scripts/install.sh tooz). At the end of the run a markdown
// summary of every result is printed.
package bench
