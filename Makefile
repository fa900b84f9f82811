# baton — build, test and demo.
#
#   make demo        three workers on file://, a leader killed, the takeover shown
#   make test        install + start every server, run every test with -race, stop them
#   make test-unit   the tests that need no server
#   make lint        gofmt check + go vet
#   make depcheck    import rules (DESIGN.md §1)
#   make docs        regenerate docs/drivers.md from the option tables
#   make bench       side-by-side benchmarks and the scale scenarios, written
#                    to docs/performance.md
#                    (BENCH=redis: one backend, its rows updated)

GO      ?= go
SERVERS ?= redis memcached memcached-small postgresql mysql zookeeper zookeeper-ensemble etcd etcd-cluster consul consul-cluster
# Packages whose tests talk to real servers.
SERVER_PKGS := redisbackend|zkbackend|etcdbackend|etcdgwbackend|etcd2backend|consulbackend|memcachedbackend|pgbackend|mysqlbackend|bench
TEST_FLAGS ?= -race -count=1 -timeout 40m

.PHONY: all build examples test test-go test-unit lint depcheck docs demo bench bench-run clean

all: build

build:
	$(GO) build ./...
	$(GO) vet ./...

examples:
	@mkdir -p bin
	$(GO) build -o bin/ ./examples/... ./cmd/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

depcheck:
	$(GO) run ./internal/depcheck

docs:
	$(GO) run ./cmd/baton docs > docs/drivers.md

# test: everything the project has, against real servers started for the run
# and stopped afterwards even when a test fails.
test: lint depcheck examples
	bash scripts/install.sh tooz
	bash scripts/with-servers.sh --servers "$(SERVERS)" -- $(MAKE) --no-print-directory test-go

# A short fuzz run of the connection-string parser (no secret in any error,
# log or Explain) comes first; its seed corpus also runs with every go test.
# Packages without servers run in parallel; packages whose fault tests
# restart, pause or fail over shared servers run one at a time.
test-go:
	$(GO) test -run '^$$' -fuzz '^FuzzParseURL$$' -fuzztime 5s ./backend/
	$(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -v -E '$(SERVER_PKGS)')
	$(GO) test $(TEST_FLAGS) -p 1 $$($(GO) list ./... | grep -E '$(SERVER_PKGS)')

# The portable layer's TTL tests need Redis and etcd: deselected here.
test-unit:
	$(GO) test $(TEST_FLAGS) -skip '^Test(Redis|Etcd)' $$($(GO) list ./... | grep -v -E '$(SERVER_PKGS)')

demo:
	@$(GO) run ./examples/demo

# bench: the side-by-side benchmarks of bench/ (uncontended lock, cost per
# operation, contended handoff, takeover) on every backend, or on the one
# BENCH names (a sub-benchmark name: mem file ipc redis memcached zookeeper
# etcd etcd2 etcd3+http consul postgresql mysql, or a -cluster/-ensemble
# one), with only the server it needs; the results are merged into
# docs/performance.md (+ .json, .svg). Short benchtimes keep a full run
# within 15 minutes on a 2-core machine; the hashring benchmarks follow
# when no BENCH is given.
BENCH        ?=
BENCHTIME    ?= 1s
BENCH_ROUNDS ?= 3
BENCH_SERVERS = $(if $(BENCH),$(filter-out mem file ipc,$(patsubst etcd2%,etcd%,$(patsubst etcd3+http,etcd,$(BENCH)))),$(SERVERS))
BENCH_FOR     = $(if $(BENCH),/^$(subst +,\+,$(BENCH))$$)
BENCH_RE      = ^Benchmark(Lock|LockOp|Handoff|Takeover|Watch|Rebalance|Balance)$$$(BENCH_FOR)
# The scale scenarios (10,000 locks, 1,000 members, 100 Backends) run once
# each: -benchtime 1x.
BENCH_SCALE_RE = ^BenchmarkScale(Locks|Members|Backends)$$$(BENCH_FOR)

bench:
	bash scripts/install.sh tooz
	$(if $(BENCH_SERVERS),bash scripts/with-servers.sh --servers "$(BENCH_SERVERS)" --) \
	$(MAKE) --no-print-directory bench-run
	$(if $(BENCH),,$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./hashring/)

# bench-run: the benchmarks of bench/ against servers already started
# (make bench starts them); each run merges its results into the report.
bench-run:
	BATON_BENCH_ROUNDS=$(BENCH_ROUNDS) BATON_BENCH_REPORT=$(CURDIR)/docs/performance.md \
	$(GO) test -run '^$$' -bench '$(BENCH_RE)' -benchtime $(BENCHTIME) -timeout 30m ./bench/
	BATON_BENCH_REPORT=$(CURDIR)/docs/performance.md \
	$(GO) test -run '^$$' -bench '$(BENCH_SCALE_RE)' -benchtime 1x -timeout 15m ./bench/

clean:
	rm -rf bin
