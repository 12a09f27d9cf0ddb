# SPDX-License-Identifier: MIT
# Every command and option of the NBD export through libnbd (the library
# behind nbdsh), with the error codes the protocol prescribes.
#   nbd-export-nbdsh.py PORT IMAGE
# The server exports IMAGE (64 MiB) as "vol" and "vol-ro" (readonly=on)
# on 127.0.0.1:PORT and 1 MiB of mem as "tiny".
import errno
import os
import sys

import nbd

sys.dont_write_bytecode = True  # checks.py is in the source tree
from checks import check, finish  # noqa: E402

PORT = sys.argv[1]
IMAGE = sys.argv[2]
SIZE = 64 << 20


def expect_err(fn, code, what):
    try:
        fn()
    except nbd.Error as e:
        check(e.errnum == code, "%s: errno %s (%s), want %s" %
              (what, e.errnum, e.string, errno.errorcode[code]))
        return
    check(False, "%s: succeeded, want %s" % (what, errno.errorcode[code]))


def connect(name, meta=True, structured=True, strict=True):
    h = nbd.NBD()
    h.set_export_name(name)
    h.set_request_structured_replies(structured)
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict:
        h.set_strict_mode(0)
    h.connect_tcp("127.0.0.1", PORT)
    return h


def extents(h, count, offset, flags=0):
    out = []

    def cb(metacontext, off, entries, err):
        check(metacontext == nbd.CONTEXT_BASE_ALLOCATION, "context name")
        out.extend(zip(entries[0::2], entries[1::2]))
        return 0
    h.block_status(count, offset, cb, flags)
    return out


# ---- option haggling ----
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_tcp("127.0.0.1", PORT)
names = []
h.opt_list(lambda n, d: names.append((n, d)) or 0)
check(sorted(n for n, d in names) == ["tiny", "vol", "vol-ro"],
      "NBD_OPT_LIST: %r" % names)
check(("vol", "test volume") in names, "LIST description: %r" % names)
ctxs = []
h.set_export_name("vol")
h.opt_list_meta_context(lambda c: ctxs.append(c) or 0)
check(ctxs == ["base:allocation"], "LIST_META_CONTEXT: %r" % ctxs)
h.set_export_name("nosuch")
expect_err(h.opt_info, errno.ENOENT, "NBD_OPT_INFO of an unknown export")
h.set_full_info(True)
h.set_export_name("vol")
h.opt_info()
check(h.get_size() == SIZE, "INFO size")
check(h.get_export_description() == "test volume", "INFO description")
check(h.get_canonical_export_name() == "vol", "INFO name")
check(h.get_block_size(nbd.SIZE_MINIMUM) == 512, "min block size")
check(h.get_block_size(nbd.SIZE_PREFERRED) == 4096, "preferred block size")
check(h.get_block_size(nbd.SIZE_MAXIMUM) == 32 << 20, "max payload")
h.opt_abort()
del h

# GO with a name, then every flag the export should have
h = connect("vol")
check(h.get_protocol() == "newstyle-fixed", "protocol")
check(h.get_structured_replies_negotiated(), "structured replies")
for f in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero",
          "can_df", "can_multi_conn"):
    check(getattr(h, f)(), f)
check(not h.can_cache() and not h.is_read_only(), "cache / read-only")
check(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation")

# ---- commands ----
data = os.urandom(1 << 20)
h.pwrite(data, 0)
check(h.pread(len(data), 0) == data, "WRITE then READ")
h.pwrite(b"\x42" * 4096, 12 << 20, nbd.CMD_FLAG_FUA)
check(h.pread(4096, 12 << 20) == b"\x42" * 4096, "WRITE+FUA")
chunks = []
got = h.pread_structured(65536, 0, lambda sub, off, st, err:
                         chunks.append((off, len(sub), st)) or 0,
                         nbd.CMD_FLAG_DF)
check(got == data[:65536] and chunks == [(0, 65536, nbd.READ_DATA)],
      "READ with DF: one chunk %r" % chunks)
h.flush()
# the bytes are in the file
with open(IMAGE, "rb") as f:
    check(f.read(4096) == data[:4096], "data in the image file")
# large I/O: the maximum payload in one request
big = os.urandom(32 << 20)
h.pwrite(big, SIZE - len(big))
check(h.pread(len(big), SIZE - len(big)) == big, "32 MiB WRITE/READ at the end")

# many requests in flight, completed out of order
bufs = []
for i in range(64):
    off = (i * 37 % 64) * 65536 + (2 << 20)
    payload = bytes([i]) * 65536
    h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(payload)), off)
