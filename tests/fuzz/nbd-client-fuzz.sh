#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer harness of the NBD source (client): the reply
# path and the handshake, fed by a malicious server (see
# nbd-client-fuzz.c), and run it for a bounded time (NBD_FUZZ_TIME
# seconds, default 20).  Skipped when clang cannot build libFuzzer
# programs.
. "$(dirname "$0")/fuzz-lib.sh"
S=$srcdir/lib/sources

command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
fuzz_build nbd-client-fuzz -DNBDC_SMALL_BUFFERS -I"$S" \
	"$srcdir/tests/fuzz/nbd-client-fuzz.c" "$S/nbd-conn.c" \
	"$S/nbd-reply.c" "$S/nbd-handshake.c" "$srcdir/lib/proto/nbd.c" \
	-I"$srcdir/lib/core" "$srcdir/lib/core/tcp.c"
# seeds: well-formed server streams for the requests the input declares
python3 - "$T/corpus" <<'PY'
import os, struct, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
def cookie(i): return (1 << 16) | i
def req(t, ln, iov=1): return bytes([t]) + struct.pack(">H", ln - 1) + bytes([iov - 1])
def chunk(c, flags, typ, p=b""): return struct.pack(">IHHQI", 0x668e33ef, flags, typ, c, len(p)) + p
def simple(c, err=0): return struct.pack(">IIQ", 0x67446698, err, c)
seeds = {
 "read-structured": bytes([0x03]) + req(0, 4096) +
     chunk(cookie(0), 1, 1, struct.pack(">Q", 0) + b"x" * 4096),
 "read-simple": bytes([0x00]) + req(0, 4096, 2) + simple(cookie(0)) + b"y" * 4096,
 "read-big-simple": bytes([0x00]) + req(0, 65536) + simple(cookie(0)) + b"z" * 65536,
 "mixed": bytes([0x03 | 3 << 2]) + req(0, 8192, 3) + req(2, 512) + req(5, 4096) + req(4, 4096) +
     chunk(cookie(1), 1, 0) +
     chunk(cookie(0), 0, 2, struct.pack(">QI", 0, 4096)) +
     chunk(cookie(2), 1, 5, struct.pack(">III", 1, 4096, 3)) +
     chunk(cookie(0), 1, 1, struct.pack(">Q", 4096) + b"d" * 4096) +
     chunk(cookie(3), 1, 0x8001, struct.pack(">IH", 5, 4) + b"oops"),
 "error-offset": bytes([0x01]) + req(0, 4096) +
     chunk(cookie(0), 1, 0x8002, struct.pack(">IH", 5, 0) + struct.pack(">Q", 100)),
}
hs = struct.pack(">QQH", 0x4e42444d41474943, 0x49484156454f5054, 3)
rep = lambda o, t, p=b"": struct.pack(">QIII", 0x3e889045565a9, o, t, len(p)) + p
seeds["hs-go"] = b"\xff" + hs + rep(8, 1) + rep(10, 4, struct.pack(">I", 1) + b"base:allocation") + \
    rep(10, 1) + rep(7, 3, struct.pack(">HQH", 0, 1 << 20, 0x1ed)) + \
    rep(7, 3, struct.pack(">HIII", 3, 512, 4096, 1 << 25)) + rep(7, 1)
seeds["hs-export-name"] = b"\xff" + struct.pack(">QQH", 0x4e42444d41474943, 0x49484156454f5054, 2) + \
    struct.pack(">QH", 1 << 20, 1)
seeds["hs-oldstyle"] = b"\xff" + struct.pack(">QQQI", 0x4e42444d41474943, 0x00420281861253, 1 << 20, 1) + bytes(124)
seeds["hs-unsup"] = b"\xff" + hs + rep(8, 0x80000001) + rep(7, 0x80000001) + struct.pack(">QH", 1 << 20, 1)
for k, v in seeds.items():
    open(os.path.join(d, k), "wb").write(v)
PY
fuzz_run 80000
exit 0
