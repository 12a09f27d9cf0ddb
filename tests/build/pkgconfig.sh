#!/bin/sh
# Install into a staging directory (make install DESTDIR=...), then build
# examples/hello.c with nothing but `pkg-config --cflags --libs libnexus`
# against the staged files, and run it.  Also checks that every public
# header is installed and that the .pc version is the package version.
# Needs abs_top_srcdir, abs_top_builddir, MAKE, CC, CFLAGS, LDFLAGS,
# PKG_CONFIG, libdir, includedir, PACKAGE_VERSION (AM_TESTS_ENVIRONMENT).
set -u
: "${abs_top_srcdir:?}" "${abs_top_builddir:?}" "${libdir:?}" "${includedir:?}"
CC=${CC:-cc}
MAKE=${MAKE:-make}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
command -v "${PKG_CONFIG%% *}" >/dev/null 2>&1 || { echo "SKIP: no pkg-config"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-pkgconfig.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage

if ! $MAKE -C "$abs_top_builddir" DESTDIR="$stage" install \
	> "$tmp/install.log" 2>&1; then
	echo "FAIL: make install DESTDIR=$stage failed:"
	tail -n 30 "$tmp/install.log"
	exit 1
fi

fail=0
for h in "$abs_top_srcdir"/include/nexus/*.h; do
	if [ ! -f "$stage$includedir/nexus/${h##*/}" ]; then
		echo "FAIL: public header nexus/${h##*/} is not installed: add it to"
		echo "      include_nexus_HEADERS in Makefile.am"
		fail=1
	fi
done

pcdir=$stage$libdir/pkgconfig
[ -f "$pcdir/libnexus.pc" ] || { echo "FAIL: libnexus.pc not installed in $pcdir"; exit 1; }
export PKG_CONFIG_LIBDIR="$pcdir" PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$stage"
ver=$($PKG_CONFIG --modversion libnexus) || { echo "FAIL: pkg-config cannot read libnexus.pc"; exit 1; }
if [ "$ver" != "${PACKAGE_VERSION:-$ver}" ]; then
	echo "FAIL: libnexus.pc says version $ver, package is $PACKAGE_VERSION"
	fail=1
fi
flags=$($PKG_CONFIG --cflags --libs libnexus) || exit 1
echo "pkg-config --cflags --libs libnexus: $flags"

# CFLAGS/LDFLAGS carry e.g. -fsanitize=... of a sanitizer build, which a
# consumer of such a library needs too; nothing else comes from the tree.
# shellcheck disable=SC2086
if ! $CC ${CFLAGS:-} -o "$tmp/hello" "$abs_top_srcdir/examples/hello.c" \
	$flags ${LDFLAGS:-} > "$tmp/cc.log" 2>&1; then
	echo "FAIL: cannot build a consumer with pkg-config's flags:"
	cat "$tmp/cc.log"
	exit 1
fi
if ! LD_LIBRARY_PATH="$stage$libdir" ldd "$tmp/hello" | grep -q "$stage$libdir/libnexus.so"; then
	echo "FAIL: the consumer does not load the staged libnexus.so:"
	LD_LIBRARY_PATH="$stage$libdir" ldd "$tmp/hello"
	exit 1
fi
if ! LD_LIBRARY_PATH="$stage$libdir" timeout 60 "$tmp/hello" 'mem:size=1M' > "$tmp/out" 2>&1; then
	echo "FAIL: the consumer failed:"; cat "$tmp/out"; exit 1
fi
cat "$tmp/out"
grep -q '(ok)' "$tmp/out" || { echo "FAIL: consumer did not read back its data"; exit 1; }
exit $fail
