#!/bin/sh
# SPDX-License-Identifier: MIT
# A remote replica: ( file ; nbd+unix://... ) | mirror, the nbd child a
# second nexus-pipe process.  Killed with -9 while fio writes: the child
# is faulted, fio sees no error, the record names the local child only.
# The mirror is then restarted with the replica back: it rebuilds the
# replica over NBD, partially (the record kept the regions it missed),
# the replica ends byte-identical, and fio's verify pass reads every
# block back.
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
need_fio_nbd
scratch mirror-remote
images
A=$IMGDIR/a.img R=$IMGDIR/remote.img
truncate -s 64M "$A" "$R"
serve r "file:$R | nbd:socket=$T/r.sock" 4
PL="( file:$A ; nbd+unix:///?socket=$T/r.sock ) | mirror:state=$T/state"
serve m "$PL,assume-clean=on,timeout-ms=2000 | nbd:socket=$T/m.sock"

run_fio() {
	timeout 300 fio --output="$T/fio.out" --ioengine=nbd \
		--uri="nbd+unix:///?socket=$T/m.sock" --name=remote \
		--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--exitall_on_error=1 --rw=randwrite --bsrange=4k-64k \
		--iodepth=16 --size=48m --io_size=1024m --randrepeat=1 "$@" ||
		{ cat "$T/fio.out"; fail "fio $*"; }
	grep -q 'err= *0' "$T/fio.out" || { cat "$T/fio.out"; fail "fio errors"; }
}
run_fio --verify_backlog=512 --do_verify=1 &
FIO=$!
sleep 0.5
kill -0 $FIO 2>/dev/null || fail "fio finished before the replica died"
kill -9 "$r_PID"
wait "$r_PID" 2>/dev/null
exec 4>&-
wait_log m "child 1: online -> faulted" 10
kill -0 $FIO 2>/dev/null || fail "fio finished before the fault"
wait $FIO || fail "fio failed when the replica died"
grep -q 'child 1 out-of-sync' "$T/state" || fail "state: replica in sync"
kill -TERM "$m_PID"
wait "$m_PID" || fail "nexus-pipe exited with $?"
exec 3>&-
PIDS=

# both back: the record makes the replica a rebuild target
rm -f "$T/r.sock" "$T/m.sock"
serve r "file:$R | nbd:socket=$T/r.sock" 4
serve m "$PL | nbd:socket=$T/m.sock"
wait_log m "partial rebuild of child 1 done" 120
grep -q 'child 1 in-sync' "$T/state" || fail "state: replica not back"
run_fio --verify_only=1
kill -TERM "$m_PID"
wait "$m_PID" || fail "nexus-pipe exited with $?"
kill -TERM "$r_PID"
wait "$r_PID" || fail "the replica's nexus-pipe exited with $?"
PIDS=
cmp "$A" "$R" || fail "the replica differs after the rebuild"
echo "OK: replica killed, faulted, partially rebuilt over NBD"
