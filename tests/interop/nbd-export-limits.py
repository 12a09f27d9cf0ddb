# SPDX-License-Identifier: MIT
# Raw NBD clients that misbehave, for nbd-export-limits.sh:
#   hog PORT N      N connections, each sends two 32 MiB READ headers and
#                   never reads; prints HOGGING, then waits for stdin EOF
#   conns PORT N    opens N connections; prints how many got a greeting
import socket, struct, sys, time

NBD_OPT_GO = 7
IHAVEOPT = 0x49484156454F5054
REQ_MAGIC = 0x25609513


def handshake(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    g = b""
    while len(g) < 18:
        d = s.recv(18 - len(g))
        if not d:
            raise EOFError("no greeting")
        g += d
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    data = struct.pack(">I", 0) + struct.pack(">H", 0)  # "" and no info
    s.sendall(struct.pack(">QII", IHAVEOPT, NBD_OPT_GO, len(data)) + data)
    while True:  # option replies until ACK
        h = b""
        while len(h) < 20:
            d = s.recv(20 - len(h))
            if not d:
                raise EOFError("closed in the handshake")
            h += d
        _, _, rtype, rlen = struct.unpack(">QIII", h)
        while rlen:
            rlen -= len(s.recv(rlen))
        if rtype == 1:
            return s
        if rtype & (1 << 31):
            raise RuntimeError("GO refused")


def hog(port, n):
    socks = []
    for i in range(n):
        s = handshake(port)
        for k in range(2):
            s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 0, i * 2 + k,
                                  (i * 2 + k) << 25, 32 << 20))
        socks.append(s)
    print("HOGGING", flush=True)
    sys.stdin.read()


def conns(port, n):
    socks, greeted = [], 0
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(5)
        socks.append(s)
    for s in socks:
        try:
            if len(s.recv(18)) > 0:
                greeted += 1
        except (socket.timeout, ConnectionError):
            pass
    print(greeted, flush=True)


if sys.argv[1] == "hog":
    hog(int(sys.argv[2]), int(sys.argv[3]))
else:
    conns(int(sys.argv[2]), int(sys.argv[3]))
