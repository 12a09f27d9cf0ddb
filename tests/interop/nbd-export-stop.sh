#!/bin/sh
# SPDX-License-Identifier: MIT
# nexus_export_list_conns() counters, and nexus_export_stop() while clients
# are busy: the stopped exports' clients are finished or failed and
# disconnected, a client still in the handshake on a listener that
# closes is dropped, the other export on the shared listener and the
# device keep working.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need fio nbdinfo python3
find_nbd_python

truncate -s 64M "$T/disk.img"
P=$(free_port)
start_server s "file:$T/disk.img | nbd:listen=127.0.0.1:$P,name=a" \
	-e "nbd:listen=127.0.0.1:$P,name=b" \
	-e "nbd:socket=$T/sock,name=x"
U="nbd://127.0.0.1:$P"

# a libnbd client on "a" that stays connected throughout
cat >"$T/hold.py" <<'PY'
import os, sys, time, nbd
h = nbd.NBD()
h.set_export_name("a")
h.connect_tcp("127.0.0.1", sys.argv[1])
h.pwrite(b"\x33" * 65536, 60 << 20)
open(sys.argv[2] + "/held", "w").close()
while not os.path.exists(sys.argv[2] + "/go"):
    time.sleep(0.05)
assert h.pread(65536, 60 << 20) == b"\x33" * 65536
h.pwrite(b"\x44" * 4096, 61 << 20)
h.flush()
h.shutdown()
print("HOLD-OK")
PY
"$NBDPY" "$T/hold.py" "$P" "$T" >"$T/hold.out" 2>&1 &
HOLD=$!
# a client stuck in the handshake on the Unix listener
python3 - "$T/sock" "$T/hs-connected" >"$T/hs.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(18)
open(sys.argv[2], "w").close()
s.settimeout(60)
print("HS-CLOSED" if s.recv(1) == b"" else "HS-DATA", flush=True)
PY
HS=$!
# fio keeps "b" busy
timeout 120 fio --output="$T/fio.out" --ioengine=nbd --uri="$U/b" --name=busy \
	--rw=randrw --bs=64k --iodepth=16 --size=32m --time_based --runtime=60 &
FIO=$!
wait_line_file() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -lt 300 ] || fail "no $1"; sleep 0.1; done; }
wait_line_file "$T/held"
wait_line_file "$T/hs-connected"
# counters: one connection on a, one on b (once fio is in), with traffic
n=0
while :; do
	n=$((n + 1))
	kill -USR1 "$s_PID"
	wait_line "$T/s.out" '^CONNS' $n
	[ "$(grep '^CONNS' "$T/s.out" | tail -n1)" = "CONNS 2" ] && break
	[ $n -lt 100 ] || { cat "$T/s.out"; fail "fio did not connect"; }
	sleep 0.3
done
sleep 1
kill -USR1 "$s_PID"
n=$((n + 1))
wait_line "$T/s.out" '^CONNS' $n
grep -q "^CONN 'a' 127.0.0.1:[0-9]* [1-9][0-9]* 0 0 65536 " "$T/s.out" ||
	{ cat "$T/s.out"; fail "counters of the connection to a"; }
grep -Eq "^CONN 'b' 127.0.0.1:[0-9]+ [1-9][0-9]* 0 [1-9][0-9]* [1-9][0-9]* [0-9]+$" "$T/s.out" ||
	{ cat "$T/s.out"; fail "counters of the connection to b"; }
grep -q '^CONNS 2$' "$T/s.out" || { cat "$T/s.out"; fail "connection count"; }

# stop b and x (the -e exports) while fio runs
t0=$(date +%s)
kill -USR2 "$s_PID"
wait_line "$T/s.out" '^STOP'
grep -q '^STOPPED$' "$T/s.out" || { cat "$T/s.out"; fail "device unusable after stop"; }
[ $(( $(date +%s) - t0 )) -le 10 ] || fail "stop took more than 10 s"
wait "$FIO"   # fio ends: its connection was closed (an error is fine)
wait "$HS"
grep -q HS-CLOSED "$T/hs.out" || { cat "$T/hs.out"; fail "handshake client not dropped"; }
[ -e "$T/sock" ] && fail "Unix socket not removed"

# a and the listener still work, b is gone
timeout 20 nbdinfo --size "$U/a" | grep -qx 67108864 || fail "a after stop"
timeout 20 nbdinfo "$U/b" >/dev/null 2>&1 && fail "b still served"
touch "$T/go"
wait "$HOLD" || { cat "$T/hold.out"; fail "the client of a failed"; }
grep -q HOLD-OK "$T/hold.out" || fail "the client of a"

kill -USR1 "$s_PID"
wait_line "$T/s.out" '^CONNS' $((n + 1))
[ "$(grep '^CONNS' "$T/s.out" | tail -n1)" = "CONNS 0" ] ||
	{ cat "$T/s.out"; fail "connections left after the clients ended"; }
stop_server "$s_PID"
exit 0
