#!/bin/sh
# SPDX-License-Identifier: MIT
# A child that hangs (a fault delay of 5 s, longer than timeout-ms=500)
# while fio writes and verifies through NBD: the child is faulted about
# half a second after it stopped answering, fio sees no error and no
# request waits anywhere near 5 s; once the hung requests are back the
# child is rebuilt and the children end byte-identical.
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
need_fio_nbd
scratch mirror-hang
images
A=$IMGDIR/a.img B=$IMGDIR/b.img
truncate -s 64M "$A" "$B"
serve m "( file:$A ; file:$B | fault:enable=off,delay=5s ) | mirror:assume-clean=on,timeout-ms=500 | nbd:socket=$T/sock"

timeout 300 fio --output="$T/fio.out" --ioengine=nbd \
	--uri="nbd+unix:///?socket=$T/sock" --name=hang --verify=crc32c \
	--verify_fatal=1 --verify_state_save=0 --exitall_on_error=1 \
	--rw=randwrite --bsrange=4k-64k --iodepth=16 --size=48m \
	--io_size=1024m --verify_backlog=512 --do_verify=1 --randrepeat=1 \
	--output-format=json+ &
FIO=$!
sleep 0.5
kill -0 $FIO 2>/dev/null || fail "fio finished before the hang"
t0=$(date +%s%N)
ctl 3 m fault.enable=on
wait_log m "child 1: online -> faulted (timeout" 10
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "hung child faulted after $ms ms"
[ "$ms" -lt 1500 ] || fail "the hung child was faulted after $ms ms"
wait $FIO || { cat "$T/fio.out"; fail "fio failed with a hung child"; }
# the slowest request fio saw, in ms (clat max, nanoseconds in json):
# one of those the hung child held, answered after the timeout
max=$("$(command -v python3)" -c 'import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print(int(max(j[d]["clat_ns"]["max"] for d in ("read", "write")) / 1e6))' \
	"$T/fio.out")
echo "slowest request: $max ms"
[ "$max" -ge 450 ] || fail "no request waited for the timeout ($max ms)"
[ "$max" -lt 2500 ] || fail "a request waited $max ms for the hung child"

# back once its hung requests returned (EBUSY until then: retry)
ctl 3 m fault.enable=off
for i in $(seq 100); do
	echo mirror.child.1=online >&3
	sleep 0.2
	tail -n1 "$T/m.out" | grep -q '^ok' && break
done
tail -n1 "$T/m.out" | grep -q '^ok' || fail "child 1 could not come back"
wait_log m "rebuild of child 1 done" 60
kill -TERM "$m_PID"
wait "$m_PID" || fail "nexus-pipe exited with $?"
PIDS=
cmp "$A" "$B" || fail "children differ after the rebuild"
echo "OK: hung child faulted in time, I/O went on, rebuilt"
