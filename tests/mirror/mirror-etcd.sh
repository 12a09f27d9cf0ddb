#!/bin/sh
# SPDX-License-Identifier: MIT
# The mirror's etcd state store (state=etcd://HOST:PORT/PREFIX) against a
# real etcd started here on free 127.0.0.1 ports:
#  a. the kill -9 test of mirror-crash.sh with the record in etcd: the
#     restart (once the dead owner's 2 s lease expired) starts from the
#     in-sync child with every acknowledged write;
#  b. a second process opening the same PREFIX is refused, naming the
#     owner; a clean close frees the volume at once;
#  c. etcd stopped (SIGSTOP), then a child faulted: the write that needs
#     the record is not acknowledged, it fails, and the log names etcd;
#     after SIGCONT writes are acknowledged again (the record's thread
#     retries every second);
#  d. fencing: an owner stopped for longer than its lease, whose volume
#     was taken over meanwhile, writes neither its children nor the
#     record once it runs again ("lost ownership");
#  e. PREFIX/owner deleted by hand: the owner finds out at its next
#     record write and writes nothing from then on;
#  f. a fake gateway (etcd-fake.py) answering what no etcd sends: every
#     open fails with a message, nothing crashes.
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
need_etcd
need_nbd_python
scratch mirror-etcd

# --- URLs and state-ttl=, checked when the pipeline is parsed ---
while read -r opts expect; do
	if "$PIPE" --check "null | mirror:$opts" >"$T/check.out" 2>&1; then
		[ "$expect" = ok ] || fail "$opts: accepted"
	else
		[ "$expect" != ok ] && grep -q -- "$expect" "$T/check.out" ||
			{ cat "$T/check.out" >&2; fail "$opts: not '$expect'"; }
	fi
done <<'URLS'
state=etcd://localhost:2379/a/b.c_d-e ok
state=etcd://[::1]:2379/x,state-ttl=2 ok
state=etcd://10.0.0.1:1/x,state-ttl=3600 ok
state=etcd://h/x no :PORT after the host
state=etcd://:2379/x bad host
state=etcd://ho_st:2379/x no :PORT after the host
state=etcd://[::1/x bad IPv6 address
state=etcd://[]:1/x bad IPv6 address
state=etcd://h:0/x the port is not in 1..65535
state=etcd://h:65536/x the port is not in 1..65535
state=etcd://h:99999999999999999999/x the port is not in 1..65535
state=etcd://h:+1/x no :PORT after the host
state=etcd://h:2379 no /PREFIX after the port
state=etcd://h:2379x/p no /PREFIX after the port
state=etcd://h:2379/ PREFIX must be
state=etcd://h:2379//x PREFIX must be
state=etcd://h:2379/x/ PREFIX must be
state=etcd://h:2379/a//b PREFIX must be
state=etcd://h:2379/a*b PREFIX must be
state=etcd://h:2379/x,state-ttl=1 must be from 2 to 3600
state=etcd://h:2379/x,state-ttl=3601 must be from 2 to 3600
state=/tmp/x,state-ttl=5 state-ttl= is for state=etcd://
URLS
echo "OK: URLs and state-ttl= checked at parse time"

etcd_start
E=etcd://127.0.0.1:$ETCD_PORT

# write1 SOCKET OFFSET BYTE: one 4 KiB write over NBD; fails when the
# server fails it
write1() {
	"$PY" -c 'import nbd, sys
h = nbd.NBD()
h.connect_uri("nbd+unix:///?socket=" + sys.argv[1])
h.pwrite(bytes([int(sys.argv[3])]) * 4096, int(sys.argv[2]))' "$@"
}

# owner_is PREFIX PID: PREFIX/owner names process PID
owner_is() {
	_o=$(etcd_get "$1/owner")
	case $_o in
	*:"$2":*) ;;
	*) fail "$1/owner is '$_o', not process $2" ;;
	esac
}

