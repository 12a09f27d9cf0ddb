#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer harness of the NBD server's protocol logic with
# clang and run it for a bounded time (NBD_FUZZ_TIME seconds, default
# 20).  Skipped when clang cannot build libFuzzer programs.
. "$(dirname "$0")/fuzz-lib.sh"

fuzz_build nbd-server-fuzz -I. "$srcdir/tests/fuzz/nbd-server-fuzz.c" \
	"$srcdir/lib/exports/nbd-proto.c" "$srcdir/lib/proto/nbd.c"
python3 "$srcdir/tests/fuzz/nbd-seeds.py" "$T/corpus" || exit 1
fuzz_run 72000
exit 0
