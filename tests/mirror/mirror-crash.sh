#!/bin/sh
# SPDX-License-Identifier: MIT
# kill -9 of a nexus-pipe serving a mirror in the middle of writes, one
# child faulted shortly before: after a restart the state record names
# only the child that got every write, reads come from it even when
# another child is preferred, every write acknowledged before the kill
# is there, and the other child is rebuilt to the same bytes, copying
# only the regions written after the fault.
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
# cmp: diffutils, an Essential package of Debian
PY=
for p in /usr/bin/python3 python3; do
	"$p" -c 'import nbd' >/dev/null 2>&1 && { PY=$p; break; }
done
[ -n "$PY" ] || skip "python3-libnbd is not installed"
scratch mirror-crash
images
A=$IMGDIR/a.img B=$IMGDIR/b.img
truncate -s 512M "$A" "$B"
W="$srcdir/tests/mirror/crash-writer.py"
PL="( file:$A ; file:$B | fault:enable=off ) | mirror:state=$T/state"

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
cat "$T/state"
grep -q 'child 0 in-sync' "$T/state" || fail "state: child 0 not in sync"
grep -q 'child 1 out-of-sync' "$T/state" || fail "state: child 1 in sync"

# restart: no assume-clean, reads preferred from the stale child
serve r "$PL,rebuild=manual,read-policy=prefer,prefer=1 | nbd:socket=$T/sock2" 4
"$PY" "$W" check "nbd+unix:///?socket=$T/sock2" "$T/acked" ||
	fail "acknowledged writes are missing after the restart"
ctl 4 r mirror.child.1=online
# partial: the regions dirtied after the fault were in the record before
# the writes that dirtied them were acknowledged
wait_log r "partial rebuild of child 1 done" 60
grep "rebuild of child 1 done" "$T/r.err"
kill -TERM "$r_PID"
wait "$r_PID" || fail "nexus-pipe exited with $?"
PIDS=
cmp "$A" "$B" || fail "children differ after the rebuild"
grep -q 'child 1 in-sync' "$T/state" || fail "state: child 1 not back"
echo "OK: crash, restart from the in-sync child, rebuild"
