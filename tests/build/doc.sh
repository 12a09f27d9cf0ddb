#!/bin/sh
# The Doxygen documentation of the public headers builds with no warning
# (what `make doc` requires), into a temporary directory.
# Needs abs_top_builddir (doc/Doxyfile), DOXYGEN (AM_TESTS_ENVIRONMENT).
set -u
: "${abs_top_builddir:?}"
DOXYGEN=${DOXYGEN:-doxygen}
command -v "$DOXYGEN" >/dev/null 2>&1 || { echo "SKIP: doxygen not found"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-doc.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
{ cat "$abs_top_builddir/doc/Doxyfile"
  echo "OUTPUT_DIRECTORY = $tmp/out"
  echo "WARN_LOGFILE = $tmp/warnings.log"; } > "$tmp/Doxyfile"
if ! "$DOXYGEN" "$tmp/Doxyfile" > "$tmp/out.log" 2>&1; then
	echo "FAIL: doxygen failed:"; cat "$tmp/out.log"; exit 1
fi
if [ -s "$tmp/warnings.log" ]; then
	echo "FAIL: doxygen warnings (make doc fails on them): document every"
	echo "      public declaration and every parameter of a documented function:"
	cat "$tmp/warnings.log"
	exit 1
fi
[ -f "$tmp/out/html/index.html" ] || { echo "FAIL: no HTML produced"; exit 1; }
n=$(ls "$tmp/out/html" | wc -l)
echo "doc: Doxygen HTML built with no warnings ($n files)"
