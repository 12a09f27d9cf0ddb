# SPDX-License-Identifier: MIT
# Shared by the nbd-export-*.sh tests (sourced).  Run from the build
# directory (make check does); $srcdir is the source directory.

: "${srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
SERVE=${SERVE:-./tests/interop/nbd-serve}
. "$srcdir/tests/scratch.sh"
scratch nbd-export

# A python3 with libnbd's bindings (python3-libnbd installs them for the
# system python, which may not be first in PATH).
find_nbd_python() {
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import nbd' >/dev/null 2>&1; then
			NBDPY=$p
			return 0
		fi
	done
	skip "python3-libnbd is not installed"
}

# start_server NAME ARGS...: run nbd-serve in the background; wait for
# READY; $NAME_PORT / the file $T/NAME.out hold the first TCP port and
# its output.  Sets LAST_PID.
start_server() {
	name=$1
	shift
	[ -x "$SERVE" ] || fail "$SERVE not built"
	"$SERVE" "$@" >"$T/$name.out" 2>"$T/$name.err" &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
	i=0
	while ! grep -q '^READY' "$T/$name.out" 2>/dev/null; do
		if ! kill -0 "$LAST_PID" 2>/dev/null; then
			cat "$T/$name.err" >&2
			fail "server $name did not start"
		fi
		i=$((i + 1))
		[ $i -lt 200 ] || fail "server $name: no READY after 20 s"
		sleep 0.1
	done
	port=$(sed -n 's/^LISTEN .*:\([0-9][0-9]*\)$/\1/p' "$T/$name.out" |
	       head -n1)
	eval "${name}_PORT=\$port"
	eval "${name}_PID=\$LAST_PID"
}

# stop_server PID: SIGTERM and wait (bounded); fails if it crashed.
stop_server() {
	kill -TERM "$1" 2>/dev/null || fail "server $1 is not running"
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 300 ] || { kill -9 "$1"; fail "server $1 hung at exit"; }
		sleep 0.1
	done
	wait "$1" || { st=$?; cat "$T"/*.err >&2; fail "server $1 exited with status $st"; }
	PIDS=$(echo "$PIDS" | sed "s/ $1\b//")
}

# wait_line FILE PATTERN [COUNT]: wait until FILE has COUNT lines
# matching PATTERN (default 1), at most 20 s.
wait_line() {
	want=${3:-1}
	i=0
	while [ "$(grep -c "$2" "$1" 2>/dev/null)" -lt "$want" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || fail "no '$2' in $1 after 20 s"
		sleep 0.1
	done
}

