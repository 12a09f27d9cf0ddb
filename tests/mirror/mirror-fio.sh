#!/bin/sh
# SPDX-License-Identifier: MIT
# fio with verify=crc32c through ( file ; file ) | mirror | nbd while the
# fault transform fails one child mid-run: no error reaches fio; the
# child is rebuilt while fio writes again; the children end
# byte-identical and a second verify pass succeeds.
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
need_fio_nbd
scratch mirror-fio
images
A=$IMGDIR/a.img B=$IMGDIR/b.img
truncate -s 64M "$A" "$B"
serve m "( file:$A | fault:enable=off,ops=write ; file:$B ) | mirror:state=$T/state,assume-clean=on | nbd:socket=$T/sock"
U="nbd+unix:///?socket=$T/sock"

run_fio() {
	timeout 300 fio --output="$T/fio.out" --ioengine=nbd --uri="$U" \
		--name=mirror --verify=crc32c --verify_fatal=1 \
		--verify_state_save=0 --exitall_on_error=1 "$@" ||
		{ cat "$T/fio.out"; fail "fio $*"; }
	grep -q 'err= *0' "$T/fio.out" || { cat "$T/fio.out"; fail "fio errors"; }
}
# 1.5 GiB of random writes over 48 MiB, verified as they go (backlog)
# and at the end: a write phase of some seconds
JOB="--rw=randwrite --bsrange=4k-64k --iodepth=16 --size=48m --io_size=1536m
--verify_backlog=512 --randrepeat=1"

# child 0 fails every write from about a second into the run (the
# writes, not fio's verify reads: the rebuild must have data to copy)
run_fio $JOB --do_verify=1 &
FIO=$!
sleep 0.5
kill -0 $FIO 2>/dev/null || fail "fio finished before the fault"
ctl 3 m fault.enable=on
wait_log m "child 0: online -> faulted (io-error" 10
kill -0 $FIO 2>/dev/null || fail "fio finished before the fault fired"
wait $FIO || fail "fio failed while a child faulted"
grep -q 'child 1 in-sync' "$T/state" || fail "state: child 1 not in sync"
grep -q 'child 0 out-of-sync' "$T/state" || fail "state: child 0 still in sync"

# back online: rebuilt while fio writes (the same pattern, verified)
ctl 3 m fault.enable=off
ctl 3 m mirror.rate=64M
run_fio $JOB --do_verify=1 &
FIO=$!
ctl 3 m mirror.child.0=online
wait_log m "rebuild of child 0 done" 120
wait $FIO || fail "fio failed during the rebuild"
grep -q 'child 0 in-sync' "$T/state" || fail "state: child 0 not back"
cmp "$A" "$B" || fail "children differ after the rebuild"

# a second verify pass, reading only
run_fio --rw=randwrite --bsrange=4k-64k --size=48m --io_size=1536m \
	--randrepeat=1 --iodepth=16 --verify_only=1
kill -TERM "$m_PID"
wait "$m_PID" || fail "nexus-pipe exited with $?"
PIDS=
cmp "$A" "$B" || fail "children differ at the end"
grep "rebuild of child" "$T/m.err"
grep -q "partial rebuild of child 0 done: [1-9][0-9]* bytes copied" "$T/m.err" ||
	fail "the rebuild copied nothing: the fault missed fio's writes"
echo "OK: fault mid-run, rebuild under load, children identical"
