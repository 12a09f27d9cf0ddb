#!/bin/sh
# SPDX-License-Identifier: MIT
# congestion=: the TCP congestion control of the export's connections,
# read back from the kernel with ss(8) while a libnbd client is
# connected.  auto (the default) must not leave a pacing algorithm on a
# loopback connection; system keeps the kernel's default; a name sets
# it; an unknown name is refused at start with a message.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need ss
find_nbd_python

default=$(cat /proc/sys/net/ipv4/tcp_congestion_control) ||
	skip "no /proc/sys/net/ipv4/tcp_congestion_control"
P=$(free_port)
start_server s \
	"mem:size=1M | nbd:listen=127.0.0.1:$P,name=auto" \
	-e "nbd:listen=127.0.0.1:$P,name=system,congestion=system" \
	-e "nbd:listen=127.0.0.1:$P,name=reno,congestion=reno"

# algo EXPORT: the algorithm of the server's socket while a client is
# connected to EXPORT
algo() {
	"$NBDPY" - "nbd://127.0.0.1:$P/$1" "$P" <<'PY'
import re, subprocess, sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pread(512, 0)  # the connection is past the handshake: bound
out = subprocess.run(["ss", "-Htin", "state", "established",
                      "( sport = :%s )" % sys.argv[2]],
                     capture_output=True, text=True, check=True).stdout
h.shutdown()
names = set(re.findall(r"\b(bbr|bbr2|cubic|reno|dctcp|vegas|westwood|"
                       r"htcp|bic|illinois|hybla|scalable|yeah|lp|"
                       r"veno|nv|cdg|highspeed)\b", out))
print(" ".join(sorted(names)) or "none:" + out.replace("\n", " "))
PY
}

a=$(algo auto) || fail "client on export auto"
case $a in
cubic|reno) ;;
*) fail "congestion=auto left '$a' on a loopback connection" ;;
esac
s=$(algo system) || fail "client on export system"
[ "$s" = "$default" ] || fail "congestion=system: '$s', kernel default '$default'"
r=$(algo reno) || fail "client on export reno"
[ "$r" = reno ] || fail "congestion=reno: got '$r'"
stop_server "$s_PID"

# an algorithm the kernel does not have: refused, named in the message
"$SERVE" "mem:size=1M | nbd:listen=127.0.0.1:$P,congestion=no-such-cc" \
	>"$T/bad.out" 2>"$T/bad.err" && fail "congestion=no-such-cc was accepted"
grep -q "congestion=no-such-cc" "$T/bad.err" ||
	{ cat "$T/bad.err"; fail "the error does not name the option"; }
exit 0
