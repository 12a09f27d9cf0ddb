#!/bin/sh
# SPDX-License-Identifier: MIT
# make check: the Python binding's pytest suite against the library just
# built in this tree (not an installed one).  Runs from the top build
# directory; $srcdir is set by the automake test harness.  Exit 77 (skip)
# only when no Python with pytest is available.
set -e
srcdir=${srcdir:-.}
top_srcdir=$(cd "$srcdir" && pwd)
top_builddir=$(pwd)
lib=$top_builddir/lib/.libs/libnexus.so.0

py=
for cand in ${PYTHON:-} /usr/bin/python3 python3; do
	if command -v "$cand" >/dev/null 2>&1 &&
	   "$cand" -c 'import sys, pytest; sys.exit(sys.version_info < (3, 8))' \
		>/dev/null 2>&1; then
		py=$cand
		break
	fi
done
if [ -z "$py" ]; then
	echo "SKIP: no python3 >= 3.8 with pytest (apt-get install python3-pytest)"
	exit 77
fi
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }

NEXUS_LIBRARY=$lib
# test plugins built by make check (tests/graph/nexus-tee.la)
NEXUS_TEST_PLUGIN_DIR=$top_builddir/tests/graph/.libs
LD_LIBRARY_PATH=$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
PYTHONPATH=$top_srcdir/bindings/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1   # the source tree may be read-only (distcheck)
export NEXUS_LIBRARY NEXUS_TEST_PLUGIN_DIR LD_LIBRARY_PATH PYTHONPATH PYTHONDONTWRITEBYTECODE

# A library built with --enable-sanitizers needs the ASan runtime loaded
# first in an uninstrumented interpreter; Python's own allocations are not
# ours to leak-check.
if ldd "$lib" 2>/dev/null | grep -q libasan; then
	LD_PRELOAD=$(${CC:-gcc} -print-file-name=libasan.so)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	export LD_PRELOAD ASAN_OPTIONS
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-pytest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "python: $py ($("$py" --version 2>&1)); library: $lib"
timeout 600 "$py" -m pytest -v -p no:cacheprovider --basetemp="$tmp/t" \
	-o console_output_style=classic \
	"$top_srcdir/bindings/python/tests"
