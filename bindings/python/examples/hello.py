#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hello: the smallest useful libnexus embedding, in Python.

Opens a pipeline, writes a block, reads it back, prints the device and
its counters (the same as examples/hello.c).

    python3 hello.py 'mem:size=64M'
    python3 hello.py 'file:/tmp/disk.img,create=on,size=64M'
"""

import sys

import nexus


def main(argv):
    pipeline = argv[1] if len(argv) > 1 else "mem:size=64M"
    try:
        with nexus.Context() as ctx, ctx.open(pipeline) as dev:
            info = dev.info
            print("%s: %d bytes, block size %d"
                  % (info.name, info.size, info.logical_block_size))

            out = ("hello from libnexus %s" % nexus.version()).encode()
            out = out.ljust(4096, b"\0")
            dev.pwrite(out, 0, fua=True)
            data = dev.pread(4096, 0)
            ok = data == out
            print('read back: "%s" (%s)'
                  % (data.rstrip(b"\0").decode(), "ok" if ok else "MISMATCH"))

            st = dev.stats()
            print("ops: %d reads, %d writes" % (st.per_op[nexus.Op.READ].ops,
                                                st.per_op[nexus.Op.WRITE].ops))
            return 0 if ok else 1
    except nexus.NexusError as e:
        print("hello: %s" % e.strerror, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
