#!/usr/bin/env bash
# install.sh — install the backend servers baton's tests run against.
#
# Usage: scripts/install.sh [backend...]
#
# Backends: redis memcached mariadb postgresql zookeeper etcd consul
# (no argument = all). Server names from servers.sh are accepted too:
# mysql = mariadb, zookeeper-ensemble = zookeeper, etcd-cluster = etcd,
# consul-cluster = consul.
#
# Also: tooz — not a server and never part of "all": Debian's tooz (Python)
# and its drivers' client libraries, for the side-by-side benchmarks of
# bench/ and the mixed-fleet tests of compat=tooz (internal/tooztest's
# peer), run by /usr/bin/python3.
#
# Idempotent and quick when everything is present: apt-get (and its
# `update`) runs only when a binary is missing. Consul is not packaged by
# Debian; it is built once from its Go module v1.16.3 (MPL-2.0; never a
# later one: 1.16.6+ and 1.17+ are under the BSL) and cached
# in ${BATON_CACHE:-$HOME/.cache/baton}/consul-1.16.3/consul.
#
# Installing a Debian package must not start a system service (which could
# listen beyond loopback): when /usr/sbin/policy-rc.d is absent, one that
# refuses every start is put in place for the duration of apt-get.
set -euo pipefail

readonly ALL_BACKENDS=(redis memcached mariadb postgresql zookeeper etcd consul)
readonly CONSUL_VERSION=1.16.3

# tooz (bench/ and the compat=tooz tests): Debian's packages, checked with dpkg, not by binary.
# python3-consul2, not python3-consul: tooz's consul driver requires python-consul2 (with
# python3-consul's Session.create, which takes no token, tooz's start fails with TypeError);
# the two conflict, so installing python3-consul2 removes python3-consul.
readonly TOOZ_PACKAGES=(python3-tooz python3-kazoo python3-redis python3-pymemcache python3-etcd3gw
	python3-pymysql python3-psycopg2 python3-consul2 python3-sysv-ipc)
have_deb() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

log() { printf 'install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

have_cmd() { command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /usr/bin/$1 ]]; }

# consul_bin prints where the cached consul binary lives.
consul_bin() {
	printf '%s/consul-%s/consul\n' "${BATON_CACHE:-${HOME:-/root}/.cache/baton}" "$CONSUL_VERSION"
}

