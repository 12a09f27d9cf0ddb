#!/bin/sh
# SPDX-License-Identifier: MIT
# Bad input from raw sockets (see nbd-export-bad.py); afterwards no
# connection is left behind and the server exits cleanly.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need python3

P=$(free_port)
start_server s \
	"mem:size=1M | nbd:listen=127.0.0.1:$P,name=vol,handshake-timeout=2" \
	-e "nbd:listen=127.0.0.1:$P,name=ro,readonly=on"
timeout 180 python3 "$srcdir/tests/interop/nbd-export-bad.py" "$P" ||
	fail "bad input checks"
# every connection of the test is gone
i=0
while :; do
	kill -USR1 "$s_PID"
	wait_line "$T/s.out" '^CONNS' $((i + 1))
	[ "$(grep '^CONNS' "$T/s.out" | tail -n1)" = "CONNS 0" ] && break
	i=$((i + 1))
	[ $i -lt 50 ] || { cat "$T/s.out"; fail "connections left behind"; }
	sleep 0.2
done
stop_server "$s_PID"
exit 0
