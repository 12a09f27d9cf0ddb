#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer harness of the NVMe/TCP PDU codec with clang and
# run it for a bounded time (NBD_FUZZ_TIME seconds, default 20), from
# seeds of valid PDU streams.  Skipped when clang cannot build libFuzzer
# programs.
. "$(dirname "$0")/fuzz-lib.sh"

fuzz_build nvme-tcp-fuzz -I. -include config.h \
	"$srcdir/tests/fuzz/nvme-tcp-fuzz.c" "$srcdir/lib/proto/nvme-tcp.c" \
	"$srcdir/lib/proto/crc32c.c" -lpthread
mkdir -p "$T/corpus"
python3 - "$T/corpus" <<'PY' || exit 1
import struct, sys
d = sys.argv[1]
def ch(t, flags, hlen, pdo, plen):
    return struct.pack("<BBBBI", t, flags, hlen, pdo, plen)
icreq = ch(0, 0, 128, 0, 128) + struct.pack("<HBBI", 0, 0, 3, 15) + bytes(112)
cmd = ch(4, 0, 72, 0, 72) + bytes(64)
cmd_data = ch(4, 0, 72, 72, 72 + 512) + bytes(64) + b"x" * 512
h2c = ch(6, 4, 24, 24, 24 + 4096) + bytes(16) + b"y" * 4096
term = ch(2, 0, 24, 0, 24 + 8) + bytes(16) + b"z" * 8
seeds = {"host": b"\x01" + icreq + cmd + cmd_data + h2c,
         "host-connected": b"\x03" + cmd + h2c + term,
         "controller": b"\x00" + ch(1, 0, 128, 0, 128) + bytes(120)
                       + ch(5, 0, 24, 0, 24) + bytes(16)}
for name, s in seeds.items():
    open("%s/%s" % (d, name), "wb").write(s)
PY
fuzz_run 16384
exit 0
