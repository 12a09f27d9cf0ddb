#!/bin/sh
# crypt:key-file= reads the file, whatever stat() says of its size: a
# file of /proc has st_size 0 but holds bytes.
. "${srcdir:-.}/tests/tools/common.sh"
has_driver transform crypt || skip "no crypt transform"
"$PIPE" -q 'mem:1M | crypt:key-file=/proc/self/status' > /dev/null \
	2> "$T/err" && fail "a key file of the wrong length was accepted"
grep -q 'has 0 bytes' "$T/err" && { cat "$T/err"; fail "trusted st_size"; }
grep -q 'status has [1-9][0-9]* bytes: key-size=512 needs exactly 64' "$T/err" ||
	{ cat "$T/err"; fail "no length message"; }
# a key of the right length from a file whose size stat() cannot tell
# (a pipe): read and used
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(1, 65)))' |
	"$PIPE" -q 'mem:1M | crypt:key-file=/dev/stdin' > "$T/out" 2> "$T/err" &
pid=$!
PIDS="$PIDS $pid"
wait_ready "$T/out"
kill -TERM "$pid"
stop_wait "$pid" || { cat "$T/err"; fail "exited $?"; }
echo ok
