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

# need_nbd_python: skip unless python3 has libnbd's bindings; sets PY
need_nbd_python() {
	PY=
	for p in /usr/bin/python3 python3; do
		"$p" -c 'import nbd' >/dev/null 2>&1 && { PY=$p; break; }
	done
	[ -n "$PY" ] || skip "python3-libnbd is not installed"
}

# crash_test STATE SHOW [WAIT]: kill -9 of a nexus-pipe serving a mirror
# with state=STATE (and its options) in the middle of writes, one child
# faulted shortly before; then a restart from the record.  SHOW is a
# command that prints the record, WAIT one run between the kill and the
# restart.  Needs need_nbd_python and scratch.
crash_test() {
	images
	A=$IMGDIR/a.img B=$IMGDIR/b.img
	truncate -s 512M "$A" "$B"
	W="$srcdir/tests/mirror/crash-writer.py"
	PL="( file:$A ; file:$B | fault:enable=off ) | mirror:state=$1"

	serve m "$PL,assume-clean=on | nbd:socket=$T/sock"
	"$PY" "$W" write "nbd+unix:///?socket=$T/sock" "$T/acked" 131072 2>"$T/writer.err" &
	WR=$!
	PIDS="$PIDS $WR"
	sleep 0.5
	ctl 3 m fault.enable=on
	wait_log m "child 1: online -> faulted" 10
	sleep 0.5
	kill -0 $WR 2>/dev/null || fail "the writer finished before the crash"
	kill -9 "$m_PID"
	wait "$m_PID" 2>/dev/null
	wait $WR 2>/dev/null
	exec 3>&-
	n=$(wc -l <"$T/acked")
	echo "killed after $n acknowledged writes"
	[ "$n" -gt 100 ] || fail "too few writes before the kill"
	$2 >"$T/record" || fail "cannot read the record"
	cat "$T/record"
	grep -q 'child 0 in-sync' "$T/record" || fail "state: child 0 not in sync"
	grep -q 'child 1 out-of-sync' "$T/record" || fail "state: child 1 in sync"
	${3:-true}

	# restart: no assume-clean, reads preferred from the stale child
	serve r "$PL,rebuild=manual,read-policy=prefer,prefer=1 | nbd:socket=$T/sock2" 4
	"$PY" "$W" check "nbd+unix:///?socket=$T/sock2" "$T/acked" ||
		fail "acknowledged writes are missing after the restart"
	ctl 4 r mirror.child.1=online
	# partial: the regions dirtied after the fault were in the record
	# before the writes that dirtied them were acknowledged
	wait_log r "partial rebuild of child 1 done" 60
	grep "rebuild of child 1 done" "$T/r.err"
	kill -TERM "$r_PID"
	wait "$r_PID" || fail "nexus-pipe exited with $?"
	exec 4>&-
	PIDS=$(echo " $PIDS " | sed "s/ $r_PID / /; s/ $m_PID / /; s/ $WR / /")
	cmp "$A" "$B" || fail "children differ after the rebuild"
	$2 >"$T/record" || fail "cannot read the record"
	grep -q 'child 1 in-sync' "$T/record" || fail "state: child 1 not back"
}

# ---- etcd (mirror-etcd.sh) ----

# need_etcd: skip unless /usr/bin/etcd is installed and the library was
# built with the etcd store
need_etcd() {
	ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
	[ -x "$ETCD_BIN" ] || skip "$ETCD_BIN is not installed (etcd-server)"
	if "$PIPE" --check 'null | mirror:state=etcd://127.0.0.1:1/x' 2>&1 |
		grep -q 'without etcd support'; then
		skip "libnexus was built without etcd support"
	fi
}

# etcd_start: a one-member etcd on free 127.0.0.1 ports, its data in
# $T/etcd.data (kept over restarts), its log in $T/etcd.log.  Sets
# ETCD_PID and ETCD_PORT (the client port; the same after a restart).
etcd_start() {
	[ -n "${ETCD_PORT:-}" ] || ETCD_PORT=$(free_port)
	[ -n "${ETCD_PEER:-}" ] || ETCD_PEER=$(free_port)
	_c=http://127.0.0.1:$ETCD_PORT _p=http://127.0.0.1:$ETCD_PEER
	"$ETCD_BIN" --name nexus-test --data-dir "$T/etcd.data" \
		--listen-client-urls "$_c" --advertise-client-urls "$_c" \
		--listen-peer-urls "$_p" --initial-advertise-peer-urls "$_p" \
		--initial-cluster "nexus-test=$_p" \
		--initial-cluster-state new >>"$T/etcd.log" 2>&1 &
	ETCD_PID=$!
	PIDS="$PIDS $ETCD_PID"
	wait_port "$ETCD_PORT" "$ETCD_PID" ||
		{ tail -20 "$T/etcd.log" >&2; fail "etcd did not start"; }
	# serving once a range answers (the port opens before that)
	for _ in $(seq 100); do
		etcd_get health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	tail -20 "$T/etcd.log" >&2
	fail "etcd does not answer on port $ETCD_PORT"
}

# etcd_stop: kill etcd (its data stays for etcd_start)
etcd_stop() {
	kill "$ETCD_PID" 2>/dev/null
	wait "$ETCD_PID" 2>/dev/null
	ETCD_PID=
}

# etcd_get KEY: print the value of KEY (nothing when absent), through the
# gateway, as libnexus reads it; fails when etcd does not answer
etcd_get() {
	python3 - "$ETCD_PORT" "$1" <<'PYEOF'
import base64, json, sys, urllib.request
req = urllib.request.Request(
    "http://127.0.0.1:%s/v3/kv/range" % sys.argv[1],
    json.dumps({"key": base64.b64encode(sys.argv[2].encode()).decode()}).encode(),
    {"Content-Type": "application/json"})
ans = json.load(urllib.request.urlopen(req, timeout=5))
for kv in ans.get("kvs", []):
    sys.stdout.write(base64.b64decode(kv.get("value", "")).decode())
PYEOF
}

# etcd_del KEY: delete KEY, as an operator would by hand
etcd_del() {
	python3 - "$ETCD_PORT" "$1" <<'PYEOF'
import base64, json, sys, urllib.request
req = urllib.request.Request(
    "http://127.0.0.1:%s/v3/kv/deleterange" % sys.argv[1],
    json.dumps({"key": base64.b64encode(sys.argv[2].encode()).decode()}).encode(),
    {"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()
PYEOF
}

# etcd_wait_free PREFIX [SECONDS]: until PREFIX/owner is gone (its lease
# expired or was revoked)
etcd_wait_free() {
	for _ in $(seq $((${2:-30} * 10))); do
		[ -z "$(etcd_get "$1/owner")" ] && return 0
		sleep 0.1
	done
	fail "$1/owner still held after ${2:-30} s: $(etcd_get "$1/owner")"
}
