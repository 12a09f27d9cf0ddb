# SPDX-License-Identifier: MIT
# Bad input against the NBD export, from raw sockets: each case gets the
# protocol's error or a clean disconnect of that client only, and a
# well-behaved client keeps being served throughout.
#   nbd-export-bad.py PORT
# The server exports 1 MiB "vol" (handshake-timeout=2) and "ro"
# (readonly) on 127.0.0.1:PORT.
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # checks.py is in the source tree
from checks import check, finish  # noqa: E402

PORT = int(sys.argv[1])
NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454f5054
REPMAGIC = 0x0003e889045565a9
REQMAGIC = 0x25609513
SIMPLE = 0x67446698
STRUCT = 0x668e33ef
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO, OPT_SR = 1, 2, 3, 6, 7, 8
OPT_LIST_META, OPT_SET_META = 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = (
    0x80000001, 0x80000003, 0x80000006, 0x80000009)
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_WZ, CMD_BS = 6, 7
EPERM, EINVAL, ENOSPC, ESHUTDOWN = 1, 22, 28, 108
SIZE = 1 << 20


def recvall(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b


def closed(s, timeout=5.0):
    """True if the server closes the connection within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def connect(cflags=3):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    magic, opt, hflags = struct.unpack(">QQH", recvall(s, 18))
    check(magic == NBDMAGIC and opt == IHAVEOPT and hflags == 3, "greeting")
    if cflags is not None:
        s.sendall(struct.pack(">I", cflags))
    return s


def send_opt(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def read_rep(s):
    magic, opt, typ, ln = struct.unpack(">QIII", recvall(s, 20))
    check(magic == REPMAGIC, "reply magic")
    return opt, typ, recvall(s, ln)


def read_reps(s):
    """Replies up to the final one (ACK or error)."""
    out = []
    while True:
        opt, typ, data = read_rep(s)
        out.append((typ, data))
        if typ == REP_ACK or typ & 0x80000000:
            return out


def go_data(name, infos=()):
    n = name.encode()
    return (struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))


def meta_data(name, queries):
    n = name.encode()
    d = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        d += struct.pack(">I", len(q)) + q.encode()
    return d


def go(s, name="vol", structured=False, meta=False):
    if structured:
        send_opt(s, OPT_SR)
        check(read_reps(s)[-1][0] == REP_ACK, "STRUCTURED_REPLY ack")
    if meta:
        send_opt(s, OPT_SET_META, meta_data(name, ["base:allocation"]))
        r = read_reps(s)
        check(r[0][0] == REP_META and r[-1][0] == REP_ACK, "SET_META")
    send_opt(s, OPT_GO, go_data(name))
    r = read_reps(s)
    check(r[-1][0] == REP_ACK, "GO %s: %r" % (name, r[-1]))
    return r


def request(s, typ, offset, length, cookie=1, flags=0, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQMAGIC, flags, typ, cookie, offset,
                          length) + payload)


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
    check(magic == SIMPLE, "simple reply magic %x" % magic)
    return err, cookie


def good_client():
    """A well-behaved client: handshake, write, read back, disconnect."""
    s = connect()
    go(s)
    request(s, CMD_WRITE, 4096, 512, cookie=7, payload=b"\x5a" * 512)
    err, c = simple_reply(s)
    request(s, CMD_READ, 4096, 512, cookie=8)
    err2, c2 = simple_reply(s)
    data = recvall(s, 512)
    request(s, CMD_DISC, 0, 0)
    ok = err == 0 and err2 == 0 and c == 7 and c2 == 8 and \
        data == b"\x5a" * 512 and closed(s)
    s.close()
    return ok


def case(name, fn):
    print("case:", name, flush=True)
    try:
        fn()
    except Exception as e:  # noqa: BLE001 (a failed case, not a crash)
        check(False, "%s: %r" % (name, e))
    try:
        check(good_client(), "good client after: " + name)
    except Exception as e:  # noqa: BLE001
        check(False, "good client after %s: %r" % (name, e))


# ---- handshake ----
def unknown_client_flags():
    s = connect(cflags=0xff00)
    check(closed(s), "unknown client flags: closed")


def bad_option_magic():
    s = connect()
    s.sendall(struct.pack(">QII", 0x1122334455667788, OPT_LIST, 0))
    check(closed(s), "bad option magic: closed")


def unknown_option():
    s = connect()
    send_opt(s, 12345, b"abc")
    check(read_reps(s)[-1][0] == ERR_UNSUP, "unknown option: ERR_UNSUP")
    send_opt(s, OPT_LIST)
    r = read_reps(s)
    check([t for t, d in r].count(REP_SERVER) == 2 and r[-1][0] == REP_ACK,
          "negotiation goes on after ERR_UNSUP: %r" % r)
    go(s)
    request(s, CMD_DISC, 0, 0)
    check(closed(s), "DISC closes")


def oversized_option():
    s = connect()
    n = 200000
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, n))
    s.sendall(b"\0" * n)
    r = read_reps(s)
    check(r[-1][0] == ERR_TOO_BIG, "oversized option: ERR_TOO_BIG %r" % r)
    go(s)
    request(s, CMD_DISC, 0, 0)
    check(closed(s), "DISC after oversized option")


def huge_option_length():
    # 4 GiB announced: the server discards as it arrives, never buffers
    s = connect()
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_INFO, 0xffffffff))
    s.sendall(b"\0" * 100000)
    s.close()


def malformed_options():
    s = connect()
    # INFO whose name length runs past the option
    send_opt(s, OPT_INFO, struct.pack(">I", 1000) + b"vol" + b"\0\0")
    check(read_reps(s)[-1][0] == ERR_INVALID, "INFO: bad name length")
    # GO with a dangling info request count
    send_opt(s, OPT_GO, struct.pack(">I", 3) + b"vol" + struct.pack(">H", 5))
    check(read_reps(s)[-1][0] == ERR_INVALID, "GO: bad info count")
    # truncated INFO header
    send_opt(s, OPT_INFO, b"\0\0")
    check(read_reps(s)[-1][0] == ERR_INVALID, "INFO: truncated")
    # LIST and STRUCTURED_REPLY take no data
    send_opt(s, OPT_LIST, b"x")
    check(read_reps(s)[-1][0] == ERR_INVALID, "LIST with data")
    send_opt(s, OPT_SR, b"x")
    check(read_reps(s)[-1][0] == ERR_INVALID, "STRUCTURED_REPLY with data")
    # SET_META_CONTEXT before structured replies
    send_opt(s, OPT_SET_META, meta_data("vol", ["base:allocation"]))
    check(read_reps(s)[-1][0] == ERR_INVALID, "SET_META without SR")
    # query length past the end
    send_opt(s, OPT_LIST_META, struct.pack(">I", 3) + b"vol" +
             struct.pack(">II", 1, 500) + b"base:")
    check(read_reps(s)[-1][0] == ERR_INVALID, "LIST_META: bad query length")
    # unknown export
    send_opt(s, OPT_INFO, go_data("nosuch"))
    check(read_reps(s)[-1][0] == ERR_UNKNOWN, "INFO unknown export")
    send_opt(s, OPT_GO, go_data("nosuch"))
    check(read_reps(s)[-1][0] == ERR_UNKNOWN, "GO unknown export")
    # INFO with NAME and DESCRIPTION requests, then LIST_META wildcard
    send_opt(s, OPT_INFO, go_data("vol", (1, 2, 3)))
    r = read_reps(s)
    types = [struct.unpack(">H", d[:2])[0] for t, d in r if t == REP_INFO]
    check(r[-1][0] == REP_ACK and 0 in types and 1 in types and 3 in types,
          "INFO replies %r" % types)
    send_opt(s, OPT_SR)
    read_reps(s)
    send_opt(s, OPT_LIST_META, meta_data("vol", ["base:", "x-foo:bar"]))
    r = read_reps(s)
    check(r[0][0] == REP_META and r[0][1][4:] == b"base:allocation" and
          r[-1][0] == REP_ACK and len(r) == 2, "LIST_META base: %r" % r)
    send_opt(s, OPT_SET_META, meta_data("vol", ["base:", "x-foo:bar"]))
    check(read_reps(s) == [(REP_ACK, b"")], "SET_META selects nothing")
    send_opt(s, OPT_ABORT)
    check(read_reps(s)[-1][0] == REP_ACK, "ABORT acked")
    check(closed(s), "ABORT closes")


def export_name_option():
    s = connect(cflags=1)  # no NO_ZEROES: 124 bytes of zeroes follow
    send_opt(s, OPT_EXPORT_NAME, b"vol")
    size, flags = struct.unpack(">QH", recvall(s, 10))
    check(size == SIZE and flags & 1, "EXPORT_NAME: size/flags")
    check(recvall(s, 124) == bytes(124), "EXPORT_NAME: zeroes")
    request(s, CMD_READ, 0, 512, cookie=3)
    err, c = simple_reply(s)
    check(err == 0 and c == 3 and len(recvall(s, 512)) == 512,
          "READ after EXPORT_NAME")
    s.close()
    s = connect()
    send_opt(s, OPT_EXPORT_NAME, b"nosuch")
    check(closed(s), "EXPORT_NAME of an unknown export: closed")


def handshake_timeouts():
    t0 = time.time()
    s1 = connect(cflags=None)            # sends nothing at all
    s2 = connect()                       # half an option
    s2.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"abc")
    s3 = connect()                       # chatty but never GO
    for _ in range(3):
        send_opt(s3, OPT_LIST)
        read_reps(s3)
    check(good_client(), "served while others hang in the handshake")
    check(closed(s1, 10) and closed(s2, 10) and closed(s3, 10),
          "handshake timeout closes")
    check(time.time() - t0 < 8, "timeout took %.1f s" % (time.time() - t0))


def truncated_option_disconnect():
    s = connect()
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"abc")
    s.close()


# ---- transmission ----
def bad_requests():
    s = connect()
    go(s)
    # unknown command
    request(s, 99, 0, 512, cookie=11)
    check(simple_reply(s) == (EINVAL, 11), "unknown command: EINVAL")
    # past the end
    request(s, CMD_READ, SIZE - 512, 1024, cookie=12)
    check(simple_reply(s) == (EINVAL, 12), "READ past end: EINVAL")
    request(s, CMD_WRITE, SIZE, 512, cookie=13, payload=b"x" * 512)
    check(simple_reply(s) == (ENOSPC, 13), "WRITE past end: ENOSPC")
    # unknown flag, and a flag of another command
    request(s, CMD_READ, 0, 512, cookie=14, flags=0x100)
    check(simple_reply(s) == (EINVAL, 14), "unknown flag: EINVAL")
    request(s, CMD_FLUSH, 0, 0, cookie=15, flags=2)
    check(simple_reply(s) == (EINVAL, 15), "NO_HOLE on FLUSH: EINVAL")
    # block status without meta context
    request(s, CMD_BS, 0, 512, cookie=16)
    check(simple_reply(s) == (EINVAL, 16), "BLOCK_STATUS w/o meta: EINVAL")
    request(s, CMD_READ, 0, 512, cookie=17)
    check(simple_reply(s) == (0, 17), "still in sync")
    check(len(recvall(s, 512)) == 512, "READ data")
    # pipelined requests, answered in any order
    for i in range(200):
        request(s, CMD_WRITE, (i % 64) * 4096, 4096, cookie=1000 + i,
                payload=bytes([i]) * 4096)
    got = set()
    for i in range(200):
        err, c = simple_reply(s)
        check(err == 0, "pipelined write %d" % c)
        got.add(c)
    check(got == set(range(1000, 1200)), "all pipelined writes answered")
    # disconnect with requests in flight after DISC: all answered first
    for i in range(50):
        request(s, CMD_READ, i * 4096, 4096, cookie=2000 + i)
    request(s, CMD_DISC, 0, 0)
    n = 0
    for i in range(50):
        err, c = simple_reply(s)
        recvall(s, 4096)
        n += err == 0
    check(n == 50, "replies before DISC closes")
    check(closed(s), "DISC closes")


def structured_errors():
    s = connect()
    go(s, structured=True, meta=True)
    request(s, CMD_READ, SIZE, 512, cookie=21)
    magic, fl, typ, c, ln = struct.unpack(">IHHQI", recvall(s, 20))
    body = recvall(s, ln)
    err, ml = struct.unpack(">IH", body[:6])
    check(magic == STRUCT and fl & 1 and typ == 0x8001 and c == 21 and
          err == EINVAL and ml == ln - 6, "structured READ error chunk")
    request(s, CMD_BS, SIZE // 2, SIZE // 2, cookie=22, flags=8)
    magic, fl, typ, c, ln = struct.unpack(">IHHQI", recvall(s, 20))
    body = recvall(s, ln)
    cid, elen, eflags = struct.unpack(">III", body)
    check(typ == 5 and ln == 12 and cid == 1 and eflags == 3 and
          0 < elen <= SIZE // 2, "BLOCK_STATUS REQ_ONE: %r" % body)
    request(s, CMD_READ, 0, 4096, cookie=23)
    magic, fl, typ, c, ln = struct.unpack(">IHHQI", recvall(s, 20))
    off = struct.unpack(">Q", recvall(s, 8))[0]
    check(typ == 1 and fl & 1 and ln == 4104 and off == 0,
          "OFFSET_DATA chunk")
    recvall(s, 4096)
    request(s, CMD_DISC, 0, 0)
    check(closed(s), "DISC")


def read_only():
    s = connect()
    go(s, "ro")
    request(s, CMD_WRITE, 0, 65536, cookie=31, payload=b"w" * 65536)
    check(simple_reply(s) == (EPERM, 31), "WRITE on read-only: EPERM")
    request(s, CMD_TRIM, 0, 4096, cookie=32)
    check(simple_reply(s) == (EPERM, 32), "TRIM on read-only: EPERM")
    request(s, CMD_WZ, 0, 4096, cookie=33)
    check(simple_reply(s) == (EPERM, 33), "WRITE_ZEROES on read-only: EPERM")
    request(s, CMD_READ, 0, 512, cookie=34)
    check(simple_reply(s) == (0, 34), "payload of the refused WRITE skipped")
    recvall(s, 512)
    s.close()


def oversized_payload():
    s = connect()
    go(s)
    request(s, CMD_WRITE, 0, 0x4000000, cookie=41)   # 64 MiB announced
    s.sendall(b"\0" * 65536)
    check(closed(s), "WRITE payload > 32 MiB: disconnected")


def bad_request_magic():
    s = connect()
    go(s)
    s.sendall(struct.pack(">IHHQQI", 0xdeadbeef, 0, 0, 1, 0, 512))
    check(closed(s), "bad request magic: disconnected")


def disconnect_mid_write():
    for size in (512 * 1024, 4096):
        s = connect()
        go(s)
        request(s, CMD_WRITE, 0, size, cookie=51, payload=b"p" * 1000)
        time.sleep(0.05)
        s.close()


def reset_mid_requests():
    s = connect()
    go(s)
    for i in range(100):
        request(s, CMD_READ, 0, 65536, cookie=60 + i)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST with replies pending


def flood_without_reading():
    # many requests while not reading replies: the server stops reading
    # (bounded in-flight), then everything is answered once we read
    s = connect()
    go(s)
    n = 2000
    s.settimeout(30)
    import threading

    def sender():
        for i in range(n):
            request(s, CMD_READ, (i % 256) * 4096, 4096, cookie=i)
    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.5)
    got = 0
    for i in range(n):
        err, c = simple_reply(s)
        recvall(s, 4096)
        got += err == 0
    t.join()
    check(got == n, "flood: %d of %d answered" % (got, n))
    request(s, CMD_DISC, 0, 0)
    check(closed(s), "flood: DISC")


check(good_client(), "good client")
for name, fn in [("unknown client flags", unknown_client_flags),
                 ("bad option magic", bad_option_magic),
                 ("unknown option", unknown_option),
                 ("oversized option", oversized_option),
                 ("huge option length", huge_option_length),
                 ("malformed options", malformed_options),
                 ("NBD_OPT_EXPORT_NAME", export_name_option),
                 ("truncated option", truncated_option_disconnect),
                 ("handshake timeouts", handshake_timeouts),
                 ("bad requests", bad_requests),
                 ("structured errors", structured_errors),
                 ("read-only", read_only),
                 ("oversized payload", oversized_payload),
                 ("bad request magic", bad_request_magic),
                 ("disconnect mid-write", disconnect_mid_write),
                 ("reset with requests in flight", reset_mid_requests),
                 ("flood", flood_without_reading)]:
    case(name, fn)
finish("bad input checks")
