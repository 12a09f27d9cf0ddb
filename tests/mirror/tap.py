#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A recording TCP relay for tests: tap.py LISTEN_PORT_FILE TARGET_PORT LOG.

Listens on 127.0.0.1 (a free port, written to LISTEN_PORT_FILE once
listening), forwards every connection to 127.0.0.1:TARGET_PORT and
appends every byte carried, both ways, to LOG.  Stops by itself after
300 s."""
import os
import signal
import socket
import sys
import threading

signal.alarm(300)
port_file, target, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
log = open(log_path, "ab", buffering=0)
lock = threading.Lock()


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            with lock:
                log.write(b)
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % srv.getsockname()[1])
os.rename(port_file + ".tmp", port_file)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", target))
    for a, b in ((c, u), (u, c)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
