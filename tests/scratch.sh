# SPDX-License-Identifier: MIT
# Sourced by the shell tests (tools, plugins staging, nbd-export):
# fail/skip/need, and `scratch NAME`: a scratch directory $T
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
