#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer harness of the NBD server's protocol logic with
# clang and run it for a bounded time (NBD_FUZZ_TIME seconds, default
# 20).  Skipped when clang cannot build libFuzzer programs.
: "${srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
TIME=${NBD_FUZZ_TIME:-20}
OUT=tests/fuzz
BIN=$OUT/nbd-server-fuzz
CLANG=${CLANG:-clang}

command -v "$CLANG" >/dev/null 2>&1 || { echo "SKIP: no clang"; exit 77; }
mkdir -p "$OUT"
if ! "$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined \
	-I"$srcdir/include" -I"$srcdir/lib" -I. \
	"$srcdir/tests/fuzz/nbd-server-fuzz.c" \
	"$srcdir/lib/exports/nbd-proto.c" -o "$BIN" 2>"$OUT/nbd-fuzz-build.log"; then
	if grep -q 'fuzzer' "$OUT/nbd-fuzz-build.log" &&
	   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
	     "$CLANG" -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
		echo "SKIP: $CLANG cannot build libFuzzer programs"
		exit 77
	fi
	cat "$OUT/nbd-fuzz-build.log"
	echo "FAIL: cannot build the harness"
	exit 1
fi
T=$(mktemp -d /tmp/nbd-fuzz.XXXXXX)
trap 'rm -rf "$T"' EXIT
python3 "$srcdir/tests/fuzz/nbd-seeds.py" "$T/corpus" || exit 1
# -rss_limit_mb: the harness never needs much; a leak or a huge
# allocation fails the run
timeout $((TIME + 120)) "$BIN" -max_total_time="$TIME" -rss_limit_mb=512 \
	-max_len=72000 -timeout=10 -print_final_stats=1 \
	-artifact_prefix="$T/" "$T/corpus" >"$T/log" 2>&1
rc=$?
grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss)' "$T/log"
if [ $rc -ne 0 ]; then
	tail -n 60 "$T/log"
	for a in "$T"/crash-* "$T"/leak-* "$T"/timeout-* "$T"/oom-*; do
		[ -f "$a" ] && { echo "artifact:"; od -A d -t x1 "$a" | head -20; }
	done
	echo "FAIL: fuzzer exit status $rc"
	exit 1
fi
exit 0
