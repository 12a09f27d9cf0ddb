#!/bin/sh
# SPDX-License-Identifier: MIT
# fio's nbd engine with verify=crc32c: random and sequential writes with
# many requests in flight, several connections at once, then reads
# that verify every block.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio has no nbd engine"

# on tmpfs when there is one: the file source then reads and writes
# small blocks inline, large ones through io_uring
IMG=$T/disk.img
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	IMG=$(mktemp /dev/shm/nbd-export-fio.XXXXXX)
	trap 'scratch_cleanup; rm -f "$IMG"' EXIT
fi
truncate -s 128M "$IMG"
start_server s "file:$IMG | nbd:listen=127.0.0.1:0"
U="nbd://127.0.0.1:$s_PORT/"

run_fio() {
	timeout 300 fio --output="$T/fio.out" --ioengine=nbd --uri="$U" \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--exitall_on_error=1 "$@" ||
		{ cat "$T/fio.out"; fail "fio $*"; }
	grep -q 'err= *0' "$T/fio.out" || { cat "$T/fio.out"; fail "fio errors"; }
}
# 4k random writes, 32 in flight, then verify
run_fio --name=rw4k --rw=randwrite --bs=4k --iodepth=32 --size=32m
# mixed block sizes, 4 connections on different ranges
run_fio --name=mix --rw=randwrite --bsrange=4k-256k --iodepth=8 \
	--numjobs=4 --size=16m --offset_increment=24m
# large sequential writes at QD 4 (1 MiB .. 4 MiB payloads)
run_fio --name=seq --rw=write --bsrange=1m-4m --iodepth=4 --size=48m \
	--offset=64m
# verify again from a fresh connection, reading only
timeout 300 fio --output="$T/fio.out" --ioengine=nbd --uri="$U" \
	--name=rw4k --rw=randwrite --bs=4k --iodepth=32 --size=32m \
	--verify=crc32c --verify_only=1 --verify_fatal=1 --verify_state_save=0 ||
	{ cat "$T/fio.out"; fail "fio verify_only"; }
stop_server "$s_PID"
exit 0
