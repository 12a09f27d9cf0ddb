# SPDX-License-Identifier: MIT
# Sourced by the shell tests (tools, plugins staging, nbd-export):
# fail/skip/need, free_port/wait_port, and `scratch NAME`: a scratch directory $T
# ($TMPDIR/nexus-NAME.XXXXXX) removed at exit, after the background
# processes listed in $PIDS are killed and reaped.

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

# need TOOL...: skip the test when a tool is not installed
need() {
	for _t in "$@"; do
		command -v "$_t" >/dev/null 2>&1 || skip "$_t not installed"
	done
}

# free_port: a TCP port free on 127.0.0.1 right now
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_port PORT [PID]: until 127.0.0.1:PORT accepts (30 s at most);
# fails at once when PID is given and has exited
wait_port() {
	for _ in $(seq 300); do
		[ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 1
		python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

scratch() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/nexus-$1.XXXXXX") ||
		fail "cannot make a scratch directory"
	PIDS=
	trap scratch_cleanup EXIT
}

scratch_cleanup() {
	for _p in $PIDS; do kill "$_p" 2>/dev/null; done
	for _p in $PIDS; do wait "$_p" 2>/dev/null; done
	rm -rf "$T"
}
