#!/bin/sh
# nexus-pipe serving pipelines over NBD to real clients: qemu-img,
# qemu-io, nbdinfo, nbdcopy; port 0 and the address it prints; a status
# line that counts clients; clean stop with a client connected.
. "${srcdir:-.}/tests/tools/common.sh"
need qemu-img
need qemu-io
need nbdinfo
need nbdcopy
has_driver export nbd || skip "no nbd export driver"

truncate -s 64M "$T/a.img"
head -c 1M /dev/urandom > "$T/data"
dd if="$T/data" of="$T/a.img" bs=1M seek=3 conv=notrunc status=none

# TCP, port 0: nexus-pipe prints the address it got
start_pipe s "file:$T/a.img | throttle:iops=100000 | nbd:listen=127.0.0.1:0,name=vol" -s -i 0.2
case $s_ADDR in
127.0.0.1:[1-9]*) ;;
*) cat "$T/s.out"; fail "no address printed: '$s_ADDR'" ;;
esac
U="nbd://$s_ADDR/vol"
timeout 20 qemu-img info --output=json "$U" > "$T/info" || fail "qemu-img info"
grep -q '"virtual-size": 67108864' "$T/info" || { cat "$T/info"; fail "size"; }
timeout 20 nbdinfo --map "$U" > "$T/map" || fail "nbdinfo --map"
grep -Eq '^ +3145728 +1048576 +0 +data' "$T/map" || { cat "$T/map"; fail "map"; }
# write through the export, read back through another client
timeout 20 qemu-io -f raw -c 'write -P 0x5a 8M 64k' "$U" > /dev/null || fail "qemu-io write"
timeout 20 qemu-io -f raw -c 'read -P 0x5a 8M 64k' "$U" | grep -q 'read 65536/65536' ||
	fail "qemu-io read back"
timeout 20 nbdcopy "$U" "$T/out.img" || fail "nbdcopy"
cmp "$T/a.img" "$T/out.img" || fail "nbdcopy: data differs from the file"
# the status line counts a connected client (qemu-io holds one open)
mkfifo "$T/qio"
timeout 20 qemu-io -f raw "$U" < "$T/qio" > /dev/null 2>&1 &
qio=$!
exec 4> "$T/qio"
for _ in $(seq 1 50); do
	grep -q '1 client | throttle' "$T/s.err" && break
	sleep 0.1
done
grep -q '1 client | throttle .* IOPS .* | file ' "$T/s.err" ||
	{ tr '\r' '\n' < "$T/s.err" | tail -3; fail "status line"; }
# stop while the client is connected: clean exit, final totals
kill -TERM "$s_PID"
stop_wait "$s_PID" || fail "exit $? with a client connected"
exec 4>&-
wait $qio 2>/dev/null
grep -q "total: .*throttle [0-9]* ops" "$T/s.err" || fail "final totals"

# Unix socket, fault stage switched on through --control
start_control u "mem:size=16M | fault:enable=off,ops=read | nbd:socket=$T/sock" -q
grep -q "^listening on unix:$T/sock\$" "$T/u.out" || fail "unix address"
US="nbd+unix:///?socket=$T/sock"
timeout 20 qemu-io -f raw -c 'read 0 4k' "$US" > /dev/null || fail "read before fault"
echo fault.enable=on >&3
wait_lines "$T/u.out" '^ok' 1
if timeout 20 qemu-io -f raw -c 'read 0 4k' "$US" 2>&1 | grep -q 'read 4096/4096'; then
	fail "read succeeded with the fault on"
fi
echo fault.enable=off >&3
wait_lines "$T/u.out" '^ok' 2
timeout 20 qemu-io -f raw -c 'read 0 4k' "$US" | grep -q 'read 4096/4096' ||
	fail "read after the fault was switched off"
kill -INT "$u_PID"
stop_wait "$u_PID" || fail "exit $? after SIGINT"
exec 3>&-
[ ! -e "$T/sock" ] || fail "socket left behind"
echo ok