while h.aio_in_flight() > 0:
    h.poll(-1)
cookies = []
for i in range(64):
    off = (i * 37 % 64) * 65536 + (2 << 20)
    b = nbd.Buffer(65536)
    cookies.append((h.aio_pread(b, off), b, i))
while h.aio_in_flight() > 0:
    h.poll(-1)
for c, b, i in cookies:
    check(h.aio_command_completed(c), "aio read %d completed" % i)
    check(b.to_bytearray() == bytes([i]) * 65536, "aio read %d data" % i)

# TRIM: the file gets a hole, reads back as zeroes
h.trim(1 << 20, 4 << 20)
ext = extents(h, 1 << 20, 4 << 20)
check(ext and ext[0][1] & nbd.STATE_HOLE, "TRIM leaves a hole: %r" % ext)
check(h.pread(4096, 4 << 20) == bytes(4096), "TRIM reads zeroes")

# WRITE_ZEROES: may punch, NO_HOLE keeps data allocated, FAST_ZERO
h.pwrite(b"\x01" * 65536, 6 << 20)
h.zero(65536, 6 << 20)
check(h.pread(65536, 6 << 20) == bytes(65536), "WRITE_ZEROES")
h.pwrite(b"\x01" * 65536, 7 << 20)
h.zero(65536, 7 << 20, nbd.CMD_FLAG_NO_HOLE)
check(h.pread(65536, 7 << 20) == bytes(65536), "WRITE_ZEROES NO_HOLE")
ext = extents(h, 65536, 7 << 20)
check(ext and not ext[0][1] & nbd.STATE_HOLE, "NO_HOLE allocated: %r" % ext)
try:
    h.zero(65536, 5 << 20, nbd.CMD_FLAG_FAST_ZERO)
except nbd.Error as e:
    check(e.errnum == errno.ENOTSUP, "FAST_ZERO fails only with ENOTSUP")
h.zero(65536, 6 << 20, nbd.CMD_FLAG_FUA)

# BLOCK_STATUS: data at 0, holes where trimmed; REQ_ONE gives one extent
ext = extents(h, SIZE, 0)
check(ext and ext[0][1] == 0, "first extent is data: %r" % ext[:3])
check(sum(l for l, f in ext) >= 1, "extents cover something")
one = extents(h, 3 << 20, 3 << 20, nbd.CMD_FLAG_REQ_ONE)
check(len(one) == 1 and one[0][0] <= 3 << 20, "REQ_ONE: %r" % one)
one = extents(h, 512, 4 << 20, nbd.CMD_FLAG_REQ_ONE)
check(one == [(512, nbd.STATE_HOLE | nbd.STATE_ZERO)], "REQ_ONE hole: %r" %
      one)
h.shutdown()

# ---- errors (strict mode off so that libnbd sends what we ask) ----
h = connect("vol", strict=False)
expect_err(lambda: h.pread(4096, SIZE - 2048), errno.EINVAL, "READ past end")
expect_err(lambda: h.pread(512, SIZE), errno.EINVAL, "READ at the end")
expect_err(lambda: h.pwrite(b"x" * 4096, SIZE - 2048), errno.ENOSPC,
           "WRITE past end")
expect_err(lambda: h.zero(4096, SIZE), errno.ENOSPC, "WRITE_ZEROES past end")
expect_err(lambda: h.trim(4096, SIZE - 512), errno.EINVAL, "TRIM past end")
expect_err(lambda: extents(h, 4096, SIZE), errno.EINVAL,
           "BLOCK_STATUS past end")
