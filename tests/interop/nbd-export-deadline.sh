#!/bin/sh
# SPDX-License-Identifier: MIT
# A stop with a deadline: a client's READ is stuck in the device (a
# fault: delay of 12 s); stopping the export returns after stop-timeout
# (2 s here) instead of waiting for the device, the client's connection
# is closed (its READ fails), and the late completion is dropped
# without harm (the process exits cleanly afterwards).
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need python3
find_nbd_python

truncate -s 16M "$T/disk.img"
P=$(free_port)
# reads from 1 MiB on take 12 s; the first MiB answers at once
# (SIGUSR2 makes nbd-serve destroy its -e exports)
start_server s -v "file:$T/disk.img | fault:delay=12s,ops=read,start=1M | nbd:socket=$T/sock" \
	-e "nbd:listen=127.0.0.1:$P,stop-grace=1,stop-timeout=2"

"$NBDPY" - "$P" "$T/sent" >"$T/client.out" 2>&1 <<'PY' &
import sys, nbd
h = nbd.NBD()
h.connect_tcp("127.0.0.1", sys.argv[1])
h.pread(4096, 0)
cookie = h.aio_pread(nbd.Buffer(4096), 8 << 20)
open(sys.argv[2], "w").close()
try:
    while not h.aio_command_completed(cookie):
        h.poll(-1)
    print("READ-COMPLETED")
except nbd.Error as e:
    print("READ-FAILED", e)
PY
CLIENT=$!
i=0
until [ -e "$T/sent" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$T/client.out"; fail "client did not start"; }
	sleep 0.1
done
sleep 0.5
t0=$(date +%s)
kill -USR2 "$s_PID"
i=0
until grep -q '^STOPPED' "$T/s.out"; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$T/s.err"; fail "stop did not return within 10 s (stop-timeout=2)"; }
	sleep 0.1
done
t1=$(date +%s)
[ $((t1 - t0)) -le 6 ] || fail "stop took $((t1 - t0)) s with stop-timeout=2"
wait $CLIENT
grep -q READ-FAILED "$T/client.out" || { cat "$T/client.out" "$T/s.err"; fail "the stuck READ was answered"; }
# the abandoned READ completes in the device later: no crash, clean exit
sleep 1
stop_server "$s_PID"
exit 0