# --- a ---
crash_test "$E/vol1,state-ttl=2" "etcd_get vol1/state" "etcd_wait_free vol1 10"
[ -z "$(etcd_get vol1/owner)" ] || fail "vol1/owner kept after a clean close"
echo "OK a: crash, restart from the record in etcd, rebuild"

# --- b ---
truncate -s 64M "$IMGDIR/c.img" "$IMGDIR/d.img" "$IMGDIR/e.img" "$IMGDIR/f.img"
serve p "( file:$IMGDIR/c.img ; file:$IMGDIR/d.img | fault:enable=off ) | mirror:state=$E/vol2,assume-clean=on | nbd:socket=$T/p.sock" 5
owner_is vol2 "$p_PID"
if timeout 30 "$PIPE" -q "( file:$IMGDIR/e.img ; file:$IMGDIR/f.img ) | mirror:state=$E/vol2,assume-clean=on | nbd:socket=$T/x.sock" >"$T/second.out" 2>&1; then
	fail "a second process opened vol2"
fi
cat "$T/second.out"
grep -q "$E/vol2: volume owned by [^ ]*:$p_PID:[0-9a-f]* (lease expires within [0-9]* s)" "$T/second.out" ||
	fail "the second process was not refused as it should be"
owner_is vol2 "$p_PID"
echo "OK b: a second owner is refused"

# --- c ---
write1 "$T/p.sock" 0 1 || fail "a write before the outage failed"
kill -STOP "$ETCD_PID"
ctl 5 p fault.enable=on
if write1 "$T/p.sock" 4096 2 2>"$T/w.err"; then
	kill -CONT "$ETCD_PID"
	fail "a write that faulted child 1 was acknowledged while etcd was stopped"
fi
tail -n1 "$T/w.err"
grep -q "cannot record the children's states: $E/vol2: http://127.0.0.1:$ETCD_PORT/v3/kv/txn: " "$T/p.err" ||
	{ kill -CONT "$ETCD_PID"; cat "$T/p.err" >&2; fail "the log does not name etcd"; }
grep "cannot record the children's states" "$T/p.err" | head -n1
kill -CONT "$ETCD_PID"
ok=
for _ in $(seq 50); do
	write1 "$T/p.sock" 8192 3 2>/dev/null && { ok=1; break; }
	sleep 0.2
done
[ -n "$ok" ] || fail "writes still fail after etcd came back"
etcd_get vol2/state >"$T/record"
grep -q 'child 1 out-of-sync' "$T/record" || fail "vol2: child 1 still in sync"
owner_is vol2 "$p_PID"
kill -TERM "$p_PID"
wait "$p_PID" || fail "nexus-pipe p exited with $?"
[ -z "$(etcd_get vol2/owner)" ] || fail "vol2/owner kept after a clean close"
echo "OK c: no write acknowledged while etcd is stopped, then again"

# --- d ---
serve q "( file:$IMGDIR/c.img ; file:$IMGDIR/d.img | fault:enable=off ) | mirror:state=$E/vol3,state-ttl=2,assume-clean=on | nbd:socket=$T/q.sock" 6
kill -STOP "$q_PID"
etcd_wait_free vol3 10
serve s "( file:$IMGDIR/e.img ; file:$IMGDIR/f.img ) | mirror:state=$E/vol3,source=0 | nbd:socket=$T/s.sock" 7
owner_is vol3 "$s_PID"
kill -CONT "$q_PID"
# its lease is gone: no write reaches its children any more
if write1 "$T/q.sock" 0 4 2>"$T/w.err"; then
	fail "a process that lost its volume acknowledged a write"
fi
wait_log q "no write reaches the children from now on: $E/vol3: lost ownership: the lease was not renewed in time" 10
grep 'no write reaches' "$T/q.err"
"$PY" -c 'import sys
sys.exit(open(sys.argv[1], "rb").read(4096) == bytes([4]) * 4096)' "$IMGDIR/c.img" ||
	fail "the write of a process that lost its volume reached a child"
