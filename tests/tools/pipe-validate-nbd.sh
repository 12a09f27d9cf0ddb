#!/bin/sh
# Parse-time validation of the NBD export's listen address and TCP
# congestion control: --check refuses a port out of range and an
# algorithm the kernel does not have.  Listed in XFAIL_TESTS until the
# NBD export (workstream "server") validates these at parse time: then
# this test passes, automake reports XPASS, and the XFAIL entry goes.
. "${srcdir:-.}/tests/tools/common.sh"
has_driver export nbd || skip "no nbd export driver"
rc=0
for p in 'mem:1M | nbd:listen=127.0.0.1:99999' \
	 'mem:1M | nbd:listen=127.0.0.1:0,congestion=bogus'; do
	if "$PIPE" --check "$p" > /dev/null 2>&1; then
		echo "--check accepted '$p'"
		rc=1
	fi
done
exit $rc
