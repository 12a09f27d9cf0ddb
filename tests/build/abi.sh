#!/bin/sh
# ABI check: compare the built libnexus.so with the committed baseline
# abi/libnexus.abi (libabigail).  Passes on additions (new functions,
# fields appended to the size-stamped structs of abi/libnexus.abignore);
# fails on anything incompatible: a removed or re-versioned symbol
# (abidiff's ABI_INCOMPATIBLE_CHANGE bit) or a changed function or type
# (parameters, struct layout, enum values) that is not such an addition.
#
#   tests/build/abi.sh            the check (make check)
#   tests/build/abi.sh --update   rewrite the baseline (make abi-update)
#
# Needs top_srcdir, top_builddir, ABIDW, ABIDIFF (AM_TESTS_ENVIRONMENT).
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
ABIDW=${ABIDW:-abidw}
ABIDIFF=${ABIDIFF:-abidiff}
so=$top_builddir/lib/.libs/libnexus.so
baseline=$top_srcdir/abi/libnexus.abi
suppr=$top_srcdir/abi/libnexus.abignore

for t in "$ABIDW" "$ABIDIFF"; do
	command -v "$t" >/dev/null 2>&1 ||
		{ echo "SKIP: ${t:-abidw/abidiff} not found (Debian: abigail-tools)"; exit 77; }
done
[ -e "$so" ] || { echo "abi: $so not built"; exit 99; }
if ! LC_ALL=C readelf -S "$so" 2>/dev/null | grep -q '\.debug_info'; then
	echo "SKIP: $so has no debug information (built without -g)"
	exit 77
fi

abidw_cur() { # write the ABI of the built library to $1
	"$ABIDW" --no-corpus-path --no-comp-dir-path --short-locs \
		--no-elf-needed --drop-private-types \
		--headers-dir "$top_srcdir/include/nexus" --out-file "$1" "$so"
}

if [ "${1:-}" = --update ]; then
	abidw_cur "$baseline" || exit 1
	echo "abi: wrote $baseline; review 'git diff abi/' and commit it"
	exit 0
fi

[ -f "$baseline" ] || { echo "FAIL: no baseline $baseline (run make abi-update)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-abi.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
abidw_cur "$tmp/current.abi" || { echo "FAIL: abidw failed"; exit 99; }
"$ABIDIFF" --suppressions "$suppr" "$baseline" "$tmp/current.abi" > "$tmp/report"
rc=$?
cat "$tmp/report"
if [ $((rc & 3)) != 0 ]; then
	echo "FAIL: abidiff could not compare (exit $rc)"
	exit 99
fi
# Count removed and changed functions/variables/symbols in the summaries.
bad=$(awk '/changes summary:/ {
		for (i = 1; i <= NF; i++)
			if ($i ~ /^Removed/ || $i ~ /^Changed/) n += $(i - 1)
	} END { print n + 0 }' "$tmp/report")
if [ $((rc & 8)) != 0 ] || [ "$bad" != 0 ]; then
	cat <<MSG
FAIL: the ABI of libnexus.so changed incompatibly against abi/libnexus.abi
      (abidiff exit $rc; report above).  Public structs may only grow at
      the end when they are size-stamped (abi/libnexus.abignore), exported
      functions may not be removed or change their parameters, enumerators
      may not change value.  If the change is intended and compatible
      (e.g. an enumerator appended, not used as an array size), run
      'make abi-update' and commit abi/libnexus.abi with a message saying
      why it is compatible.
MSG
	exit 1
fi
if [ $((rc & 4)) != 0 ]; then
	echo "abi: compatible additions only (run 'make abi-update' to record them)"
else
	echo "abi: no change against the baseline"
fi
exit 0
