# Sourced by the tests of nexus-pipe and nexus-copy.  Sets $PIPE, $COPY,
# a scratch directory $T (removed at exit) and helpers.
set -u
top_builddir=${top_builddir:-$(pwd)}
PIPE=$top_builddir/examples/nexus-pipe
COPY=$top_builddir/examples/nexus-copy
for p in "$PIPE" "$COPY"; do
	[ -x "$p" ] || { echo "missing $p (run from the build directory)"; exit 1; }
done
. "${srcdir:-.}/tests/scratch.sh"
scratch tools

# has_driver KIND NAME: the driver is registered (built in or plugin)
has_driver() { "$PIPE" --list | grep -q "^$1 $2\\( \\|\$\\)"; }

# allocated bytes of a file (holes excluded)
allocated() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# wait_ready FILE: until the nexus-pipe writing to FILE printed "ready"
wait_ready() {
	for _ in $(seq 1 100); do
		grep -q '^ready' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$1" >&2
	fail "nexus-pipe did not get ready"
}

# gone_within PID TENTHS: true once PID has exited, false if it still
# runs after TENTHS tenths of a second
gone_within() {
	for _ in $(seq 1 "$2"); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	! kill -0 "$1" 2>/dev/null
}

# stop_wait PID: wait (at most 10 s) for PID to exit; its exit status
stop_wait() {
	if ! gone_within "$1" 100; then
		kill -9 "$1"
		fail "process $1 did not stop"
	fi
	wait "$1"
}

# start_pipe NAME PIPELINE [OPTIONS...]: run nexus-pipe in the
# background until it is ready; $NAME_PID, and $NAME_ADDR (the first
# address it listens on); output in $T/NAME.out and $T/NAME.err.
start_pipe() {
	_n=$1
	_p=$2
	shift 2
	"$PIPE" "$@" "$_p" > "$T/$_n.out" 2> "$T/$_n.err" &
	_pid=$!
	PIDS="$PIDS $_pid"
	for _ in $(seq 1 100); do
		grep -q '^ready' "$T/$_n.out" 2>/dev/null && break
		kill -0 "$_pid" 2>/dev/null ||
			{ cat "$T/$_n.err" >&2; fail "nexus-pipe $_n exited"; }
		sleep 0.1
	done
	grep -q '^ready' "$T/$_n.out" || fail "nexus-pipe $_n: not ready after 10 s"
	eval "${_n}_PID=$_pid"
	eval "${_n}_ADDR=\$(sed -n 's/^listening on //p' \"\$T/\$_n.out\" | head -n1)"
}

# start_control NAME PIPELINE [OPTIONS...]: run nexus-pipe --control in
# the background until it is ready, its settings read from the FIFO
# $T/NAME.ctl that fd 3 writes to (close it with `exec 3>&-` once the
# process stopped); $NAME_PID; output in $T/NAME.out and $T/NAME.err.
start_control() {
	_n=$1
	_p=$2
	shift 2
	mkfifo "$T/$_n.ctl"
	"$PIPE" -C "$@" "$_p" < "$T/$_n.ctl" > "$T/$_n.out" 2> "$T/$_n.err" &
	_pid=$!
	PIDS="$PIDS $_pid"
	exec 3> "$T/$_n.ctl"
	wait_ready "$T/$_n.out"
	eval "${_n}_PID=$_pid"
}

# wait_lines FILE PATTERN COUNT: until COUNT lines of FILE match PATTERN
# (at most 5 s; the caller checks what it got)
wait_lines() {
	for _ in $(seq 1 50); do
		[ "$(grep -c "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 0
}
