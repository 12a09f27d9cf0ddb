#!/bin/sh
# SPDX-License-Identifier: MIT
# make check: go vet, go test -race and the example program of the Go
# binding, built with cgo against the library just built in this tree (an
# uninstalled libnexus.pc is generated for pkg-config).  Runs from the top
# build directory; $srcdir is set by the automake test harness.  Works on a
# read-only source tree (distcheck): nothing is written next to the
# sources.  Exit 77 (skip) only when Go is not installed.
set -e
srcdir=${srcdir:-.}
top_srcdir=$(cd "$srcdir" && pwd)
top_builddir=$(pwd)
libdir=$top_builddir/lib/.libs
GO=${GO:-go}

if ! command -v "$GO" >/dev/null 2>&1; then
	echo "SKIP: no Go toolchain (apt-get install golang-go)"
	exit 77
fi
[ -f "$libdir/libnexus.so.0" ] || { echo "FAIL: $libdir/libnexus.so.0 not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-go.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# pkg-config finds the headers of this source tree and the library of
# this build tree.
mkdir -p "$tmp/pkgconfig"
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
cat > "$tmp/pkgconfig/libnexus.pc" <<PC
Name: libnexus
Description: libnexus (uninstalled, $top_builddir)
Version: ${version:-1.0.0}
Cflags: -I$top_srcdir/include
Libs: -L$libdir -lnexus
PC
PKG_CONFIG_PATH=$tmp/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# test plugins built by make check (tests/graph/nexus-tee.la)
NEXUS_TEST_PLUGIN_DIR=$top_builddir/tests/graph/.libs
# No network, no module proxy, no toolchain downloads: the module has no
# dependencies outside the standard library.
GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=-mod=readonly
CGO_ENABLED=1
export PKG_CONFIG_PATH LD_LIBRARY_PATH NEXUS_TEST_PLUGIN_DIR GOPROXY GOSUMDB GOTOOLCHAIN GO111MODULE \
	GOFLAGS CGO_ENABLED
# The build cache: the user's if it is usable, else a private one.
gocache=$("$GO" env GOCACHE 2>/dev/null || true)
if [ -z "$gocache" ] || [ "$gocache" = off ] ||
   ! mkdir -p "$gocache" 2>/dev/null || [ ! -w "$gocache" ]; then
	GOCACHE=$tmp/cache
	export GOCACHE
fi
[ -n "${GOPATH:-}" ] || [ -n "${HOME:-}" ] || { GOPATH=$tmp/gopath; export GOPATH; }

# A library built with --enable-sanitizers: the race detector (TSan) and
# ASan cannot share a process, so test without -race, with the ASan
# runtime preloaded into the test programs only (not into the go tool,
# the compiler, or the outside clients the tests run).
race=-race
run=
if ldd "$libdir/libnexus.so.0" 2>/dev/null | grep -q libasan; then
	race=
	cat > "$tmp/asan-exec" <<SH
#!/bin/sh
LD_PRELOAD=$(${CC:-gcc} -print-file-name=libasan.so) \\
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 exec "\$@"
SH
	chmod +x "$tmp/asan-exec"
	run=$tmp/asan-exec
fi

cd "$top_srcdir/bindings/go"
echo "$("$GO" version); library: $libdir"
set -x
"$GO" vet ./...
timeout 900 "$GO" test $race ${run:+-exec "$run"} -count=1 -timeout 600s -v ./...
"$GO" build -o "$tmp/hello" ./examples/hello
$run "$tmp/hello" "file:$tmp/hello.img,create=on,size=1M" | tee "$tmp/hello.out"
grep -q '(ok)' "$tmp/hello.out"
head -c 19 "$tmp/hello.img" | grep -q 'hello from libnexus'
if $run "$tmp/hello" "file:$tmp/missing.img" 2>"$tmp/hello.err"; then
	echo "FAIL: hello succeeded on a missing file"; exit 1
fi
grep -q 'missing.img' "$tmp/hello.err"
