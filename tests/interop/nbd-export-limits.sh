#!/bin/sh
# SPDX-License-Identifier: MIT
# The export's limits against clients that would exhaust the server:
# sixteen connections that each send two 32 MiB READ headers and never
# read their replies must not grow the server's RSS past its memory
# budget (mem-budget=); such stalled clients are cut after
# stall-timeout= and a well-behaved client then gets served;
# max-connections= closes connections beyond it; idle-timeout= closes
# an idle connection.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need python3 nbdinfo
find_nbd_python
PY="$srcdir/tests/interop/nbd-export-limits.py"

wait_hog() {
	i=0
	until grep -q HOGGING "$T/hog.out"; do
		i=$((i + 1))
		[ $i -lt 200 ] || { cat "$T/hog.out"; fail "hog did not start"; }
		sleep 0.1
	done
	sleep 1
}
rss_mb() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$1/status"; }

# a sparse file: reading its holes fills (touches) every buffer
truncate -s 2G "$T/disk.img"

# 1. the default budget (256M per export) bounds sixteen hogs
P=$(free_port)
start_server s "file:$T/disk.img | nbd:listen=127.0.0.1:$P"
before=$(rss_mb "$s_PID")
mkfifo "$T/hold"
python3 "$PY" hog "$P" 16 <"$T/hold" >"$T/hog.out" 2>&1 &
HOG=$!
exec 3>"$T/hold"
wait_hog
sleep 2
after=$(rss_mb "$s_PID")
echo "RSS: $before MB before, $after MB with 16 hogs (1 GiB of reads asked)"
[ "$after" -lt 400 ] || fail "RSS grew to $after MB: the memory budget does not hold"
exec 3>&-
wait $HOG
stop_server "$s_PID"

# 2. a small budget and a short stall-timeout: the hogs are cut, then
# a normal client is served
P=$(free_port)
start_server s -v "file:$T/disk.img | nbd:listen=127.0.0.1:$P,mem-budget=64M,stall-timeout=3"
python3 "$PY" hog "$P" 4 <"$T/hold" >"$T/hog.out" 2>&1 &
HOG=$!
exec 3>"$T/hold"
wait_hog
after=$(rss_mb "$s_PID")
echo "RSS with mem-budget=64M and 4 hogs: $after MB"
[ "$after" -lt 120 ] || fail "RSS $after MB with mem-budget=64M"
[ "$after" -gt 40 ] || fail "RSS $after MB: the hogs did not get their reads"
timeout 20 nbdinfo --size "nbd://127.0.0.1:$P/" >"$T/size" 2>&1 ||
	{ cat "$T/size"; fail "a normal client was not served after the hogs were cut"; }
grep -q "stall-timeout" "$T/s.err" || { cat "$T/s.err"; fail "no stall-timeout message"; }
exec 3>&-
wait $HOG
stop_server "$s_PID"

# 3. max-connections: the 9th and 10th connection are closed at once
P=$(free_port)
start_server s "mem:size=1M | nbd:listen=127.0.0.1:$P,max-connections=8"
n=$(python3 "$PY" conns "$P" 10)
[ "$n" = 8 ] || fail "max-connections=8: $n of 10 connections greeted"
stop_server "$s_PID"

# 4. idle-timeout closes a connection that does nothing
P=$(free_port)
start_server s "mem:size=1M | nbd:listen=127.0.0.1:$P,idle-timeout=1"
"$NBDPY" - "$P" <<'PYEOF' || fail "idle-timeout did not close an idle connection"
import sys, time, nbd
h = nbd.NBD()
h.connect_tcp("127.0.0.1", sys.argv[1])
h.pread(512, 0)
time.sleep(3)
try:
    h.pread(512, 0)
except nbd.Error:
    sys.exit(0)
sys.exit(1)
PYEOF
stop_server "$s_PID"
exit 0
