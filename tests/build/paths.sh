#!/bin/sh
# No test hard-codes where this machine keeps things: the shared tools
# are found as ../shared beside the project root, never by an absolute
# path, so that a clone anywhere (CI's, a fresh machine's) finds them.
set -u
: "${top_srcdir:?}"
if out=$(cd "$top_srcdir" && grep -rnE '(^|[^A-Za-z0-9_.])/wor[k]/' tests .ci); then
	echo "FAIL: absolute paths of this machine in tests:"
	echo "$out"
	exit 1
fi
echo "paths: no absolute machine path in tests/ or .ci/"
