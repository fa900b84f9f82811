#!/usr/bin/env bash
# with-servers.sh — run a command with real backend servers around it.
#
# Usage: scripts/with-servers.sh [--servers "NAME..."] [--no-install] -- CMD [ARG...]
#
# Installs what the servers need (scripts/install.sh), starts them
# (scripts/servers.sh start), exports their BATON_TEST_* variables,
# BATON_STATE and BATON_SERVERS, runs CMD, and always stops the servers it
# started (on exit, INT or TERM). Exits with CMD's exit status.
#
# Without BATON_STATE in the environment the servers are private to this
# run (a fresh state dir under /tmp), so runs side by side on one machine
# do not share, or stop, each other's servers. With BATON_STATE set (e.g.
# after `eval "$(scripts/servers.sh start)"`), servers already started
# there are used (members found stopped are started again) and left
# running; only missing ones are started and then stopped.
#
#   --servers "NAME..."  servers to run (default: all; BATON_TEST_SERVERS
#                        sets the default too). Names as in servers.sh:
#                        redis memcached memcached-small mysql postgresql
#                        zookeeper zookeeper-ensemble etcd etcd-cluster consul consul-cluster
#   --no-install         skip install.sh (BATON_NO_INSTALL=1 does too)
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPTS_DIR
readonly SERVERS=$SCRIPTS_DIR/servers.sh

# shellcheck disable=SC2317 # used from the EXIT trap
log() { printf 'with-servers: %s\n' "$*" >&2; }

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

servers=${BATON_TEST_SERVERS:-}
install=yes
[[ ${BATON_NO_INSTALL:-} == 1 ]] && install=no
while (($#)); do
	case $1 in
	--servers) servers=${2?--servers needs a value}; shift 2 ;;
	--servers=*) servers=${1#*=}; shift ;;
	--no-install) install=no; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) usage >&2; exit 2 ;;
	esac
done
(($#)) || { usage >&2; exit 2; }

read -ra names <<<"$servers"
if ((${#names[@]} == 0)); then
	names=(redis memcached memcached-small mysql postgresql zookeeper zookeeper-ensemble etcd etcd-cluster consul consul-cluster)
fi

if [[ $install == yes ]]; then
	"$SCRIPTS_DIR/install.sh" "${names[@]}"
fi

started=()
child=""
private=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	if ((${#started[@]})); then
		"$SERVERS" stop "${started[@]}" || log "stopping servers failed"
	fi
	if [[ -n $private ]]; then
		rmdir "$BATON_STATE" 2>/dev/null || true # servers.sh removed its files
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${BATON_STATE:-} ]]; then
	BATON_STATE=$(mktemp -d "${TMPDIR:-/tmp}/baton-servers.XXXXXX")
	private=1
	chmod 755 "$BATON_STATE" # mysql and postgres run as their own users
fi
export BATON_STATE

# Start only what is not started yet, and stop only that afterwards.
for n in "${names[@]}"; do
	"$SERVERS" started "$n" 2>/dev/null || started+=("$n")
done

"$SERVERS" start "${names[@]}" >/dev/null
# shellcheck source=/dev/null # written by servers.sh start
source "$BATON_STATE/env"

# CMD runs in the background so that a TERM sent to this script is handled
# at once (bash runs traps only between foreground commands); without job
# control a background command would ignore INT and read /dev/null, hence
# the trap reset and the explicit stdin.
(
	trap - INT QUIT
	exec "$@"
) <&0 &
child=$!
rc=0
wait "$child" || rc=$?
child=""
exit "$rc"
