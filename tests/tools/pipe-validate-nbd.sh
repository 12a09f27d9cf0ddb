#!/bin/sh
# Parse-time validation of the NBD export's listen address and TCP
# congestion control (nexus_listen_check, nx_tcp_congestion_check):
# --check refuses a port out of range, a malformed address literal or
# host name, and an algorithm the kernel does not have, with a message
# naming the problem; it accepts the valid forms without resolving or
# binding anything.
. "${srcdir:-.}/tests/tools/common.sh"
has_driver export nbd || skip "no nbd export driver"
rc=0
bad() { # pipeline, words the message must hold
	out=$("$PIPE" --check "$1" 2>&1 >/dev/null) && {
		echo "--check accepted '$1'"; rc=1; return; }
	case $out in
	*"$2"*) ;;
	*) echo "'$1': message lacks '$2': $out"; rc=1 ;;
	esac
}
good() {
	"$PIPE" --check "$1" >/dev/null 2>&1 || {
		echo "--check refused '$1'"; rc=1; }
}
bad 'mem:1M | nbd:listen=127.0.0.1:99999' "bad port '99999'"
bad 'mem:1M | nbd:listen=127.0.0.1:' "bad port"
bad 'mem:1M | nbd:listen=127.0.0.1' "expected HOST:PORT"
bad 'mem:1M | nbd:listen=999.1.1.1:80' "is not an IPv4 address"
bad 'mem:1M | nbd:listen=[fe80::zz]:80' "is not an IPv6 address"
bad 'mem:1M | nbd:listen=[::1:80' "expected [IPV6]:PORT"
bad 'mem:1M | nbd:listen=bad_host:80' "is not a host name"
bad 'mem:1M | nbd:listen=-a.example:80' "is not a host name"
bad 'mem:1M | nbd:listen=127.0.0.1:0,congestion=bogus' "congestion=bogus"
bad 'mem:1M | nbd:listen=127.0.0.1:0,max-inflight=0' "max-inflight"
good 'mem:1M | nbd:listen=127.0.0.1:99'
good 'mem:1M | nbd:listen=[::1]:10809'
good 'mem:1M | nbd:listen=:10809'
good 'mem:1M | nbd:listen=localhost:0'
good 'mem:1M | nbd:listen=a-b.example.org.:65535'
exit $rc
