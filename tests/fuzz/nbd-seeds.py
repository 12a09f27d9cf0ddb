# SPDX-License-Identifier: MIT
# Seed corpus for nbd-server-fuzz: well-formed client sessions.
#   nbd-seeds.py DIR
import os
import struct
import sys

IHAVEOPT = 0x49484156454f5054
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def name(n):
    return struct.pack(">I", len(n)) + n


def go(n, infos=(), o=7):
    return opt(o, name(n) + struct.pack(">H", len(infos)) +
               b"".join(struct.pack(">H", i) for i in infos))


def meta(n, qs, o=10):
    return opt(o, name(n) + struct.pack(">I", len(qs)) +
               b"".join(name(q) for q in qs))


def req(t, off, ln, flags=0, payload=b""):
    return struct.pack(">IHHQQI", 0x25609513, flags, t, 1, off, ln) + payload


reqs = (req(0, 0, 512) + req(1, 512, 512, 1, b"x" * 512) + req(3, 0, 0) +
        req(4, 0, 4096) + req(6, 4096, 4096, 2) + req(6, 0, 512, 16) +
        req(7, 0, 65536, 8) + req(0, 1 << 30, 512) + req(99, 0, 1) +
        req(2, 0, 0))
seeds = {
    "go": b"\0" + struct.pack(">I", 3) + go(b"vol", (0, 1, 2, 3)) + reqs,
    "go-sr-meta": b"\0" + struct.pack(">I", 3) + opt(8) +
    meta(b"vol", [b"base:allocation"]) + go(b"vol") + reqs,
    "list": b"\0" + struct.pack(">I", 1) + opt(3) +
    meta(b"", [b"base:"], 9) + opt(2),
    "export-name": b"\0" + struct.pack(">I", 1) + opt(1, b"vol") + reqs,
    "info-unknown": b"\x06" + struct.pack(">I", 3) + go(b"nosuch", (), 6) +
    opt(5) + opt(12345, b"abc") + go(b"", (3,)),
    "oversize": b"\0" + struct.pack(">I", 3) +
    struct.pack(">QII", IHAVEOPT, 7, 70000) + b"\0" * 70000 + go(b""),
    "tx": b"\x01\x01\x03\x00" + reqs,
    "tx-simple": b"\x01\x00\x00\x00" + reqs,
    "tx-ro": b"\x01\x02\x01\x00" + reqs,
}
for k, v in seeds.items():
    with open(os.path.join(out, k), "wb") as f:
        f.write(v)
