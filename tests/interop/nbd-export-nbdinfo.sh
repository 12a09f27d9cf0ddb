#!/bin/sh
# SPDX-License-Identifier: MIT
# nbdinfo (info, --list, --map, --json) and nbdcopy against the export;
# several named exports on one listener (TCP and Unix), a read-only
# export, the default export.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need nbdinfo nbdcopy python3

truncate -s 32M "$T/a.img"
truncate -s 16M "$T/b.img"
# data in the first MiB of a, a hole after it
head -c 1M /dev/urandom | dd of="$T/a.img" conv=notrunc status=none
P=$(free_port)
start_server s \
	"file:$T/a.img | nbd:listen=127.0.0.1:$P,name=alpha,description=first disk" \
	-e "nbd:listen=127.0.0.1:$P,name=alpha-ro,readonly=on" \
	-e "nbd:listen=localhost:$P,name=" \
	"file:$T/b.img | nbd:listen=127.0.0.1:$P,name=beta" \
	"mem:size=8M | nbd:socket=$T/sock,name=m1" \
	-e "nbd:socket=$T/sock,name=m2,readonly=on"
# localhost is every address it resolves to (127.0.0.1, and ::1 where
# /etc/hosts says so): one listener per address, shared with the
# exports that name 127.0.0.1; plus the Unix socket
want=$(python3 - <<'PY'
import socket
addrs = {"127.0.0.1"}
for fam, _, _, _, sa in socket.getaddrinfo("localhost", 0, 0,
                                           socket.SOCK_STREAM, 0,
                                           socket.AI_PASSIVE):
    if fam not in (socket.AF_INET, socket.AF_INET6):
        continue
    try:  # an address this host cannot bind is left out by the server
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((sa[0], 0))
        s.close()
        addrs.add(sa[0])
    except OSError:
        pass
print(len(addrs) + 1)
PY
)
[ "$(grep -c '^LISTEN' "$T/s.out")" = "$want" ] ||
	{ cat "$T/s.out"; fail "exports on one address must share one listener ($want expected)"; }

U="nbd://127.0.0.1:$P"
timeout 20 nbdinfo --list "$U" >"$T/list" || fail "nbdinfo --list"
for n in 'export="alpha"' 'export="alpha-ro"' 'export=""' 'export="beta"' \
	 'description: first disk'; do
	grep -q "$n" "$T/list" || { cat "$T/list"; fail "--list lacks $n"; }
done
timeout 20 nbdinfo --json "$U/alpha" >"$T/alpha.json" || fail "nbdinfo alpha"
python3 - "$T/alpha.json" <<'PY' || fail "nbdinfo alpha: wrong details"
import json, sys
j = json.load(open(sys.argv[1]))
e = j["exports"][0]
assert j["protocol"] == "newstyle-fixed", j
assert e["export-size"] == 32 << 20, e
assert e["is_read_only"] is False and e["can_trim"] and e["can_zero"], e
assert e["can_flush"] and e["can_fua"] and e["can_multi_conn"], e
assert e["can_fast_zero"] and not e["can_cache"], e
assert e["block_size_minimum"] == 512 and e["block_size_maximum"] == 32 << 20, e
assert "base:allocation" in e["contexts"], e
assert e["description"] == "first disk", e
PY
timeout 20 nbdinfo --json "$U/alpha-ro" >"$T/ro.json" || fail "nbdinfo alpha-ro"
python3 - "$T/ro.json" <<'PY' || fail "read-only export: wrong flags"
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["is_read_only"] is True and not e["can_trim"] and not e["can_zero"], e
assert not e["can_fua"] and not e["can_fast_zero"], e
PY
timeout 20 nbdinfo --size "$U" | grep -qx 33554432 || fail "default export size"
timeout 20 nbdinfo --size "$U/beta" | grep -qx 16777216 || fail "beta size"
timeout 20 nbdinfo "$U/nosuch" >/dev/null 2>&1 && fail "unknown export accepted"

# --map: data then hole; mem reports everything as hole
timeout 20 nbdinfo --map "$U/alpha" >"$T/map" || fail "nbdinfo --map"
head -n1 "$T/map" | grep -Eq '^ +0 +1048576 +0 +data' || { cat "$T/map"; fail "map: data"; }
sed -n 2p "$T/map" | grep -Eq '^ +1048576 +32505856 +3 +hole,zero' || { cat "$T/map"; fail "map: hole"; }
timeout 20 nbdinfo --map "nbd+unix:///m1?socket=$T/sock" >"$T/map2" || fail "map m1"
grep -Eq '^ +0 +8388608 +3 +hole,zero' "$T/map2" || { cat "$T/map2"; fail "map m1"; }
timeout 20 nbdinfo --list "nbd+unix:///?socket=$T/sock" >"$T/list2" || fail "list unix"
grep -q 'export="m2"' "$T/list2" || fail "unix listener lacks m2"

# nbdcopy: file -> export -> file, and export -> export
head -c 5M /dev/urandom >"$T/src"
truncate -s 8M "$T/src"
timeout 60 nbdcopy "$T/src" "nbd+unix:///m1?socket=$T/sock" || fail "nbdcopy to m1"
timeout 60 nbdcopy "nbd+unix:///m2?socket=$T/sock" "$T/dst" || fail "nbdcopy from m2"
cmp "$T/src" "$T/dst" || fail "nbdcopy round trip differs"
timeout 60 nbdcopy --connections=4 --requests=32 "nbd+unix:///m1?socket=$T/sock" "$U/beta" ||
	fail "nbdcopy export to export"
head -c 8M "$T/b.img" | cmp - "$T/src" || fail "beta content differs"
timeout 60 nbdcopy "$U/alpha-ro" "$T/a2" || fail "nbdcopy alpha-ro"
cmp "$T/a.img" "$T/a2" || fail "alpha-ro content differs"
timeout 60 nbdcopy "$T/src" "$U/alpha-ro" 2>/dev/null && fail "wrote to a read-only export"

# re-export through libnexus's own NBD client: its block status is an
# operation the export submits on the reactor, so the holes of m1 show
# through (nbd:// | nbd: used to report everything as data)
start_server re "nbd+unix:///m1?socket=$T/sock | nbd:socket=$T/sock2,name=re"
timeout 20 nbdinfo --map "nbd+unix:///m1?socket=$T/sock" >"$T/map4" || fail "map m1"
timeout 20 nbdinfo --map "nbd+unix:///re?socket=$T/sock2" >"$T/map3" || fail "map re"
cmp -s "$T/map3" "$T/map4" || { cat "$T/map3" "$T/map4"; fail "map re differs from m1's"; }
grep -q hole "$T/map3" || { cat "$T/map3"; fail "map re: no hole"; }
timeout 60 nbdcopy "nbd+unix:///re?socket=$T/sock2" "$T/dst2" || fail "nbdcopy re"
cmp "$T/src" "$T/dst2" || fail "re-export content differs"
stop_server "$re_PID"

stop_server "$s_PID"

# IPv6, where the loopback has ::1
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	start_server v6 "mem:size=2M | nbd:listen=[::1]:0,name=six"
	grep -q '^LISTEN \[::1\]:' "$T/v6.out" || { cat "$T/v6.out"; fail "IPv6 address"; }
	timeout 20 nbdinfo --size "nbd://[::1]:$v6_PORT/six" | grep -qx 2097152 ||
		fail "nbdinfo over IPv6"
	stop_server "$v6_PID"
fi
exit 0
