#!/bin/bash
# Block status through chains of NBD: nbdinfo --map of a sparse file
# served by `file | nbd:` is the map nbdkit's file plugin gives of the
# same file, and stays the same through `nbd:// | nbd:`, through a
# transform (`nbd:// | fault | nbd:`) and two hops of nbd://: holes
# survive every hop, with BLOCK_STATUS answered on the reactors.
. "${srcdir:-.}/tests/interop/nbd-client-lib.sh"
require nbdinfo timeout truncate dd

f=$tmp/sparse.img
truncate -s 64M $f
# data at 1 MiB (64 KiB), at 8 MiB (1 MiB) and in the last 4 KiB
dd if=/dev/urandom of=$f bs=64K count=1 seek=16 conv=notrunc status=none
dd if=/dev/urandom of=$f bs=1M count=1 seek=8 conv=notrunc status=none
dd if=/dev/urandom of=$f bs=4K count=1 seek=16383 conv=notrunc status=none

map() { timeout 60 nbdinfo --map "$1"; }

newsock; S1=$S; serve "file:$f | nbd:socket=$S1"
direct=$(map "nbd+unix:///?socket=$S1") || { echo "nbdinfo failed"; exit 1; }
echo "file | nbd:"; echo "$direct"
if ! echo "$direct" | grep -q 'hole'; then
	echo "FAIL: the sparse file shows no hole"
	exit 1
fi
if command -v nbdkit >/dev/null 2>&1; then
	ref=$(nbdkit -U - file "$f" --run 'nbdinfo --map "$uri"')
	if [ "$ref" != "$direct" ]; then
		echo "FAIL: nbdkit's file plugin maps the file differently:"
		echo "$ref"
		failed=1
	fi
fi

check() { # NAME URI: its map must be the direct one
	got=$(map "$2") || { echo "FAIL: nbdinfo on $1"; failed=1; return; }
	if [ "$got" != "$direct" ]; then
		echo "FAIL: $1 maps differently:"
		echo "$got"
		echo "(the export must submit NEXUS_OP_BLOCK_STATUS on its" \
		     "reactor, not call nexus_dev_block_status() there)"
		failed=1
	else
		echo "ok: $1"
	fi
}

newsock; S2=$S; serve "nbd+unix:///?socket=$S1 | nbd:socket=$S2"
check "nbd:// | nbd:" "nbd+unix:///?socket=$S2"

newsock; S3=$S; serve "nbd+unix:///?socket=$S2 | fault:enable=off | nbd:socket=$S3"
check "nbd:// | nbd:// | fault | nbd:" "nbd+unix:///?socket=$S3"

P=$(free_port)
serve "nbd:nbd+unix:///?socket=$S1,connections=2 | nbd:listen=127.0.0.1:$P"
check "nbd:// (2 connections) | nbd: over TCP" "nbd://127.0.0.1:$P/"
finish
