#!/bin/sh
# SPDX-License-Identifier: MIT
# nbdsh / libnbd: every command and option, error codes (see the .py).
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need nbdsh
find_nbd_python

truncate -s 64M "$T/disk.img"
P=$(free_port)
start_server s \
	"file:$T/disk.img | nbd:listen=127.0.0.1:$P,name=vol,description=test volume" \
	-e "nbd:listen=127.0.0.1:$P,name=vol-ro,readonly=on" \
	"mem:size=1M | nbd:listen=127.0.0.1:$P,name=tiny"
timeout 120 "$NBDPY" "$srcdir/tests/interop/nbd-export-nbdsh.py" "$P" "$T/disk.img" ||
	fail "libnbd checks"
# nbdsh itself, as a user would run it
# nbdsh runs "python3 -mnbd": put the python that has libnbd first
PATH=$(dirname "$NBDPY"):$PATH timeout 30 nbdsh -u "nbd://127.0.0.1:$P/vol" -c '
h.pwrite(b"\x99" * 512, 512)
assert h.pread(512, 512) == b"\x99" * 512
assert h.get_size() == 64 << 20
' || fail "nbdsh -c"
stop_server "$s_PID"
exit 0
