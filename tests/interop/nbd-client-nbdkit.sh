#!/bin/bash
# The nbd source against nbdkit (memory plugin and filters): reads and
# writes, many requests in flight, multi-conn over TCP, IPv6, simple
# replies (--no-sr), oldstyle and non-fixed newstyle servers, block
# status, read-only exports, unknown export names, server errors, a
# stalled server (io-timeout), a killed server and close with I/O in
# flight.
. "${srcdir:-.}/tests/interop/nbd-client-lib.sh"
require nbdkit python3 timeout
NK="nbdkit -f --exit-with-parent"

newsock
bg $NK -U $S memory 64M; wait_for $S
run rw "nbd+unix:///?socket=$S"
run close "nbd+unix:///?socket=$S"
stop $last

newsock
bg $NK -U $S memory 64M; wait_for $S
run bs "nbd+unix:///?socket=$S"
stop $last

P=$(free_port)
bg $NK -i 127.0.0.1 -p $P memory 64M; wait_for $P
run rw "nbd:nbd://127.0.0.1:$P/,connections=2"
run rw "nbd://127.0.0.1:$P?connections=0"
run ro "nbd:nbd://127.0.0.1:$P,readonly=on"
stop $last

if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	P=$(free_port)
	bg $NK -i ::1 -p $P memory 64M; sleep 0.5
	run close "nbd://[::1]:$P/"
	stop $last
fi

newsock
bg $NK --no-sr -U $S memory 64M; wait_for $S
run rw "nbd+unix:///?socket=$S"
stop $last

newsock
bg $NK -o -U $S memory 64M; wait_for $S
# nbdkit 1.32 advertises flush/FUA/zero on oldstyle but refuses them
run basic "nbd+unix:///?socket=$S"
stop $last

newsock
bg $NK --mask-handshake=0 -U $S memory 64M; wait_for $S
run close "nbd+unix:///?socket=$S"
stop $last

newsock
bg $NK -r -U $S memory 64M; wait_for $S
run ro "nbd+unix:///?socket=$S"
stop $last

newsock
bg $NK -U $S --filter=exportname memory 64M exportname=disk exportname-strict=true
wait_for $S
run noexport "nbd+unix:///no-such-export?socket=$S"
run close "nbd+unix:///disk?socket=$S"
stop $last

newsock
bg $NK -U $S --filter=error memory 64M \
	error-pwrite=ENOSPC error-pwrite-rate=100% error-pwrite-file=$tmp/trigger \
	error-pread=EIO error-pread-rate=100% error-pread-file=$tmp/trigger
wait_for $S
run errors "nbd+unix:///?socket=$S" $tmp/trigger
stop $last

newsock
bg $NK -U $S --filter=delay memory 64M delay-read=20; wait_for $S
run stall "nbd:nbd+unix:///?socket=$S,io-timeout=1"
stop $last

newsock
bg $NK -U $S memory 64M; wait_for $S
run kill "nbd+unix:///?socket=$S" $last
stop $last
finish
