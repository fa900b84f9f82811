#!/usr/bin/env bash
# servers.sh — start, stop and break real backend servers for baton's tests.
#
# Usage: scripts/servers.sh COMMAND [ARG...]
#
#   start [NAME...]        start servers (none = all), wait until each is
#                          ready, write $BATON_STATE/env and print it
#                          (`eval "$(scripts/servers.sh start redis)"` works).
#                          A server already started keeps its ports and
#                          data; members of it found stopped are started.
#   stop [NAME...]         stop servers (none = all) and remove their dirs
#                          and env lines; never fails when already stopped
#   env                    print $BATON_STATE/env
#   status                 list every member: pid, state, address
#   running NAME           exit 0 when every member of NAME is running
#   started NAME           exit 0 when NAME was started in $BATON_STATE (and
#                          not stopped since), even if a member is down
#
# Fault injection, for tests (TARGET = NAME or NAME:MEMBER, see below):
#   kill TARGET...         SIGKILL the member's processes
#   stop-one TARGET...     stop gracefully, keep port and data dir
#   start-one TARGET...    start a stopped or killed member again
#   restart TARGET...      stop-one then start-one: same port, same data
#   pause TARGET...        SIGSTOP;  resume TARGET...  SIGCONT
#   redis-failover         SENTINEL FAILOVER mymaster; wait until the
#                          sentinels and both redis agree; print the new
#                          master's host:port (run it again to swap back)
#   start-one and restart wait until the member is ready; with --no-wait
#   first (`restart --no-wait zookeeper-ensemble:1`) they only launch it:
#   an ensemble member cannot be ready while its quorum is gone.
#
# NAME: redis memcached memcached-small mysql postgresql zookeeper
#       zookeeper-ensemble etcd etcd-cluster consul consul-cluster
#       (memcached-small: a second memcached with 2 MB of memory, which
#       evicts under load, for eviction tests)
# MEMBER:
#   single servers     1 (the default)
#   redis              1 = the first master (the default for `redis`),
#                      2 = its replica, sentinel1..sentinel3,
#                      master / replica = whichever has that role now
#   zookeeper-ensemble, etcd-cluster, consul-cluster
#                      1..3, leader, follower (the first follower), all
#                      (the default: NAME alone means every member)
#
# Environment: BATON_STATE (default /tmp/baton-servers) holds one dir per
# server, one per member inside, each with its pid, port, command line, log
# and data. BATON_READY_TIMEOUT (default 60) and BATON_STOP_TIMEOUT
# (default 10) are in seconds. Ports are picked free in 20000-31999 and
# recorded in ${TMPDIR:-/tmp}/baton-ports while their state dir exists, so
# runs with different BATON_STATE dirs can share the machine.
#
# Only the processes recorded here are ever signalled (pid and start time
# are both checked, so a recycled pid is never hit). kill, pause and resume
# signal a member's whole process tree (PostgreSQL's backends too).
#
# Redis roles move: the env's REDIS_URL / REDIS_REPLICA_URL name the first
# master and replica. After redis-failover (or a killed master's automatic
# failover) they are swapped until the next redis-failover. A restarted
# ex-master comes back as a master, empty, until Sentinel demotes it
# (about 10 s later), as it would in production.
#
# Tuned for fast tests: ZooKeeper tickTime=500 (sessions 1 s to 10 s),
# forceSync=no; etcd --unsafe-no-fsync, heartbeat/election 10/100 ms single
# and 50/500 ms for the cluster; Sentinel down-after 2 s (so a killed
# master fails over by itself after about 3 s), failover-timeout 6 s;
# PostgreSQL fsync=off; MariaDB innodb_flush_log_at_trx_commit=0; Consul
# session_ttl_min 1 s (both modes) and raft_multiplier 1 for the cluster
# (the dev agent keeps its state in memory only: a restart loses it).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPTS_DIR
SELF="$SCRIPTS_DIR/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
readonly ALL_SERVERS=(redis memcached memcached-small mysql postgresql zookeeper zookeeper-ensemble etcd etcd-cluster consul consul-cluster)
readonly READY_TIMEOUT=${BATON_READY_TIMEOUT:-60}
readonly STOP_TIMEOUT=${BATON_STOP_TIMEOUT:-10}
readonly PORT_MIN=20000 PORT_MAX=31999 # below Linux's ephemeral range
readonly CONSUL_VERSION=1.16.3
readonly PORTS_REGISTRY=${TMPDIR:-/tmp}/baton-ports
STATE=${BATON_STATE:-/tmp/baton-servers}

log() { printf 'servers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"
}

# ---------------------------------------------------------------------------
# Processes

# proc_stat PID sets P_STATE, P_PPID and P_START (state letter, parent pid,
# start time in clock ticks) from /proc/PID/stat; fails when PID is gone.
# No subshell: proc_tree calls it for every process on the machine.
proc_stat() {
	local line
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	local -a f
	read -ra f <<<"${line##*) }" # the command name may hold spaces and parens
	P_STATE=${f[0]} P_PPID=${f[1]} P_START=${f[19]}
}

# is_same PID START: PID is still the process that started at START.
is_same() { proc_stat "$1" && [[ $P_START == "$2" ]]; }

# member_pid DIR prints the member's pid when its recorded process is alive
# (same pid and same start time, not a zombie); fails otherwise.
member_pid() {
	local pid start
	[[ -f $1/pid ]] || return 1
	read -r pid start <"$1/pid" || return 1
	is_same "$pid" "$start" && [[ $P_STATE != [ZX] ]] || return 1
	printf '%s\n' "$pid"
}

