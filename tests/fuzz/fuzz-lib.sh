# SPDX-License-Identifier: MIT
# Shared by the libFuzzer tests (sourced from the build directory, as
# make check runs them).  Skips (77) without clang; sets $srcdir, $TIME
# (NBD_FUZZ_TIME seconds, default 20), $OUT and a scratch directory $T
# (removed at exit) where the caller puts the seeds, in $T/corpus.
: "${srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
TIME=${NBD_FUZZ_TIME:-20}
OUT=tests/fuzz
CLANG=${CLANG:-clang}

command -v "$CLANG" >/dev/null 2>&1 || { echo "SKIP: no clang"; exit 77; }
mkdir -p "$OUT"
T=$(mktemp -d "${TMPDIR:-/tmp}/nexus-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# fuzz_build NAME CLANG-ARGS...: build the harness $OUT/NAME (sets BIN)
# from the sources and flags given, with libFuzzer, ASan and UBSan and
# the include and lib directories of the source tree; the compiler's
# output goes to $OUT/NAME-build.log.  Skips (77) when clang cannot
# build libFuzzer programs at all, fails on any other build error.
fuzz_build() {
	BIN=$OUT/$1
	_log=$OUT/$1-build.log
	shift
	"$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined \
		-I"$srcdir/include" -I"$srcdir/lib" "$@" -o "$BIN" \
		2>"$_log" && return 0
	if grep -q 'fuzzer' "$_log" &&
	   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
	     "$CLANG" -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
		echo "SKIP: $CLANG cannot build libFuzzer programs"
		exit 77
	fi
	cat "$_log"
	echo "FAIL: cannot build the harness"
	exit 1
}

# fuzz_run MAX_LEN: run $BIN on $T/corpus for $TIME seconds with inputs
# of at most MAX_LEN bytes and print its final statistics.  A crash, a
# leak, a timeout or a run past the RSS limit (the harnesses never need
# much) fails the test and shows the log and the input that did it.
# ASan's quarantine of freed memory (256 MB by default) is what grows
# over millions of inputs, not the harness: it is kept at 64 MB, so that
# the 1 GB limit measures the code under test on fast machines too.
fuzz_run() {
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=64" \
	timeout $((TIME + 120)) "$BIN" -max_total_time="$TIME" \
		-rss_limit_mb=1024 -max_len="$1" -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$T/" "$T/corpus" \
		>"$T/log" 2>&1
	_rc=$?
	grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss)' "$T/log"
	[ $_rc -eq 0 ] && return 0
	tail -n 60 "$T/log"
	for a in "$T"/crash-* "$T"/leak-* "$T"/timeout-* "$T"/oom-*; do
		[ -f "$a" ] && { echo "artifact:"; od -A d -t x1 "$a" | head -20; }
	done
	echo "FAIL: fuzzer exit status $_rc"
	exit 1
}