# missing_packages BACKEND prints the Debian packages BACKEND still needs,
# one a line, nothing when all its binaries are present.
missing_packages() {
	case $1 in
	redis)
		have_cmd redis-server || echo redis-server
		have_cmd redis-sentinel || echo redis-sentinel
		have_cmd redis-cli || echo redis-tools
		;;
	memcached)
		have_cmd memcached || echo memcached
		;;
	mariadb)
		{ have_cmd mariadbd && have_cmd mariadb-install-db; } || echo mariadb-server
		{ have_cmd mariadb && have_cmd mariadb-admin; } || echo mariadb-client
		;;
	postgresql)
		local bins=(/usr/lib/postgresql/*/bin/postgres)
		{ [[ -x ${bins[-1]} ]] && have_cmd psql; } || echo postgresql
		;;
	zookeeper)
		have_cmd java || echo default-jre-headless
		[[ -f /usr/share/java/zookeeper.jar ]] || echo zookeeper
		[[ -f /usr/share/java/slf4j-simple.jar ]] || echo libslf4j-java
		;;
	etcd)
		have_cmd etcd || echo etcd-server
		have_cmd etcdctl || echo etcd-client
		;;
	consul)
		# Built from source below; needs only Go.
		;;
	tooz)
		local p
		for p in "${TOOZ_PACKAGES[@]}"; do
			have_deb "$p" || echo "$p"
		done
		;;
	*) die "unknown backend '$1' (known: ${ALL_BACKENDS[*]})" ;;
	esac
}

apt_install() {
	local added_policy=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		added_policy=1
	fi
	local rc=0 try
	for try in 1 2 3; do
		rc=0
		log "apt-get update"
		apt-get -o DPkg::Lock::Timeout=300 update -qq &&
			log "apt-get install $*" &&
			apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null ||
			rc=$?
		((rc != 0 && try < 3)) || break
		log "apt-get failed (exit $rc); trying again"
		sleep 5
	done
	if [[ -n $added_policy ]]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	return "$rc"
}

# consul_is_ok BIN: BIN runs and is consul v1.16.3. (Not `consul version |
# grep -q`: grep quits at the match, consul dies of SIGPIPE and pipefail
# fails the check.)
consul_is_ok() {
	local out
	[[ -x $1 ]] && out=$("$1" version 2>/dev/null) && [[ $out == "Consul v$CONSUL_VERSION"$'\n'* ]]
}

# build_consul builds consul v1.16.3 from its Go module into the cache,
# unless a working binary of that version is already there.
build_consul() {
	local bin
	bin=$(consul_bin)
	if consul_is_ok "$bin"; then
		return 0
	fi
	local go
	go=$(command -v go || echo /usr/local/go/bin/go)
	[[ -x $go ]] || die "consul: Go is needed to build consul v$CONSUL_VERSION"

	local start=$SECONDS tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/baton-consul-build.XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now, while it is set
	trap "rm -rf '$tmp'" EXIT
	log "building consul v$CONSUL_VERSION from its Go module (about 3 min cold)"
	(
		cd "$tmp"
		export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
		# The consul module's own go.mod and go.sum pin the versions its
		# release was built with. `go install consul@v1.16.3` refuses it
		# because that go.mod has replace directives (to its in-repo
		# submodules), so build it from a module of our own that requires
		# consul, copies its requirements (not the replaces) and exclude
		# lines, and starts from its go.sum.
		local moddir
		moddir=$("$go" mod download -json "github.com/hashicorp/consul@v$CONSUL_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[[ -f $moddir/go.mod && -f $moddir/go.sum ]] ||
			die "consul: go mod download gave no module directory"
		{
			printf 'module baton.invalid/consul-build\n\ngo 1.20\n\n'
			printf 'require github.com/hashicorp/consul v%s\n\n' "$CONSUL_VERSION"
			# go-msgpack v1.1.5 has breaking changes; v1.1.6 is the same code.
			printf 'exclude (\n\tgithub.com/hashicorp/go-msgpack v1.1.5\n\tgithub.com/hashicorp/go-msgpack v1.1.6\n)\n\n'
			# consul's require blocks, verbatim.
			awk '/^require[[:space:]]*\(/ {p = 1} p {print} p && /^\)/ {p = 0; print ""}' "$moddir/go.mod"
		} >go.mod
		cp "$moddir/go.sum" go.sum
		chmod u+w go.sum
		# envoyextensions is required at a version the checksum database
		# does not know.
		GONOSUMDB=github.com/hashicorp/consul/envoyextensions \
			"$go" build -trimpath -ldflags=-s -o consul "github.com/hashicorp/consul"
		consul_is_ok ./consul || die "consul: the built binary is not v$CONSUL_VERSION"
		mkdir -p "$(dirname "$bin")"
		mv consul "$bin.tmp"
		mv "$bin.tmp" "$bin"
	)
	rm -rf "$tmp"
	trap - EXIT
	log "consul v$CONSUL_VERSION built in $((SECONDS - start)) s: $bin"
}

main() {
	local backends=() arg
	for arg in "$@"; do
		case $arg in
		-h | --help) usage; exit 0 ;;
		mysql) backends+=(mariadb) ;;
		postgres) backends+=(postgresql) ;;
		zookeeper-ensemble) backends+=(zookeeper) ;;
		memcached-small) backends+=(memcached) ;;
		etcd-cluster) backends+=(etcd) ;;
		consul-cluster) backends+=(consul) ;;
		tooz) backends+=(tooz) ;;
		*)
			[[ " ${ALL_BACKENDS[*]} " == *" $arg "* ]] ||
				die "unknown backend '$arg' (known: ${ALL_BACKENDS[*]})"
			backends+=("$arg")
			;;
		esac
	done
	if ((${#backends[@]} == 0)); then
		backends=("${ALL_BACKENDS[@]}")
	fi

	local pkgs=() b p want_consul=""
	for b in "${backends[@]}"; do
		[[ $b == consul ]] && want_consul=1
		while IFS= read -r p; do
			[[ -n $p && " ${pkgs[*]} " != *" $p "* ]] && pkgs+=("$p")
		done < <(missing_packages "$b")
	done

	if ((${#pkgs[@]} > 0)); then
		((EUID == 0)) || die "packages missing (${pkgs[*]}) and not root"
		export DEBIAN_FRONTEND=noninteractive
		local t0=$SECONDS
		apt_install "${pkgs[@]}"
		log "apt-get done in $((SECONDS - t0)) s"
		# Check again: a package that installed but did not bring the
		# binary we look for is a bug here, better caught now.
		for b in "${backends[@]}"; do
			[[ -z $(missing_packages "$b") ]] || die "$b: still missing $(missing_packages "$b" | tr '\n' ' ')"
		done
	fi
	if [[ -n $want_consul ]]; then
		build_consul
	fi
}

main "$@"
