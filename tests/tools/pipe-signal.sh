#!/bin/sh
# nexus-pipe stops cleanly on SIGTERM or SIGINT, and exits at once on a
# second one even while the stop waits for I/O that does not finish (a
# read held 60 s by a fault delay).
. "${srcdir:-.}/tests/tools/common.sh"
has_driver export nbd || skip "no nbd export driver"
need qemu-io

for sig in TERM INT; do
	start_pipe p "mem:1M | fault:ops=read,delay=60s | nbd:socket=$T/s" -q
	# a client whose read is held by the delay
	qemu-io -f raw -r -c 'read 0 512' "nbd+unix:///?socket=$T/s" \
		> /dev/null 2>&1 &
	client=$!
	PIDS="$PIDS $client"
	sleep 1
	kill -"$sig" "$p_PID"
	sleep 1
	kill -0 "$p_PID" 2>/dev/null ||
		fail "SIG$sig: exited before its stop finished (test is moot)"
	kill -"$sig" "$p_PID"
	if ! gone_within "$p_PID" 20; then
		kill -9 "$p_PID"
		fail "SIG$sig: still running 2 s after a second signal"
	fi
	wait "$p_PID"
	st=$?
	[ "$st" -ne 0 ] || fail "SIG$sig twice: exit status 0 for a cut stop"
	grep -q 'second signal' "$T/p.err" ||
		{ cat "$T/p.err"; fail "SIG$sig twice: no message"; }
	kill "$client" 2>/dev/null
	wait "$client" 2>/dev/null
	rm -f "$T/s"
done

# one signal and nothing in flight: a clean stop, exit 0
start_pipe q "mem:1M | nbd:socket=$T/s" -q
kill -TERM "$q_PID"
stop_wait "$q_PID" || fail "clean stop exited $?"
echo ok