# nor can it write the record
echo mirror.child.1=fault >&6
wait_log q "$E/vol3: lost ownership: the volume is now owned by [^ ]*:$s_PID:" 10
grep 'now owned by' "$T/q.err"
owner_is vol3 "$s_PID"
echo "OK d: fenced after losing the lease"

# --- e ---
# PREFIX/owner deleted by hand while the owner's lease lives on: the
# owner learns it at its next record write, and from then on writes
# nothing, although its lease is still renewed
truncate -s 64M "$IMGDIR/g.img" "$IMGDIR/h.img"
serve g "( file:$IMGDIR/g.img ; file:$IMGDIR/h.img | fault:enable=off ) | mirror:state=$E/vol4,assume-clean=on | nbd:socket=$T/g.sock" 8
etcd_del vol4/owner
write1 "$T/g.sock" 0 5 || fail "a write needing no record failed"
ctl 8 g fault.enable=on
if write1 "$T/g.sock" 4096 6 2>"$T/w.err"; then
	fail "a write that faulted a child was acknowledged without ownership"
fi
wait_log g "$E/vol4: lost ownership: the owner key is gone" 10
ctl 8 g fault.enable=off
if write1 "$T/g.sock" 8192 7 2>"$T/w.err"; then
	fail "a write was acknowledged after ownership was lost"
fi
wait_log g "no write reaches the children from now on: $E/vol4: lost ownership: the record belongs to another owner or none" 10
grep 'lost ownership' "$T/g.err"
echo "OK e: fenced for good once the owner key is found gone"

# --- f ---
# answers no etcd sends: each open fails with a message, never a crash
"$PY" "$srcdir/tests/mirror/etcd-fake.py" "$T/fake.port" "$T/fake.mode" &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -s "$T/fake.port" ] && break; sleep 0.1; done
[ -s "$T/fake.port" ] || fail "the fake gateway did not start"
F=etcd://127.0.0.1:$(cat "$T/fake.port")
while read -r mode expect; do
	echo "$mode" >"$T/fake.mode"
	rc=0
	timeout 30 "$PIPE" -q "( file:$IMGDIR/e.img ; file:$IMGDIR/f.img ) | mirror:state=$F/fake,assume-clean=on | nbd:socket=$T/f.sock" >"$T/fake.out" 2>&1 || rc=$?
	echo "$mode: exit $rc: $(tail -n1 "$T/fake.out")"
	[ "$rc" -ne 0 ] && [ "$rc" -lt 124 ] || fail "$mode: exit status $rc"
	grep -q 'Sanitizer\|runtime error' "$T/fake.out" && { cat "$T/fake.out" >&2; fail "$mode: crash"; }
	grep -q "$F/fake: .*$expect" "$T/fake.out" || fail "$mode: not '$expect'"
done <<'MODES'
notjson not a JSON object
array not a JSON object
deep not a JSON object
huge the answer is too large
http500 HTTP 500: error
grant-badid unexpected answer from etcd to lease/grant
grant-hugeid unexpected answer from etcd to lease/grant
txn-weird unexpected answer from etcd to the owner's txn
owner-junk volume owned by ?\[31mevil? (without a lease
get-big record larger than 65535 bytes
get-notb64 unexpected answer from etcd to kv/range
get-number unexpected answer from etcd to kv/range
MODES
echo "OK f: answers no etcd sends are refused"

# the servers still up stop cleanly; nothing a sanitizer build reports
kill -TERM "$g_PID" "$q_PID" "$s_PID"
wait "$s_PID" || fail "nexus-pipe s exited with $?"
wait "$g_PID" "$q_PID" # they lost their volumes: the clean close fails
if grep -l 'Sanitizer\|runtime error' "$T"/*.err; then
	fail "sanitizer reports (above)"
fi
