# SPDX-License-Identifier: MIT
# Used by mirror-crash.sh (python3 with libnbd's bindings).
#   crash-writer.py write URI LOG BLOCKS: write block i (4 KiB, filled
#       with i) at offset i * 4096 for i = 0, 1, ..., and append i to LOG
#       once the server acknowledged it; until killed or BLOCKS written.
#   crash-writer.py check URI LOG: every block named in LOG reads back
#       as written.
import os
import struct
import sys

import nbd


def block(i):
    return struct.pack("<Q", i + 1) * 512


def main():
    mode, uri, log = sys.argv[1], sys.argv[2], sys.argv[3]
    h = nbd.NBD()
    h.connect_uri(uri)
    if mode == "write":
        blocks = int(sys.argv[4])
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        for i in range(blocks):
            h.pwrite(block(i), i * 4096)
            os.write(fd, b"%d\n" % i)
        return 0
    acked = [int(x) for x in open(log).read().split()]
    bad = [i for i in acked if h.pread(4096, i * 4096) != block(i)]
    print("%d acknowledged blocks, %d missing" % (len(acked), len(bad)))
    return 1 if bad or not acked else 0


sys.exit(main())
