#!/bin/sh
# SPDX-License-Identifier: MIT
# qemu-img (info, convert, compare) and qemu-io (write -P / read -P,
# write -z, discard, flush, FUA writes) against `file | nbd`.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need qemu-img qemu-io

truncate -s 64M "$T/disk.img"
start_server s "file:$T/disk.img | nbd:listen=127.0.0.1:0,name=vol"
U="nbd://127.0.0.1:$s_PORT/vol"

timeout 30 qemu-img info "$U" >"$T/info" || fail "qemu-img info"
grep -q 'virtual size: 64 MiB (67108864 bytes)' "$T/info" ||
	{ cat "$T/info"; fail "qemu-img info: wrong size"; }

# patterns, zeroes, discard, flush; qemu-io fails on a pattern mismatch
timeout 60 qemu-io -f raw \
	-c "write -P 0xa5 0 1M" -c "write -P 0x5a 1M 64k" -c "write -f -P 0x11 2M 4k" \
	-c "read -P 0xa5 0 1M" -c "read -P 0x5a 1M 64k" -c "read -P 0x11 2M 4k" \
	-c "write -z 4k 8k" -c "read -P 0 4k 8k" -c "read -P 0xa5 0 4k" \
	-c "write -z -u 64k 64k" -c "read -P 0 64k 64k" \
	-c "discard 512k 256k" -c "read -P 0 512k 256k" \
	-c "flush" -c "aio_write -P 0x77 8M 512k" -c "aio_write -P 0x78 9M 512k" \
	-c "aio_flush" -c "read -P 0x77 8M 512k" -c "read -P 0x78 9M 512k" \
	"$U" >"$T/io" 2>&1 || { cat "$T/io"; fail "qemu-io"; }
grep -qi 'pattern verification failed\|error' "$T/io" && { cat "$T/io"; fail "qemu-io reported errors"; }

# the bytes really reached the file
cmp -s -n 4096 "$T/disk.img" /dev/zero && fail "file not written"
od -An -tx1 -j $((2*1024*1024)) -N 4 "$T/disk.img" | grep -q '11 11 11 11' ||
	fail "FUA write not in the file"

# convert in and out, compare
head -c 3M /dev/urandom >"$T/src.img"
truncate -s 64M "$T/src.img"
timeout 60 qemu-img convert -n -f raw -O raw "$T/src.img" "$U" || fail "convert to nbd"
timeout 60 qemu-img compare -f raw -F raw "$T/src.img" "$U" || fail "compare after convert"
timeout 60 qemu-img convert -f raw -O raw "$U" "$T/back.img" || fail "convert from nbd"
cmp "$T/src.img" "$T/back.img" || fail "round trip differs"
timeout 60 qemu-img compare -f raw -F raw "$T/disk.img" "$U" || fail "file vs export"

stop_server "$s_PID"
exit 0
