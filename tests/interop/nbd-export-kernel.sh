#!/bin/sh
# SPDX-License-Identifier: MIT
# The Linux kernel's NBD client against the export: a VM (vmclient)
# attaches /dev/nbd0 with two connections (the export says
# CAN_MULTI_CONN) and runs fio with crc32c verification on it, then
# makes a filesystem and reads a file back.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
. "$srcdir/tests/vmclient.sh"
vmclient_find || skip "vmclient (../shared/tools/vmclient) not available"
need qemu-system-x86_64

truncate -s 256M "$T/disk.img"
start_server s "file:$T/disk.img | nbd:listen=127.0.0.1:0,name=vol"
cat >"$T/guest.sh" <<EOF2
set -x
nbd-client 10.0.2.2 $s_PORT /dev/nbd0 -N vol -b 4096 -C 2 || nbd-client 10.0.2.2 $s_PORT /dev/nbd0 -N vol -b 4096 || exit 10
[ "\$(blockdev --getsize64 /dev/nbd0)" = 268435456 ] || exit 11
fio --name=k --filename=/dev/nbd0 --rw=randwrite --bs=4k --size=16m \
    --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c \
    --verify_fatal=1 --do_verify=1 || exit 12
fio --name=s --filename=/dev/nbd0 --rw=write --bs=1m --size=32m --offset=64m \
    --ioengine=libaio --iodepth=4 --direct=1 --verify=crc32c \
    --verify_fatal=1 --do_verify=1 || exit 13
blkdiscard -o 128M -l 16M /dev/nbd0 || exit 14
dd if=/dev/nbd0 of=/tmp/z bs=1M skip=128 count=16 iflag=direct || exit 15
cmp /tmp/z /dev/zero 2>&1 | grep -q EOF || exit 16
sync
nbd-client -d /dev/nbd0 || exit 17
exit 0
EOF2
timeout 900 "$VMCLIENT_RUN" "$T/guest.sh" 800 >"$T/vm.out" 2>&1
[ "$(vmclient_rc "$T/vm.out")" = 0 ] || { tail -n 60 "$T/vm.out"; fail "kernel client"; }
stop_server "$s_PID"
exit 0