# proc_tree PID prints "pid:starttime" for PID and all its descendants.
proc_tree() {
	local -A kids=()
	local f pid
	for f in /proc/[0-9]*; do
		pid=${f#/proc/}
		proc_stat "$pid" || continue
		kids[$P_PPID]+=" $pid"
	done
	local -a queue=("$1")
	while ((${#queue[@]})); do
		pid=${queue[0]}
		queue=("${queue[@]:1}")
		proc_stat "$pid" || continue
		printf '%s:%s\n' "$pid" "$P_START"
		# shellcheck disable=SC2206 # split the list of child pids
		queue+=(${kids[$pid]:-})
	done
}

# signal_procs SIG PID:START... sends SIG to each process still alive with
# that start time.
signal_procs() {
	local sig=$1 p
	shift
	for p in "$@"; do
		if is_same "${p%%:*}" "${p#*:}"; then
			kill -s "$sig" "${p%%:*}" 2>/dev/null || true
		fi
	done
}

# wait_gone SECONDS PID:START... waits until each has exited. A zombie
# counts as gone: here pid 1 reaps orphans only every second or two.
wait_gone() {
	local deadline=$((SECONDS + $1)) p alive
	shift
	while :; do
		alive=""
		for p in "$@"; do
			if is_same "${p%%:*}" "${p#*:}" && [[ $P_STATE != [ZX] ]]; then
				alive=1
				break
			fi
		done
		[[ -z $alive ]] && return 0
		((SECONDS < deadline)) || return 1
		sleep 0.02
	done
}

# ---------------------------------------------------------------------------
# State

label() { # DIR -> server:member
	local m=${1%/} s
	s=${m%/*}
	printf '%s:%s' "${s##*/}" "${m##*/}"
}

members() { # SERVER -> its member dirs, in order
	local dir=$STATE/$1 m
	[[ -f $dir/members ]] || return 0
	for m in $(<"$dir/members"); do
		printf '%s\n' "$dir/$m"
	done
}

server_running() { # SERVER: every member alive
	local d any=""
	while IFS= read -r d; do
		member_pid "$d" >/dev/null || return 1
		any=1
	done < <(members "$1")
	[[ -n $any ]]
}

# alloc_ports N prints N free TCP/UDP ports. Ports handed out are recorded
# machine-wide (in $PORTS_REGISTRY, with their state dir) until that state
# dir is gone, so servers started side by side, by this script or by a
# concurrent run with another BATON_STATE, never pick the same one before
# it is bound.
alloc_ports() {
	local n=$1
	(
		flock -w 60 8 || die "cannot lock $PORTS_REGISTRY.lock"
		local kept="" port dir p tries=0 used
		if [[ -f $PORTS_REGISTRY ]]; then
			while read -r port dir; do
				[[ -d $dir ]] && kept+="$port $dir"$'\n'
			done <"$PORTS_REGISTRY"
		fi
		used=" $(
			if command -v ss >/dev/null; then
				ss -Htuan | awk '{n = split($5, a, ":"); print a[n]}'
			fi
			printf '%s' "$kept" | cut -d' ' -f1
		) "
		used=${used//$'\n'/ }
		p=$((PORT_MIN + RANDOM % (PORT_MAX - PORT_MIN + 1)))
		while ((n > 0)); do
			((++tries < PORT_MAX - PORT_MIN)) || die "no free port in $PORT_MIN-$PORT_MAX"
			((p++ < PORT_MAX)) || p=$PORT_MIN
			[[ $used == *" $p "* ]] && continue
			# Without ss, at least check that nothing answers on it.
			if (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
				continue
			fi
			kept+="$p $STATE"$'\n'
			printf '%s\n' "$p"
			((n--))
		done
		printf '%s' "$kept" >"$PORTS_REGISTRY.tmp"
		mv "$PORTS_REGISTRY.tmp" "$PORTS_REGISTRY"
	) 8>>"$PORTS_REGISTRY.lock"
}

# get_ports N sets PORTS to N free ports.
get_ports() {
	mapfile -t PORTS < <(alloc_ports "$1")
	((${#PORTS[@]} == $1)) || die "could not allocate $1 ports"
}

# write_cmd DIR KIND PORT STOPSIG CMD... records how to run a member.
write_cmd() {
	local dir=$1
	mkdir -p "$dir"
	printf '%s\n' "$2" >"$dir/kind"
	printf '%s\n' "$3" >"$dir/port"
	printf '%s\n' "$4" >"$dir/stopsig"
	shift 4
	printf '%q ' "$@" >"$dir/cmd"
	printf '\n' >>"$dir/cmd"
}

# launch DIR starts the member's recorded command in its own session, with
# no terminal and no file descriptor of ours (a test's output pipe or our
# lock must not stay open in a server), and records its pid.
launch() {
	local dir=$1 pid
	local -a cmd
	eval "cmd=($(<"$dir/cmd"))"
	if [[ $(<"$dir/kind") == postgresql ]]; then
		# Our postmaster is not running (we only launch stopped members),
		# but until pid 1 reaps it, its zombie makes the new one refuse to
		# start ("lock file postmaster.pid already exists": it checks
		# the pid recorded there with kill(pid, 0)).
		# The same goes for the socket's lock file.
		rm -f "$dir/data/postmaster.pid" "$dir"/.s.PGSQL.*.lock
	fi
	# In a shell without job control a background child is not a process
	# group leader, so setsid execs in place and $! is the server's pid.
	(cd "$dir" && exec setsid "${cmd[@]}" </dev/null >>"$dir/log" 2>&1 8>&- 9>&-) &
	pid=$!
	proc_stat "$pid" || die "$(label "$dir") exited at once: $(tail -n 5 "$dir/log")"
	printf '%s %s\n' "$pid" "$P_START" >"$dir/pid"
}

fail_member() { # DIR MESSAGE
	log "$(label "$1") (127.0.0.1:$(<"$1/port")): $2; last lines of $1/log:"
	tail -n 25 "$1/log" | sed 's/^/    /' >&2
	exit 1
}

# wait_ready DIR waits until the member answers like a ready server.
wait_ready() {
	local dir=$1 kind deadline=$((SECONDS + READY_TIMEOUT))
	kind=$(<"$dir/kind")
	until "ready_$kind" "$dir"; do
		member_pid "$dir" >/dev/null || fail_member "$dir" "exited before it was ready"
		((SECONDS < deadline)) || fail_member "$dir" "not ready after $READY_TIMEOUT s"
		sleep 0.05
	done
}

# wait_until SECONDS WHAT CMD... retries CMD until it succeeds.
wait_until() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		((SECONDS < deadline)) || { log "timed out waiting for $what"; return 1; }
		sleep 0.05
	done
}

# stop_member DIR [SIGNAL] stops a member by its recorded pid: SIGNAL
# (default: its own stop signal), up to STOP_TIMEOUT s, then SIGKILL.
stop_member() {
	local dir=$1 sig=${2:-} pid
	local -a tree
	if pid=$(member_pid "$dir"); then
		[[ -n $sig ]] || sig=$(<"$dir/stopsig")
		mapfile -t tree < <(proc_tree "$pid")
		signal_procs "$sig" "${tree[0]}"
		signal_procs CONT "${tree[@]}" # a paused server must run to exit
		if ! wait_gone "$STOP_TIMEOUT" "${tree[@]}"; then
			log "$(label "$dir") still running after $STOP_TIMEOUT s; SIGKILL"
			mapfile -t tree < <(printf '%s\n' "${tree[@]}"; proc_tree "$pid")
			signal_procs KILL "${tree[@]}"
			wait_gone 5 "${tree[@]}" || log "$(label "$dir") pid $pid survived SIGKILL"
		fi
	fi
	rm -f "$dir/pid"
}

# kill_members DIR... SIGKILLs the members' process trees at once, then
# waits until they are gone.
kill_members() {
	local dir pid
	local -a tree=() one
	for dir in "$@"; do
		if pid=$(member_pid "$dir"); then
			mapfile -t one < <(proc_tree "$pid")
			tree+=("${one[@]}")
		else
			log "$(label "$dir") is not running"
		fi
	done
	((${#tree[@]})) || return 0
	signal_procs KILL "${tree[@]}"
	wait_gone 5 "${tree[@]}" || log "some process survived SIGKILL: ${tree[*]}"
}

signal_member() { # DIR SIG: to the whole process tree (postgres backends)
	local pid
	local -a tree
	pid=$(member_pid "$1") || die "$(label "$1") is not running"
	mapfile -t tree < <(proc_tree "$pid")
	signal_procs "$2" "${tree[@]}"
}

# ---------------------------------------------------------------------------
# Talking to servers without extra tools

# tcp_query PORT PAYLOAD prints what the server answers until it closes.
tcp_query() {
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "%b" "$2" >&3 && cat <&3' \
		_ "$1" "$2" 2>/dev/null || true
}

http_get() { # PORT PATH -> body
	local out
	out=$(tcp_query "$1" "GET $2 HTTP/1.0\r\nHost: 127.0.0.1:$1\r\nConnection: close\r\n\r\n")
	[[ $out == "HTTP/1."[01]" 200"* ]] || return 1
	printf '%s\n' "${out#*$'\r\n\r\n'}"
}

rcli() { # PORT ARG... -> redis-cli, CRs dropped
	timeout 3 redis-cli -h 127.0.0.1 -p "$1" "${@:2}" 2>/dev/null | tr -d '\r'
}

port_of() { cat "$1/port"; }

ready_redis() { [[ $(rcli "$(port_of "$1")" ping) == PONG ]]; }
ready_sentinel() { ready_redis "$1"; }
ready_memcached() { [[ $(tcp_query "$(port_of "$1")" 'version\r\nquit\r\n') == VERSION* ]]; }
ready_mysql() {
	timeout 3 mariadb-admin --no-defaults --connect-timeout=2 --socket="$1/sock" -uroot ping >/dev/null 2>&1
}
ready_postgresql() {
	[[ $(PGCONNECT_TIMEOUT=2 timeout 3 psql -h 127.0.0.1 -p "$(port_of "$1")" -U postgres -d postgres \
		-Atqc 'select 1' 2>/dev/null) == 1 ]]
}
ready_zookeeper() { [[ $(tcp_query "$(port_of "$1")" srvr) == *"Mode: "* ]]; }
ready_etcd() { http_get "$(port_of "$1")" /health | grep -q '"health":"true"'; }
ready_consul() { http_get "$(port_of "$1")" /v1/status/leader | grep -q '"[^"]'; }

# ---------------------------------------------------------------------------
# Starting each server. Each start_NAME runs in its own subshell, creates
# $STATE/NAME/{members,MEMBER/...}, waits until ready and writes
# $STATE/NAME/env.

env_line() { printf "export %s='%s'\n" "$1" "$2"; }

start_redis() {
	local dir=$STATE/redis p m r i
	get_ports 5
	local -a ports=("${PORTS[@]}")
	m=${ports[0]} r=${ports[1]}
	echo "1 2 sentinel1 sentinel2 sentinel3" >"$dir/members"
	for i in 1 2; do
		write_cmd "$dir/$i" redis "${ports[i - 1]}" TERM redis-server "$dir/$i/redis.conf"
		# A config file, so that Sentinel's CONFIG REWRITE keeps a role
		# change across a restart, as in production.
		cat >"$dir/$i/redis.conf" <<-EOF
			port ${ports[i - 1]}
			bind 127.0.0.1 -::1
			dir $dir/$i
			save ""
			appendonly no
			repl-diskless-sync-delay 0
			daemonize no
		EOF
	done
	echo "replicaof 127.0.0.1 $m" >>"$dir/2/redis.conf"
	launch "$dir/1"
	launch "$dir/2"
	wait_ready "$dir/1"
	wait_ready "$dir/2"
	# Sentinels find the replica through the master's INFO: start them
	# once it is attached, or they only see it ~10 s later.
	wait_until "$READY_TIMEOUT" "the redis replica to sync" replicates "$r" "$m" ||
		fail_member "$dir/2" "never synced with its master"
	for i in 1 2 3; do
		p=${ports[i + 1]}
		write_cmd "$dir/sentinel$i" sentinel "$p" TERM redis-sentinel "$dir/sentinel$i/sentinel.conf"
		cat >"$dir/sentinel$i/sentinel.conf" <<-EOF
			port $p
			bind 127.0.0.1 -::1
			dir $dir/sentinel$i
			daemonize no
			sentinel monitor mymaster 127.0.0.1 $m 2
			sentinel down-after-milliseconds mymaster 2000
			sentinel failover-timeout mymaster 6000
			sentinel parallel-syncs mymaster 1
		EOF
		launch "$dir/sentinel$i"
	done
	for i in 1 2 3; do
		wait_ready "$dir/sentinel$i"
	done
	# A failover needs the sentinels to know each other and the replica.
	for i in 1 2 3; do
		wait_until "$READY_TIMEOUT" "sentinel$i to see the others and the replica" \
			sentinel_settled "${ports[i + 1]}" || fail_member "$dir/sentinel$i" "never saw 2 sentinels and 1 replica"
	done
	{
		env_line BATON_TEST_REDIS_URL "redis://127.0.0.1:$m"
		env_line BATON_TEST_REDIS_ADDR "127.0.0.1:$m"
		env_line BATON_TEST_REDIS_REPLICA_URL "redis://127.0.0.1:$r"
		env_line BATON_TEST_REDIS_REPLICA_ADDR "127.0.0.1:$r"
		env_line BATON_TEST_REDIS_SENTINEL_URL \
			"redis://127.0.0.1:${ports[2]}?sentinel=mymaster&sentinel_fallback=127.0.0.1:${ports[3]}&sentinel_fallback=127.0.0.1:${ports[4]}"
		env_line BATON_TEST_REDIS_SENTINEL_ADDRS "127.0.0.1:${ports[2]},127.0.0.1:${ports[3]},127.0.0.1:${ports[4]}"
	} >"$dir/env"
}

# sentinel_field PORT FIELD prints FIELD of SENTINEL MASTER mymaster.
sentinel_field() {
	rcli "$1" sentinel master mymaster | awk -v k="$2" 'NR % 2 == 1 {key = $0; next} key == k {print; exit}'
}

replicates() { # PORT MASTER_PORT: PORT is a replica of MASTER_PORT, in sync
	local info
	info=$(rcli "$1" info replication)
	[[ $info == *"master_port:$2"$'\n'* && $info == *master_link_status:up* ]]
}

role_is() { [[ $(rcli "$1" role | head -n 1) == "$2" ]]; }

sentinel_settled() {
	[[ $(sentinel_field "$1" num-other-sentinels) == 2 && $(sentinel_field "$1" num-slaves) == 1 &&
		$(sentinel_field "$1" flags) == master ]]
}

start_memcached() {
	local dir=$STATE/memcached p
	get_ports 1
	p=${PORTS[0]}
	echo 1 >"$dir/members"
	write_cmd "$dir/1" memcached "$p" TERM \
		memcached -u nobody -l 127.0.0.1 -p "$p" -U 0 -m 64 -c 4096
	launch "$dir/1"
	wait_ready "$dir/1"
	{
		env_line BATON_TEST_MEMCACHED_URL "memcached://127.0.0.1:$p"
		env_line BATON_TEST_MEMCACHED_ADDR "127.0.0.1:$p"
	} >"$dir/env"
}

# memcached-small: -m 2. memcached still gives every slab class one 1 MB
# page, but no class grows past it, so some ten thousand small keys of one
# size make it evict.
start_memcached_small() {
	local dir=$STATE/memcached-small p
	get_ports 1
	p=${PORTS[0]}
	echo 1 >"$dir/members"
	write_cmd "$dir/1" memcached "$p" TERM \
		memcached -u nobody -l 127.0.0.1 -p "$p" -U 0 -m 2 -c 1024
	launch "$dir/1"
	wait_ready "$dir/1"
	{
		env_line BATON_TEST_MEMCACHED_SMALL_URL "memcached://127.0.0.1:$p"
		env_line BATON_TEST_MEMCACHED_SMALL_ADDR "127.0.0.1:$p"
	} >"$dir/env"
}

start_mysql() {
	local dir=$STATE/mysql p m
	get_ports 1
	p=${PORTS[0]}
	m=$dir/1
	echo 1 >"$dir/members"
	# --no-defaults first everywhere, or /etc/mysql leaks in; mariadbd
	# wants the datadir's parent owned by mysql.
	write_cmd "$m" mysql "$p" TERM \
		mariadbd --no-defaults --datadir="$m/data" --port="$p" --bind-address=127.0.0.1 \
		--socket="$m/sock" --pid-file="$m/mariadbd.pid" --user=mysql --skip-name-resolve \
		--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-buffer-pool-size=64M \
		--skip-log-bin --max-connections=3000 \
		--ssl-ca="$m/tls/ca.pem" --ssl-cert="$m/tls/server.pem" --ssl-key="$m/tls/server.key"
	mysql_certs "$m/tls"
	chown mysql: "$m"
	reachable_by mysql "$m"
	mariadb-install-db --no-defaults --datadir="$m/data" --user=mysql \
		--auth-root-authentication-method=normal --skip-test-db >>"$m/log" 2>&1 ||
		fail_member "$m" "mariadb-install-db failed"
	launch "$m"
	wait_ready "$m"
	mariadb --no-defaults --socket="$m/sock" -uroot >>"$m/log" 2>&1 <<-'EOF' || fail_member "$m" "creating the baton database failed"
		CREATE DATABASE IF NOT EXISTS baton;
		CREATE USER IF NOT EXISTS 'baton'@'%' IDENTIFIED BY 'baton-pw';
		GRANT ALL PRIVILEGES ON baton.* TO 'baton'@'%';
		CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		FLUSH PRIVILEGES;
	EOF
	{
		env_line BATON_TEST_MYSQL_URL "mysql://baton:baton-pw@127.0.0.1:$p/baton"
		env_line BATON_TEST_MYSQL_SOCKET "$m/sock"
		env_line BATON_TEST_MYSQL_TLS_DIR "$m/tls"
		env_line BATON_TEST_MYSQL_ROOT_URL "mysql://root@127.0.0.1:$p/baton"
		env_line BATON_TEST_MYSQL_ADDR "127.0.0.1:$p"
	} >"$dir/env"
}

# mysql_certs DIR: a test CA, a server certificate for 127.0.0.1 and
# localhost, and a client certificate, all signed by the CA (TLS tests).
mysql_certs() {
	local d=$1
	mkdir -p "$d"
	(
		cd "$d" &&
			openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=baton-test-ca \
				-keyout ca.key -out ca.pem &&
			openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext &&
			openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
				-extfile server.ext -out server.pem &&
			openssl req -newkey rsa:2048 -nodes -subj /CN=baton-client -keyout client.key -out client.csr &&
			openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out client.pem
	) >>"$d.log" 2>&1 || die "creating the test certificates in $d failed"
	chown -R mysql: "$d"
	chmod -R go+r "$d"
}

reachable_by() { # USER DIR: the server's own user must be able to write DIR
	setpriv --reuid="$1" --regid="$1" --init-groups -- test -w "$2" ||
		die "user $1 cannot write $2: put BATON_STATE where $1 can reach it (default /tmp/baton-servers)"
}

pg_bindir() {
	local bins=(/usr/lib/postgresql/*/bin/postgres)
	[[ -x ${bins[-1]} ]] || die "PostgreSQL not installed: run scripts/install.sh postgresql"
	dirname "${bins[-1]}"
}

start_postgresql() {
	local dir=$STATE/postgresql p m bin
	bin=$(pg_bindir)
	get_ports 1
	p=${PORTS[0]}
	m=$dir/1
	echo 1 >"$dir/members"
	# initdb and postgres refuse root: setpriv execs as postgres in place
	# (runuser would stay as the parent and hide the pid). SIGINT is the
	# fast shutdown; SIGTERM would wait for clients to leave.
	local -a as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
	write_cmd "$m" postgresql "$p" INT "${as_pg[@]}" "$bin/postgres" -D "$m/data" -p "$p" \
		-c listen_addresses=127.0.0.1 -c unix_socket_directories="$m" \
		-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300
	chown postgres: "$m"
	reachable_by postgres "$m"
	(cd "$m" && "${as_pg[@]}" "$bin/initdb" -D "$m/data" -U postgres --auth=trust --no-sync \
		--encoding=UTF8 --locale=C) >>"$m/log" 2>&1 || fail_member "$m" "initdb failed"
	# Trust for everyone but one role, which must give its password (the
	# driver's tests check how a wrong password is reported).
	sed -i '1i host all baton_password_test 127.0.0.1/32 scram-sha-256' "$m/data/pg_hba.conf"
	launch "$m"
	wait_ready "$m"
	psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -qc 'CREATE DATABASE baton' >>"$m/log" 2>&1 ||
		fail_member "$m" "CREATE DATABASE baton failed"
	{
		env_line BATON_TEST_POSTGRESQL_URL "postgresql://postgres@127.0.0.1:$p/baton"
		env_line BATON_TEST_POSTGRESQL_ADDR "127.0.0.1:$p"
		env_line BATON_TEST_POSTGRESQL_SOCKET_DIR "$m"
	} >"$dir/env"
}

# zk_member DIR CLIENT_PORT [SERVER_LINES] writes zoo.cfg and the command.
zk_member() {
	local dir=$1 port=$2
	local jars=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
	[[ -f /usr/share/java/zookeeper.jar ]] || die "ZooKeeper not installed: run scripts/install.sh zookeeper"
	write_cmd "$dir" zookeeper "$port" TERM \
		java -Xmx256m -Xms32m -XX:+UseSerialGC -Xss512k -Djava.net.preferIPv4Stack=true \
		-Dzookeeper.forceSync=no -Dzookeeper.admin.enableServer=false \
		-Dorg.slf4j.simpleLogger.showDateTime=true \
		-cp "$jars" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
	mkdir -p "$dir/data"
	# tickTime=500 ms: sessions may last 1 s (2 ticks) to 10 s (20 ticks).
	cat >"$dir/zoo.cfg" <<-EOF
		tickTime=500
		initLimit=20
		syncLimit=10
		dataDir=$dir/data
		clientPort=$port
		clientPortAddress=127.0.0.1
		maxClientCnxns=0
		admin.enableServer=false
		4lw.commands.whitelist=srvr,ruok,mntr
		${3:-}
	EOF
}

start_zookeeper() {
	local dir=$STATE/zookeeper p
	get_ports 1
	p=${PORTS[0]}
	echo 1 >"$dir/members"
	zk_member "$dir/1" "$p"
	launch "$dir/1"
	wait_ready "$dir/1"
	{
		env_line BATON_TEST_ZOOKEEPER_URL "zookeeper://127.0.0.1:$p"
		env_line BATON_TEST_ZOOKEEPER_ADDR "127.0.0.1:$p"
	} >"$dir/env"
}

start_zookeeper_ensemble() {
	local dir=$STATE/zookeeper-ensemble i servers="" addrs=""
	get_ports 9
	local -a ports=("${PORTS[@]}")
	echo "1 2 3" >"$dir/members"
	for i in 1 2 3; do
		# server.N=host:quorumPort:electionPort; both bind to 127.0.0.1.
		servers+="server.$i=127.0.0.1:${ports[3 + i - 1]}:${ports[6 + i - 1]}"$'\n'
		addrs+="${addrs:+,}127.0.0.1:${ports[i - 1]}"
	done
	for i in 1 2 3; do
		zk_member "$dir/$i" "${ports[i - 1]}" "$servers"
		echo "$i" >"$dir/$i/data/myid"
		launch "$dir/$i"
	done
	for i in 1 2 3; do
		wait_ready "$dir/$i"
	done
	{
		env_line BATON_TEST_ZOOKEEPER_ENSEMBLE_URL "zookeeper://$addrs"
		env_line BATON_TEST_ZOOKEEPER_ENSEMBLE_ADDRS "$addrs"
	} >"$dir/env"
}

# etcd_member DIR NAME CLIENT_PORT PEER_PORT CLUSTER TOKEN HEARTBEAT ELECTION [FLAG...]
etcd_member() {
	local dir=$1
	write_cmd "$dir" etcd "$3" TERM \
		etcd --name "$2" --data-dir "$dir/data" \
		--listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
		--listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
		--initial-cluster "$5" --initial-cluster-token "$6" --initial-cluster-state new \
		--unsafe-no-fsync --heartbeat-interval "$7" --election-timeout "$8" "${@:9}"
}

start_etcd() {
	local dir=$STATE/etcd c q
	get_ports 2
	c=${PORTS[0]} q=${PORTS[1]}
	echo 1 >"$dir/members"
	etcd_member "$dir/1" n1 "$c" "$q" "n1=http://127.0.0.1:$q" "baton-$c" 10 100 --enable-v2=true
	launch "$dir/1"
	wait_ready "$dir/1"
	{
		env_line BATON_TEST_ETCD_URL "etcd3://127.0.0.1:$c"
		env_line BATON_TEST_ETCD2_URL "etcd://127.0.0.1:$c"
		env_line BATON_TEST_ETCDGW_URL "etcd3+http://127.0.0.1:$c"
		env_line BATON_TEST_ETCD_ADDR "127.0.0.1:$c"
	} >"$dir/env"
}

start_etcd_cluster() {
	local dir=$STATE/etcd-cluster i cluster="" addrs=""
	get_ports 6
	local -a ports=("${PORTS[@]}")
	echo "1 2 3" >"$dir/members"
	for i in 1 2 3; do
		cluster+="${cluster:+,}n$i=http://127.0.0.1:${ports[i + 2]}"
		addrs+="${addrs:+,}127.0.0.1:${ports[i - 1]}"
	done
	for i in 1 2 3; do
		# 50/500 ms: 10/100 makes a 3-member cluster on 2 busy cores
		# change leader now and then.
		etcd_member "$dir/$i" "n$i" "${ports[i - 1]}" "${ports[i + 2]}" "$cluster" "baton-${ports[0]}" 50 500 --enable-v2=true
		launch "$dir/$i"
	done
	for i in 1 2 3; do
		wait_ready "$dir/$i"
	done
	{
		env_line BATON_TEST_ETCD_CLUSTER_URL "etcd3://$addrs"
		env_line BATON_TEST_ETCD2_CLUSTER_URL "etcd://$addrs"
		env_line BATON_TEST_ETCDGW_CLUSTER_URL "etcd3+http://$addrs"
		env_line BATON_TEST_ETCD_CLUSTER_ADDRS "$addrs"
	} >"$dir/env"
}

consul_bin() {
	local bin=${BATON_CACHE:-${HOME:-/root}/.cache/baton}/consul-$CONSUL_VERSION/consul
	[[ -x $bin ]] || die "consul not built: run scripts/install.sh consul"
	printf '%s\n' "$bin"
}

# Consul agents accept sessions down to a 1 s TTL (session_ttl_min) so
# fault tests need not wait for the production minimum of 10 s. ACLs are
# on with an allow-all default: requests without a token work, and an
# unknown token is refused as in production ("ACL not found").
readonly CONSUL_HCL='disable_update_check = true
session_ttl_min = "1s"
acl {
  enabled = true
  default_policy = "allow"
}'

start_consul() {
	local dir=$STATE/consul bin
	bin=$(consul_bin)
	get_ports 6
	local -a p=("${PORTS[@]}")
	echo 1 >"$dir/members"
	write_cmd "$dir/1" consul "${p[0]}" TERM env CHECKPOINT_DISABLE=1 \
		"$bin" agent -dev -node baton -log-level warn \
		-bind 127.0.0.1 -client 127.0.0.1 -advertise 127.0.0.1 \
		-http-port "${p[0]}" -dns-port "${p[1]}" -grpc-port "${p[2]}" -grpc-tls-port -1 \
		-serf-lan-port "${p[3]}" -serf-wan-port "${p[4]}" -server-port "${p[5]}" \
		-hcl "$CONSUL_HCL"
	launch "$dir/1"
	wait_ready "$dir/1"
	{
		env_line BATON_TEST_CONSUL_URL "consul://127.0.0.1:${p[0]}"
		env_line BATON_TEST_CONSUL_ADDR "127.0.0.1:${p[0]}"
		env_line BATON_TEST_CONSUL_BIN "$bin"
	} >"$dir/env"
}

# start_consul_cluster starts three Consul servers (bootstrap-expect 3)
# with their data on disk, joined over serf on loopback. Every port is
# explicit: HTTP, serf LAN and WAN and the server (Raft/RPC) port per
# member; DNS and gRPC are off (-1). raft_multiplier 1 elects a new leader
# in about a second. Each member records its server port in raftport, so
# that consul-cluster:leader can be found from /v1/status/leader.
start_consul_cluster() {
	local dir=$STATE/consul-cluster bin i j join
	bin=$(consul_bin)
	get_ports 12
	local -a p=("${PORTS[@]}")
	echo "1 2 3" >"$dir/members"
	for i in 1 2 3; do
		local -a joins=()
		for j in 1 2 3; do
			((j == i)) || joins+=(-retry-join "127.0.0.1:${p[4 * (j - 1) + 1]}")
		done
		local o=$((4 * (i - 1)))
		write_cmd "$dir/$i" consul "${p[o]}" TERM env CHECKPOINT_DISABLE=1 \
			"$bin" agent -server -bootstrap-expect 3 -node "baton-$i" -log-level warn \
			-data-dir "$dir/$i/data" \
			-bind 127.0.0.1 -client 127.0.0.1 -advertise 127.0.0.1 \
			-http-port "${p[o]}" -dns-port -1 -grpc-port -1 -grpc-tls-port -1 \
			-serf-lan-port "${p[o + 1]}" -serf-wan-port "${p[o + 2]}" -server-port "${p[o + 3]}" \
			"${joins[@]}" \
			-hcl "$CONSUL_HCL" -hcl 'performance { raft_multiplier = 1 }'
		printf '%s\n' "${p[o + 3]}" >"$dir/$i/raftport"
	done
	for i in 1 2 3; do
		launch "$dir/$i"
	done
	for i in 1 2 3; do
		wait_ready "$dir/$i"
	done
	{
		env_line BATON_TEST_CONSUL_CLUSTER_URL "consul://127.0.0.1:${p[0]}"
		env_line BATON_TEST_CONSUL_CLUSTER_ADDRS "127.0.0.1:${p[0]},127.0.0.1:${p[4]},127.0.0.1:${p[8]}"
	} >"$dir/env"
}

# ---------------------------------------------------------------------------
# Commands

canonical() { # NAME -> server name, or die
	case $1 in
	mariadb) echo mysql ;;
	postgres) echo postgresql ;;
	*)
		[[ " ${ALL_SERVERS[*]} " == *" $1 "* ]] || die "unknown server '$1' (known: ${ALL_SERVERS[*]})"
		echo "$1"
		;;
	esac
}

lock_state() {
	mkdir -p "$STATE"
	exec 9>>"$STATE/.lock"
	flock -w 300 9 || die "$STATE is locked by another servers.sh"
}

write_env() {
	local s
	{
		env_line BATON_STATE "$STATE"
		env_line BATON_SERVERS "$SELF"
		for s in "${ALL_SERVERS[@]}"; do
			if [[ -f $STATE/$s/env ]]; then
				cat "$STATE/$s/env"
			fi
		done
	} >"$STATE/env.tmp"
	mv "$STATE/env.tmp" "$STATE/env"
}

cmd_start() {
	local names=() s
	for s in "$@"; do names+=("$(canonical "$s")"); done
	((${#names[@]})) || names=("${ALL_SERVERS[@]}")
	lock_state

	local -A job=()
	local t0=$EPOCHREALTIME
	for s in "${names[@]}"; do
		[[ -z ${job[$s]:-} ]] || continue
		if [[ -f $STATE/$s/env ]]; then
			# Started before: keep its ports and data, and bring back any
			# member a fault test left stopped.
			if server_running "$s"; then
				log "$s already running"
				job[$s]=running
				continue
			fi
			(
				local -a dirs
				mapfile -t dirs < <(members "$s")
				start_members yes "${dirs[@]}"
				log "$s members started again"
			) &
			job[$s]=$!
			continue
		fi
		stop_server "$s" # leftovers of a half-started one
		mkdir -p "$STATE/$s"
		local t=$EPOCHREALTIME
		(
			"start_${s//-/_}"
			log "$s ready in $(elapsed "$t") s"
		) &
		job[$s]=$!
	done

	local failed=()
	for s in "${!job[@]}"; do
		[[ ${job[$s]} == running ]] && continue
		wait "${job[$s]}" || failed+=("$s")
	done
	for s in "${failed[@]}"; do
		stop_server "$s"
	done
	write_env
	log "started in $(elapsed "$t0") s"
	cat "$STATE/env"
	((${#failed[@]} == 0)) || die "failed to start: ${failed[*]}"
}

elapsed() { # EPOCHREALTIME -> seconds since, 2 decimals
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}'
}

stop_server() { # SERVER: stop every member, remove its dir
	local s=$1 d
	[[ -d $STATE/$s ]] || return 0
	local -a dirs=()
	for d in "$STATE/$s"/*/; do
		[[ -f $d/pid ]] && dirs+=("${d%/}")
	done
	((${#dirs[@]} == 0)) || stop_members "${dirs[@]}" || true
	rm -rf "${STATE:?}/$s"
}

cmd_stop() {
	local names=() s
	for s in "$@"; do names+=("$(canonical "$s")"); done
	((${#names[@]})) || names=("${ALL_SERVERS[@]}")
	[[ -d $STATE ]] || return 0
	lock_state
	local -a pids=()
	for s in "${names[@]}"; do
		if [[ -d $STATE/$s ]]; then
			log "stopping $s"
			stop_server "$s" &
			pids+=($!)
		fi
	done
	((${#pids[@]} == 0)) || wait "${pids[@]}" || true

	local left=""
	for s in "${ALL_SERVERS[@]}"; do
		[[ -d $STATE/$s ]] && left=1
	done
	if [[ -n $left ]]; then
		write_env
	else
		# Nothing left: remove what this script made, and the dir if empty.
		rm -f "$STATE/env" "$STATE/env.tmp" "$STATE/.lock"
		rmdir "$STATE" 2>/dev/null || true
	fi
}

cmd_env() {
	[[ -f $STATE/env ]] || die "no servers started (no $STATE/env)"
	cat "$STATE/env"
}

cmd_status() {
	local s d pid st any=""
	for s in "${ALL_SERVERS[@]}"; do
		while IFS= read -r d; do
			any=1
			if pid=$(member_pid "$d"); then
				proc_stat "$pid" || true
				[[ $P_STATE == T ]] && st=paused || st=running
			else
				pid=- st=stopped
			fi
			printf '%-28s %-8s %-8s 127.0.0.1:%s\n' "$(label "$d")" "$pid" "$st" "$(<"$d/port")"
		done < <(members "$s")
	done
	[[ -n $any ]] || log "no servers in $STATE"
}

# zk_mode DIR / etcd_is_leader DIR / consul_is_leader DIR help resolve
# leader and follower.
zk_mode() { tcp_query "$(port_of "$1")" srvr | sed -n 's/^Mode: //p'; }
consul_is_leader() { # DIR -> true or false, by its server port
	local leader
	leader=$(http_get "$(port_of "$1")" /v1/status/leader) || return 1
	[[ $leader == *'"127.0.0.1:'"$(<"$1/raftport")"'"'* ]] && echo true || echo false
}
etcd_is_leader() {
	ETCDCTL_API=3 timeout 3 etcdctl --endpoints "127.0.0.1:$(port_of "$1")" --command-timeout=2s \
		endpoint status 2>/dev/null | awk -F', ' '{print $5}'
}

# redis_master_port prints the master's port as a sentinel sees it.
redis_master_port() {
	local d out
	for d in "$STATE"/redis/sentinel*; do
		member_pid "$d" >/dev/null || continue
		out=$(rcli "$(port_of "$d")" sentinel get-master-addr-by-name mymaster | sed -n 2p)
		[[ -n $out ]] && { printf '%s\n' "$out"; return 0; }
	done
	return 1
}

# resolve TARGET prints the member dirs TARGET names.
resolve() {
	local name=${1%%:*} sel="" s dir d
	[[ $1 == *:* ]] && sel=${1#*:}
	s=$(canonical "$name")
	dir=$STATE/$s
	[[ -f $dir/members ]] || die "$s is not started (in $STATE)"
	local -a all
	mapfile -t all < <(members "$s")
	case $s:$sel in
	redis: | redis:1) echo "$dir/1" ;;
	redis:master | redis:replica)
		local mp
		mp=$(redis_master_port) || die "no sentinel answers"
		for d in "$dir/1" "$dir/2"; do
			if [[ $(port_of "$d") == "$mp" ]]; then
				[[ $sel == master ]] && echo "$d"
			else
				[[ $sel == replica ]] && echo "$d"
			fi
		done
		return 0
		;;
	zookeeper-ensemble: | etcd-cluster: | consul-cluster: | *:all) printf '%s\n' "${all[@]}" ;;
	zookeeper-ensemble:leader | zookeeper-ensemble:follower | etcd-cluster:leader | etcd-cluster:follower | \
		consul-cluster:leader | consul-cluster:follower)
		for d in "${all[@]}"; do
			member_pid "$d" >/dev/null || continue
			if [[ $s == zookeeper-ensemble ]]; then
				[[ $(zk_mode "$d") == "$sel" ]] || continue
			elif [[ $s == consul-cluster ]]; then
				[[ $(consul_is_leader "$d") == "$([[ $sel == leader ]] && echo true || echo false)" ]] || continue
			else
				[[ $(etcd_is_leader "$d") == "$([[ $sel == leader ]] && echo true || echo false)" ]] || continue
			fi
			echo "$d"
			return 0
		done
		die "$s has no running $sel"
		;;
	*:)
		echo "${all[0]}" ;;
	*)
		[[ -d $dir/$sel && " $(<"$dir/members") " == *" $sel "* ]] ||
			die "$s has no member '$sel' (members: $(<"$dir/members"))"
		echo "$dir/$sel"
		;;
	esac
}

# targets TARGET... -> member dirs (deduplicated, in order).
targets() {
	local t d
	local -a ds
	local -A seen=()
	(($#)) || die "no target given"
	for t in "$@"; do
		mapfile -t ds < <(resolve "$t") # resolve dies in its subshell...
		((${#ds[@]})) || exit 1 # ...so stop here when it printed nothing
		for d in "${ds[@]}"; do
			[[ -z ${seen[$d]:-} ]] || continue
			seen[$d]=1
			printf '%s\n' "$d"
		done
	done
}

# stop_members DIR... stops members side by side, except etcd members:
# those go one after another, as a leader stopped together with its
# followers spends seconds trying to hand its leadership over to them.
stop_members() {
	local d
	local -a pids=() etcd=()
	for d in "$@"; do
		if [[ $(<"$d/kind") == etcd ]]; then
			etcd+=("$d")
		else
			stop_member "$d" &
			pids+=($!)
		fi
	done
	if ((${#etcd[@]})); then
		(for d in "${etcd[@]}"; do stop_member "$d"; done) &
		pids+=($!)
	fi
	wait "${pids[@]}"
}

start_members() { # WAIT DIR...: launch the stopped ones, then wait for all
	local wait=$1 d
	shift
	for d in "$@"; do
		if member_pid "$d" >/dev/null; then
			log "$(label "$d") already running"
		else
			launch "$d"
		fi
	done
	[[ $wait == yes ]] || return 0
	local -a pids=()
	for d in "$@"; do
		wait_ready "$d" &
		pids+=($!)
	done
	local rc=0 p
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	return "$rc"
}

cmd_fault() { # COMMAND [--no-wait] TARGET...
	local cmd=$1 wait=yes d
	shift
	if [[ ${1:-} == --no-wait ]]; then
		wait=no
		shift
	fi
	[[ -d $STATE ]] || die "no servers started in $STATE"
	lock_state
	local -a dirs
	mapfile -t dirs < <(targets "$@")
	((${#dirs[@]})) || exit 1
	case $cmd in
	kill) kill_members "${dirs[@]}" ;;
	pause) for d in "${dirs[@]}"; do signal_member "$d" STOP; done ;;
	resume) for d in "${dirs[@]}"; do signal_member "$d" CONT; done ;;
	stop-one) stop_members "${dirs[@]}" ;;
	start-one) start_members "$wait" "${dirs[@]}" ;;
	restart)
		stop_members "${dirs[@]}"
		start_members "$wait" "${dirs[@]}"
		;;
	esac
	for d in "${dirs[@]}"; do
		log "$cmd $(label "$d") (127.0.0.1:$(port_of "$d")) done"
	done
}

cmd_redis_failover() {
	[[ -f $STATE/redis/members ]] || die "redis is not started (in $STATE)"
	local old new sp="" d deadline=$((SECONDS + READY_TIMEOUT)) out
	old=$(redis_master_port) || die "no sentinel answers"
	for d in "$STATE"/redis/sentinel*; do
		member_pid "$d" >/dev/null && sp=$(port_of "$d") && break
	done
	[[ -n $sp ]] || die "no sentinel is running"
	# NOGOODSLAVE / INPROG: the sentinels have not yet settled after a
	# previous failover or restart; try again.
	until out=$(rcli "$sp" sentinel failover mymaster) && [[ $out == OK ]]; do
		((SECONDS < deadline)) || die "SENTINEL FAILOVER: $out"
		sleep 0.1
	done
	# Every running sentinel names the new master, and it says so itself.
	wait_until "$READY_TIMEOUT" "sentinels to switch master" failover_seen "$old" ||
		die "the sentinels did not switch master"
	new=$(redis_master_port)
	wait_until "$READY_TIMEOUT" "127.0.0.1:$new to be master" role_is "$new" master || exit 1
	# The old master, when running, must follow the new one again, so that
	# the next failover has a replica to promote. Sentinel would demote it
	# itself, but only about 10 s later; do now what it would do then.
	if [[ $(rcli "$old" ping) == PONG ]]; then
		if role_is "$old" master; then
			rcli "$old" replicaof 127.0.0.1 "$new" >/dev/null
			rcli "$old" config rewrite >/dev/null
		fi
		wait_until "$READY_TIMEOUT" "127.0.0.1:$old to replicate 127.0.0.1:$new" replicates "$old" "$new" || exit 1
	fi
	log "redis master moved from 127.0.0.1:$old to 127.0.0.1:$new"
	printf '127.0.0.1:%s\n' "$new"
}

failover_seen() { # OLD_PORT
	local d out
	for d in "$STATE"/redis/sentinel*; do
		member_pid "$d" >/dev/null || continue
		out=$(rcli "$(port_of "$d")" sentinel get-master-addr-by-name mymaster | sed -n 2p)
		[[ -n $out && $out != "$1" ]] || return 1
	done
}

main() {
	local cmd=${1:-help}
	(($#)) && shift
	[[ $STATE == /* ]] || STATE=$PWD/$STATE # servers chdir into their dirs
	case $cmd in
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	env) cmd_env ;;
	status) cmd_status ;;
	running) server_running "$(canonical "${1:?running NAME}")" ;;
	started) [[ -f $STATE/$(canonical "${1:?started NAME}")/env ]] ;;
	kill | pause | resume | stop-one | start-one | restart) cmd_fault "$cmd" "$@" ;;
	redis-failover) cmd_redis_failover ;;
	help | -h | --help) usage ;;
	*) usage >&2; exit 2 ;;
	esac
}

main "$@"
