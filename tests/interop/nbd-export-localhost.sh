#!/bin/sh
# SPDX-License-Identifier: MIT
# listen=localhost:P where the resolver returns both families (stock
# Debian 12: /etc/hosts maps localhost to 127.0.0.1 and ::1): in a
# private mount namespace with such an /etc/hosts, localhost:P listens
# on both addresses, shares 127.0.0.1:P with an export that names it,
# serves the same export names on both families, and the listener
# checks of nbd-export-nbdinfo.sh hold.  Skipped where no mount
# namespace can be made or ::1 is not configured.
. "${srcdir:-.}/tests/interop/nbd-export-lib.sh"
need unshare nbdinfo python3

if [ -z "${NX_IN_NS:-}" ]; then
	python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' \
		2>/dev/null || skip "no ::1 on this host"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >"$T/hosts"
	ns="mount --bind $T/hosts /etc/hosts"
	for u in "unshare -m" "unshare -rm"; do
		if $u sh -c "$ns" 2>/dev/null; then
			NX_IN_NS=1 NX_HOSTS="$T/hosts" exec $u sh -c \
				"$ns && exec sh '$0'"
		fi
	done
	skip "cannot make a private mount namespace (unshare -m)"
fi

# inside the namespace: the resolver must return both
getent ahosts localhost | grep -q '^::1 ' || fail "private /etc/hosts: no ::1"
getent ahosts localhost | grep -q '^127\.0\.0\.1 ' || fail "private /etc/hosts: no 127.0.0.1"

P=$(free_port)
start_server s "mem:size=1M | nbd:listen=localhost:$P,name=both" \
	-e "nbd:listen=127.0.0.1:$P,name=v4" \
	-e "nbd:listen=[::1]:$P,name=v6"
[ "$(grep -c '^LISTEN' "$T/s.out")" = 2 ] ||
	{ cat "$T/s.out"; fail "localhost, 127.0.0.1 and ::1 must share two listeners"; }
grep -q "^LISTEN 127.0.0.1:$P\$" "$T/s.out" || fail "no 127.0.0.1 listener"
grep -q "^LISTEN \[::1\]:$P\$" "$T/s.out" || fail "no ::1 listener"
timeout 20 nbdinfo --list "nbd://127.0.0.1:$P" >"$T/l4" || fail "list on 127.0.0.1"
timeout 20 nbdinfo --list "nbd://[::1]:$P" >"$T/l6" || fail "list on ::1"
grep -q 'export="both"' "$T/l4" && grep -q 'export="v4"' "$T/l4" ||
	{ cat "$T/l4"; fail "127.0.0.1 does not serve both and v4"; }
grep -q 'export="v6"' "$T/l4" && fail "127.0.0.1 serves the ::1-only export"
grep -q 'export="both"' "$T/l6" && grep -q 'export="v6"' "$T/l6" ||
	{ cat "$T/l6"; fail "::1 does not serve both and v6"; }
grep -q 'export="v4"' "$T/l6" && fail "::1 serves the 127.0.0.1-only export"
timeout 20 nbdinfo --size "nbd://localhost:$P/both" | grep -qx 1048576 ||
	fail "nbd://localhost/both"
stop_server "$s_PID"

# the listener checks of the nbdinfo test, with this resolver
sh "$srcdir/tests/interop/nbd-export-nbdinfo.sh" || fail "nbd-export-nbdinfo.sh with localhost = 127.0.0.1 + ::1"
exit 0
