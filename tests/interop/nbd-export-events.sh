#!/bin/sh
# SPDX-License-Identifier: MIT
# The NBD export's events on the context's stream: export-started, then
# per client conn-opened (with its peer) and conn-closed, client-error
# for a request the server refused, export-stopped last; each once, in
# order.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need nbdinfo
find_nbd_python

P=$(free_port)
start_server s --events "mem:size=1M | nbd:listen=127.0.0.1:$P,name=ev"
timeout 20 nbdinfo --size "nbd://127.0.0.1:$P/ev" | grep -qx 1048576 || fail "nbdinfo"
# a read past the end (libnbd's own checks off): refused by the server
"$NBDPY" - "$P" <<'PY' || fail "the bad read was not refused"
import sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.set_export_name("ev")
h.connect_tcp("127.0.0.1", sys.argv[1])
try:
    h.pread(4096, 2 << 20)
    sys.exit(1)
except nbd.Error:
    pass
h.shutdown()
PY
stop_server "$s_PID"
grep '^EVENT' "$T/s.out" >"$T/ev"
cat "$T/ev"
kinds=$(awk '{print $2}' "$T/ev" | tr '\n' ' ')
# (export-dev-added/removed come from the core; the device's own
# events, dev-state, may come after)
case $kinds in
"export-started export-dev-added conn-opened conn-closed conn-opened client-error conn-closed export-dev-removed export-stopped "*) ;;
*) fail "events out of order or missing: $kinds" ;;
esac
grep -q 'client-error peer=127.0.0.1:[0-9]* reason=none error=-22 object=ev' "$T/ev" ||
	fail "client-error without peer or error"
[ "$(grep -c 'conn-opened peer=127.0.0.1:' "$T/ev")" = 2 ] || fail "conn-opened without the peer"
[ "$(grep -c 'conn-closed .*reason=peer-closed' "$T/ev")" = 2 ] || fail "conn-closed without its reason"
[ "$(grep -c '^EVENT export-started' "$T/ev")" = 1 ] || fail "export-started not exactly once"
[ "$(grep -c '^EVENT export-stopped' "$T/ev")" = 1 ] || fail "export-stopped not exactly once"
exit 0
