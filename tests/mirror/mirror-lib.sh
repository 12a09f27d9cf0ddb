# SPDX-License-Identifier: MIT
# Shared by the mirror shell tests (sourced from the build directory, as
# make check runs them): scratch directory, nexus-pipe serving a
# pipeline with a control FIFO, waits.
: "${srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$srcdir/tests/scratch.sh"
PIPE=${PIPE:-./examples/nexus-pipe}
[ -x "$PIPE" ] || fail "$PIPE not built"

# images on tmpfs when there is one (fast, and no disk wear)
images() {
	IMGDIR=$T
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		IMGDIR=$(mktemp -d /dev/shm/nexus-mirror.XXXXXX)
		trap 'scratch_cleanup; rm -rf "$IMGDIR"' EXIT
	fi
}

# serve NAME PIPELINE: nexus-pipe in the background, control lines from
# fd 3 (ctl NAME LINE), its stdout in $T/NAME.out, its log in
# $T/NAME.err; waits for "ready".  Sets NAME_PID.
serve() {
	rm -f "$T/$1.ctl"
	mkfifo "$T/$1.ctl"
	"$PIPE" -C -v -q -r 2 "$2" <"$T/$1.ctl" >"$T/$1.out" 2>"$T/$1.err" &
	eval "$1_PID=$!"
	PIDS="$PIDS $!"
	eval "exec ${3:-3}>\"\$T/\$1.ctl\""
	for _ in $(seq 300); do
		grep -q '^ready' "$T/$1.out" 2>/dev/null && return 0
		kill -0 "$(eval echo \$$1_PID)" 2>/dev/null ||
			{ cat "$T/$1.err" >&2; fail "nexus-pipe $1 did not start"; }
		sleep 0.1
	done
	fail "nexus-pipe $1: not ready after 30 s"
}

# ctl FD LINE: send a control line, wait for its answer (the Nth ok)
ctl() {
	_n=$(grep -c '^ok\|^error' "$T/$2.out")
	echo "$3" >&"$1"
	for _ in $(seq 300); do
		[ "$(grep -c '^ok\|^error' "$T/$2.out")" -gt "$_n" ] && break
		sleep 0.1
	done
	tail -n1 "$T/$2.out" | grep -q '^ok' ||
		{ tail -n3 "$T/$2.out" >&2; fail "control '$3' refused"; }
}

# wait_log NAME PATTERN [SECONDS]: until NAME's log has PATTERN
wait_log() {
	for _ in $(seq $((${3:-60} * 10))); do
		grep -q "$2" "$T/$1.err" && return 0
		sleep 0.1
	done
	cat "$T/$1.err" >&2
	fail "no '$2' in the log of $1"
}

# need_fio_nbd: skip unless fio with its nbd engine is installed
need_fio_nbd() {
	need fio # cmp: diffutils, Essential in Debian
	fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"
}
