#!/bin/sh
# nexus-pipe runs a pipeline until SIGTERM/SIGINT, prints "ready",
# writes and removes its pidfile, applies settings from stdin
# (--control) and stops cleanly (exit 0) with a final status line.
. "${srcdir:-.}/tests/tools/common.sh"

run_and_stop() { # SIGNAL
	: > "$T/out"
	"$PIPE" -q --pidfile "$T/pid" \
		"file:$T/a.img | throttle:iops=1000 | fault:enable=off" \
		> "$T/out" 2> "$T/err" &
	pid=$!
	PIDS="$PIDS $pid"
	wait_ready "$T/out"
	[ "$(cat "$T/pid")" = "$pid" ] || fail "pidfile holds $(cat "$T/pid"), not $pid"
	kill -"$1" "$pid"
	stop_wait "$pid"
	rc=$?
	[ $rc -eq 0 ] || { cat "$T/err"; fail "exit $rc after SIG$1"; }
	[ ! -e "$T/pid" ] || fail "pidfile left behind after SIG$1"
}

truncate -s 64M "$T/a.img"
run_and_stop TERM
run_and_stop INT

# --control: settings from stdin, one reply per line; status line on
start_control c "mem:size=64M | throttle:iops=1000 | fault:enable=off" \
	-s -i 0.1
printf 'throttle.iops=50\nfault.enable=on\nfault.errno=ENOSPC\n' >&3
printf 'throttle.iops=0\nbogus\nnosuch.key=1\nfault.colour=red\n' >&3
wait_lines "$T/c.out" . 8
sleep 0.3
kill -TERM "$c_PID"
stop_wait "$c_PID" || fail "exit $? after SIGTERM with --control"
exec 3>&-
cat > "$T/want" <<'END'
ready
ok
ok
ok
END
head -4 "$T/c.out" | diff -u "$T/want" - || fail "control replies"
tail -n +5 "$T/c.out" > "$T/errs"
[ "$(grep -c '^error: ' "$T/errs")" -eq 4 ] || { cat "$T/c.out"; fail "want 4 errors"; }
grep -q "iops=0" "$T/errs" || fail "no message for iops=0"
grep -q "KEY=VALUE" "$T/errs" || fail "no message for a line without '='"
grep -q "no 'nosuch' stage" "$T/errs" || fail "no message for an unknown stage"
grep -q "no setting 'colour'" "$T/errs" || fail "no message for an unknown key"
# status lines name every stage, top first; a final total
grep -q 'fault .* IOPS .*MB/s .* err | throttle .* | mem ' "$T/c.err" ||
	{ cat "$T/c.err"; fail "no status line"; }
grep -q 'total: fault' "$T/c.err" || fail "no final status"

# a pipeline that cannot open: exit 1, no ready
if timeout 10 "$PIPE" -q "file:$T/missing.img" > "$T/out" 2> "$T/err"; then
	fail "ran with a missing file"
fi
grep -q "missing.img" "$T/err" || fail "message does not name the file"
echo ok
