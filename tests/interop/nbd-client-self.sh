#!/bin/bash
# The nbd source against libnexus's own NBD export (examples/nexus-pipe
# serving `mem | nbd` and `file | nbd`): reads and writes, TCP with
# several connections, block status of mem and of a sparse file, a
# read-only export, an unknown export name, close with I/O in flight and
# a killed server.
. "${srcdir:-.}/tests/interop/nbd-client-lib.sh"
require python3 timeout

newsock; serve "mem:size=64M | nbd:socket=$S,name=disk"
run rw "nbd+unix:///disk?socket=$S"
run close "nbd+unix:///disk?socket=$S"
run noexport "nbd+unix:///no-such-export?socket=$S"
stop $last

newsock; serve "mem:size=64M | nbd:socket=$S"
run bs "nbd+unix:///?socket=$S"
stop $last

truncate -s 64M $tmp/sparse.img
newsock; serve "file:$tmp/sparse.img | nbd:socket=$S"
run bs "nbd+unix:///?socket=$S"
stop $last

P=$(free_port)
serve "mem:size=64M | nbd:listen=127.0.0.1:$P"
run rw "nbd:nbd://127.0.0.1:$P/,connections=2"
stop $last

newsock; serve "mem:size=64M | nbd:socket=$S,readonly=on"
run ro "nbd+unix:///?socket=$S"
stop $last

newsock; serve "mem:size=64M | nbd:socket=$S"
run kill "nbd+unix:///?socket=$S" $last
stop $last
finish
