#!/bin/bash
# The nbd source against qemu-nbd: TCP and Unix sockets, a named export,
# an unknown export name, block status on a sparse raw file, a read-only
# export and a killed server.
. "${srcdir:-.}/tests/interop/nbd-client-lib.sh"
require qemu-nbd python3 timeout
QN="qemu-nbd -f raw -t"

img=$tmp/disk.img
truncate -s 64M $img
P=$(free_port)
bg $QN -p $P --bind 127.0.0.1 $img; wait_for $P
run rw "nbd://127.0.0.1:$P/"
run close "nbd://127.0.0.1:$P/"
stop $last

newsock
bg $QN -k $S -x disk $img; wait_for $S
run rw "nbd+unix:///disk?socket=$S"
run noexport "nbd+unix:///no-such-export?socket=$S"
stop $last

rm -f $img; truncate -s 64M $img
newsock
bg $QN -k $S $img; wait_for $S
run bs "nbd+unix:///?socket=$S"
stop $last

newsock
bg $QN -r -k $S $img; wait_for $S
run ro "nbd+unix:///?socket=$S"
stop $last

newsock
bg $QN -k $S $img; wait_for $S
run kill "nbd+unix:///?socket=$S" $last
stop $last
finish
