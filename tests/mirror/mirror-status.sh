#!/bin/sh
# SPDX-License-Identifier: MIT
# nexus-pipe's status line shows a mirror's rebuild while it runs (kind,
# child, percent of the total, rate, ETA) and drops it once the rebuild
# is done.
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
scratch mirror-status
images
A=$IMGDIR/a.img B=$IMGDIR/b.img
head -c 32M /dev/urandom >"$A"
truncate -s 32M "$B"
"$PIPE" -s -i 0.2 -r 2 -v \
	"( file:$A ; file:$B ) | mirror:source=0,rate=8M | nbd:socket=$T/sock" \
	>"$T/out" 2>"$T/err" &
PID=$!
PIDS="$PIDS $PID"
seen=
for _ in $(seq 200); do
	if tr '\r' '\n' <"$T/err" |
		grep -Eq '\[full rebuild of child 1: [0-9]+% of 33\.6 MB, [0-9.]+ MB/s, ETA [0-9?]+ s\]'; then
		seen=1
		break
	fi
	sleep 0.1
done
[ -n "$seen" ] || { tr '\r' '\n' <"$T/err" | tail -5; fail "no rebuild progress on the status line"; }

for _ in $(seq 300); do
	grep -q "rebuild of child 1 done" "$T/err" && break
	sleep 0.1
done
grep -q "rebuild of child 1 done" "$T/err" || fail "the rebuild did not finish"
sleep 0.5
last=$(tr '\r' '\n' <"$T/err" | grep 'IOPS' | tail -1)
case $last in
*rebuild*) fail "the status line still shows a rebuild: $last" ;;
esac
cmp "$A" "$B" || fail "the children differ after the rebuild"
echo "status line: $(tr '\r' '\n' <"$T/err" | grep -m1 'rebuild of child 1:')"