expect_err(lambda: h.pread(512, 1), errno.EINVAL, "unaligned READ")
expect_err(lambda: h.pwrite(b"y" * 100, 0), errno.EINVAL, "unaligned WRITE")
expect_err(lambda: h.pread(0, 0), errno.EINVAL, "zero-length READ")
expect_err(lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE), errno.EINVAL,
           "READ with a flag of BLOCK_STATUS")
expect_err(lambda: h.cache(4096, 0), errno.EINVAL, "CACHE (not advertised)")
expect_err(lambda: h.pread((32 << 20) + 512, 0), errno.EOVERFLOW,
           "READ larger than the maximum payload")
# the payload of a refused write is skipped: the connection goes on
expect_err(lambda: h.pwrite(b"z" * 8192, SIZE), errno.ENOSPC, "WRITE at end")
check(h.pread(4096, 0) == data[:4096], "connection usable after errors")
h.shutdown()

# read-only export: EPERM for everything that writes
h = connect("vol-ro", strict=False)
check(h.is_read_only() and not h.can_trim() and not h.can_zero(),
      "read-only flags")
check(h.pread(4096, 0) == data[:4096], "READ on read-only")
h.flush()
expect_err(lambda: h.pwrite(b"w" * 4096, 0), errno.EPERM, "WRITE on read-only")
expect_err(lambda: h.trim(4096, 0), errno.EPERM, "TRIM on read-only")
expect_err(lambda: h.zero(4096, 0), errno.EPERM, "WRITE_ZEROES on read-only")
check(h.pread(4096, 0) == data[:4096], "read-only data unchanged")
h.shutdown()

# simple replies only (no structured replies): READ, errors, no meta
h = connect("vol", meta=False, structured=False, strict=False)
check(not h.get_structured_replies_negotiated(), "simple replies")
check(h.pread(8192, 0) == data[:8192], "READ with a simple reply")
expect_err(lambda: h.pread(4096, SIZE), errno.EINVAL, "simple READ past end")
expect_err(lambda: h.pread((32 << 20) + 512, 0), errno.EINVAL,
           "simple READ too large")
check(h.pread(512, 512) == data[512:1024], "simple replies after errors")
h.shutdown()

# BLOCK_STATUS without a meta context is refused by the server
h = connect("vol", meta=False, strict=False)
expect_err(lambda: h.block_status(4096, 0, lambda *a: 0), errno.EINVAL,
           "BLOCK_STATUS without a meta context")
h.shutdown()

# mem export: holes reported from the source
h = connect("tiny")
check(h.get_size() == 1 << 20, "mem size")
check(extents(h, 1 << 20, 0) == [(1 << 20, 3)], "mem all hole")
h.pwrite(b"m" * 4096, 4096)
ext = extents(h, 1 << 20, 0)
check(ext[0][1] == 0 and ext[0][0] >= 8192 and ext[1][1] == 3 and
      sum(l for l, f in ext) == 1 << 20, "mem extents %r" % ext)
h.shutdown()

# several connections at once (multi-conn): each sees the others' writes
hs = [connect("vol") for _ in range(4)]
for i, c in enumerate(hs):
    c.pwrite(bytes([0x60 + i]) * 4096, (10 << 20) + i * 4096)
hs[0].flush()
for c in hs:
    for i in range(4):
        check(c.pread(4096, (10 << 20) + i * 4096) == bytes([0x60 + i]) * 4096,
              "multi-conn read %d" % i)
for c in hs:
    c.shutdown()

# a write larger than 32 MiB is a protocol violation: that client is cut
h = connect("vol", strict=False)
try:
    h.pwrite(b"q" * ((32 << 20) + 4096), 0)
    check(False, "oversized WRITE accepted")
except nbd.Error:
    pass
h2 = connect("vol")
check(h2.pread(4096, 0) == data[:4096], "other clients unaffected")
h2.shutdown()

finish("nbdsh checks")
