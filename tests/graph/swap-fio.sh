#!/bin/bash
# fio verify through an NBD export of `mem | tee` while children are
# attached and detached all the time (tests/graph/swap-serve.c): every
# block fio wrote reads back right, also after the original child was
# replaced by a copy; the churn really ran.
. "${srcdir:-.}/tests/interop/nbd-client-lib.sh"
require fio timeout
fio --enghelp=nbd >/dev/null 2>&1 || { echo "SKIP: fio without nbd"; exit 77; }
SERVE=./tests/graph/swap-serve
PLUGINS=./tests/graph/.libs
newsock
mkfifo $tmp/in
$SERVE $PLUGINS $S < $tmp/in > $tmp/out 2> $tmp/err &
pid=$!
pids="$pids $pid"
exec 3> $tmp/in
for i in $(seq 100); do
	grep -q '^ready' $tmp/out && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
grep -q '^ready' $tmp/out || { cat $tmp/err; echo "FAIL: swap-serve"; exit 1; }
U="nbd+unix:///?socket=$S"

job() { # fio with verification; extra arguments appended
	timeout 300 fio --output=$tmp/fio.out --ioengine=nbd --uri="$U" \
		--name=swap --rw=randwrite --bs=4k --iodepth=32 --size=32m \
		--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--exitall_on_error=1 "$@" ||
		{ cat $tmp/fio.out $tmp/err; echo "FAIL: fio $*"; exit 1; }
	grep -q 'err= *0' $tmp/fio.out ||
		{ cat $tmp/fio.out; echo "FAIL: fio errors"; exit 1; }
}

job --do_verify=1		# write and verify, children churning
echo swap >&3
for i in $(seq 300); do grep -q '^swapped' $tmp/out && break; sleep 0.1; done
grep -q '^swapped' $tmp/out || { cat $tmp/err; echo "FAIL: no swap"; exit 1; }
job --verify_only=1		# what was written survived the swap
job --do_verify=1 --bs=64k	# and the new child takes writes
exec 3>&-
wait $pid; rc=$?
cat $tmp/out $tmp/err
[ $rc = 0 ] || { echo "FAIL: swap-serve exit $rc"; exit 1; }
read -r _ att det bad < <(grep '^churn' $tmp/out)
if [ "${att:-0}" -lt 10 ] || [ "$att" != "$det" ]; then
	echo "FAIL: churn attached ${att:-?} detached ${det:-?}"
	exit 1
fi
echo "ok: $att children attached and detached under fio"
