#!/bin/sh
# SPDX-License-Identifier: MIT
# The example plugins as a third party builds and uses them: libnexus is
# installed into a staging prefix (make install DESTDIR=...); pattern and
# checksum are copied out of the tree and built by their own Makefiles
# with nothing but the staged headers and pkg-config; the staged
# nexus-pipe and nexus-copy load them by path (-P) and by name
# (NEXUS_PLUGIN_PATH), run I/O through `pattern | checksum`, detect a
# corrupted block across runs through a sidecar, and serve the pipelines
# over NBD to qemu-img and qemu-io.
#
# Run through the generated wrapper tests/plugins/test-staging, which
# sets NX_BUILDDIR, NX_SRCDIR, the install directories and MAKE, CC,
# PKG_CONFIG as configured.
set -u
: "${NX_BUILDDIR:?run tests/plugins/test-staging, not this script}"

. "$NX_SRCDIR/tests/scratch.sh"
scratch staging
need "$PKG_CONFIG"
need python3

# ---- install into a staging prefix ------------------------------------
stage=$T/stage
(
	unset MAKEFLAGS MFLAGS MAKELEVEL
	cd "$NX_BUILDDIR" && $MAKE install DESTDIR="$stage"
) > "$T/install.log" 2>&1 || { tail -30 "$T/install.log"; fail "make install"; }
for f in "$NX_INCLUDEDIR/nexus/nexus.h" "$NX_INCLUDEDIR/nexus/nexus_driver.h" \
	"$NX_LIBDIR/pkgconfig/libnexus.pc" "$NX_BINDIR/nexus-pipe"; do
	[ -e "$stage$f" ] || fail "not installed: $f"
done

# pkg-config sees only the staging install
PKG_CONFIG_SYSROOT_DIR=$stage
PKG_CONFIG_LIBDIR=$stage$NX_LIBDIR/pkgconfig
export PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
unset PKG_CONFIG_PATH
"$PKG_CONFIG" --exists libnexus || fail "pkg-config does not find libnexus"
case $("$PKG_CONFIG" --variable=plugindir libnexus) in
*/nexus/plugins) ;;
*) fail "libnexus.pc has no plugindir" ;;
esac

# ---- build the examples out of tree -----------------------------------
for p in Makefile pattern checksum; do
	cp -R "$NX_SRCDIR/examples/plugins/$p" "$T/$p"
done
chmod -R u+w "$T"
rm -f "$T"/*/*.o "$T"/*/*.so "$T"/*/*.lo
(
	unset MAKEFLAGS MFLAGS MAKELEVEL
	cd "$T" && $MAKE CC="$CC" PKG_CONFIG="$PKG_CONFIG"
) > "$T/plugins.log" 2>&1 || { cat "$T/plugins.log"; fail "building the plugins out of tree"; }
# make install puts them in pkg-config's plugindir
(
	unset MAKEFLAGS MFLAGS MAKELEVEL
	cd "$T" && $MAKE PKG_CONFIG="$PKG_CONFIG" install DESTDIR="$T/pinst"
) > "$T/plugins-install.log" 2>&1 || { cat "$T/plugins-install.log"; fail "make install of the plugins"; }
for p in pattern checksum; do
	[ -f "$T/$p/nexus-$p.so" ] || fail "no nexus-$p.so"
	# the headers came from the staging install, not from the tree
	grep -- "nexus-$p.so" "$T/plugins.log" | grep -q -- "-I$stage" ||
		{ cat "$T/plugins.log"; fail "$p: not built against the staging headers"; }
	grep -- "nexus-$p.so" "$T/plugins.log" | grep -q -- "-fPIC -shared" ||
		fail "$p: not -fPIC -shared"
	find "$T/pinst" -name "nexus-$p.so" -path '*/nexus/plugins/*' | grep -q . ||
		fail "$p not installed into plugindir"
done
grep -q -- "$NX_SRCDIR/include" "$T/plugins.log" && fail "used the source tree's headers"

# ---- the staged tools load them ---------------------------------------
LD_LIBRARY_PATH=$stage$NX_LIBDIR
export LD_LIBRARY_PATH
PIPE=$stage$NX_BINDIR/nexus-pipe
COPY=$stage$NX_BINDIR/nexus-copy
unset NEXUS_PLUGIN_PATH

"$PIPE" --list -P "$T/pattern/nexus-pattern.so" -P "$T/checksum/nexus-checksum.so" \
	> "$T/list" 2>&1 || { cat "$T/list"; fail "nexus-pipe --list -P"; }
grep -q "^source pattern (plugin $T/pattern/nexus-pattern.so)" "$T/list" ||
	{ cat "$T/list"; fail "pattern not listed"; }
grep -q "^transform checksum (plugin " "$T/list" || fail "checksum not listed"
grep -q "block-size .*size .*\[default: 4096\]" "$T/list" || fail "checksum options not listed"

# by name: unknown without a path, found with NEXUS_PLUGIN_PATH
"$PIPE" --check 'pattern:size=64M | checksum' > "$T/c1" 2>&1 &&
	fail "pattern found without a plugin path"
grep -q "nexus-pattern.so" "$T/c1" || { cat "$T/c1"; fail "unknown-driver message"; }
NEXUS_PLUGIN_PATH=$T/pattern:$T/checksum
export NEXUS_PLUGIN_PATH
"$PIPE" --check 'pattern:size=64M | checksum' > "$T/c2" 2>&1 ||
	{ cat "$T/c2"; fail "nexus-pipe --check by name"; }
"$PIPE" --check 'pattern:size=64M,colour=red | checksum' > "$T/c3" 2>&1 &&
	fail "an unknown plugin option was accepted"
grep -q "unknown option 'colour'" "$T/c3" || { cat "$T/c3"; fail "option message"; }

# A process that loaded libnexus RTLD_LOCAL (Python's ctypes) can still
# load a plugin built without -lnexus (not with a sanitizer runtime,
# which must come first in the process).
if ! ldd "$stage$NX_LIBDIR/libnexus.so" | grep -q 'lib[atu]san'; then
	python3 - "$stage$NX_LIBDIR/libnexus.so" "$T/pattern/nexus-pattern.so" \
		<<'EOF' || fail "plugin load with libnexus loaded RTLD_LOCAL"
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)
lib.nexus_last_error.restype = ctypes.c_char_p
lib.nexus_dev_pread.restype = ctypes.c_ssize_t
ctx = ctypes.c_void_p()
if lib.nexus_ctx_create(None, ctypes.byref(ctx)):
    sys.exit("ctx: %s" % lib.nexus_last_error())
if lib.nexus_plugin_load(ctx, sys.argv[2].encode()):
    sys.exit("load: %s" % lib.nexus_last_error().decode())
dev = ctypes.c_void_p()
if lib.nexus_dev_open(ctx, b"pattern:size=1M,seed=3", ctypes.byref(dev)):
    sys.exit("open: %s" % lib.nexus_last_error().decode())
buf = ctypes.create_string_buffer(512)
n = lib.nexus_dev_pread(dev, buf, ctypes.c_size_t(512), ctypes.c_uint64(4096))
if n != 512 or buf.raw[:8] != (4096 ^ 3).to_bytes(8, 'big'):
    sys.exit("read: %d %s" % (n, buf.raw[:8].hex()))
lib.nexus_dev_close(dev)
lib.nexus_ctx_destroy(ctx)
EOF
fi

# I/O through pattern | checksum: the pattern formula, independently
"$COPY" -q 'pattern:size=8M,seed=0x5eed | checksum' \
	"file:$T/p.img,create=on,size=8M" > "$T/copy1" 2>&1 ||
	{ cat "$T/copy1"; fail "nexus-copy pattern | checksum"; }
python3 - "$T/p.img" <<'EOF' || fail "pattern content"
import struct, sys
data = open(sys.argv[1], 'rb').read()
assert len(data) == 8 << 20, len(data)
seed = 0x5eed
for off in list(range(0, 65536, 8)) + list(range((8 << 20) - 65536, 8 << 20, 8)) + [4 << 20]:
    want = struct.pack('>Q', off ^ seed)
    if data[off:off + 8] != want:
        sys.exit('word at %d: %s, want %s' % (off, data[off:off+8].hex(), want.hex()))
EOF

# corruption found by another run, through a sidecar
head -c 4M /dev/urandom > "$T/src.img"
SIDE="(file:$T/d.img,create=on,size=4M ; file:$T/d.sums,create=on,size=12K) | checksum"
"$COPY" -q "file:$T/src.img" "$SIDE" > "$T/copy2" 2>&1 || { cat "$T/copy2"; fail "copy into checksum"; }
SIDE="(file:$T/d.img ; file:$T/d.sums) | checksum"
"$COPY" -q "$SIDE" "file:$T/out.img,create=on,size=4M" > "$T/copy3" 2>&1 ||
	{ cat "$T/copy3"; fail "copy out of checksum"; }
cmp "$T/src.img" "$T/out.img" || fail "data differs after checksum"
printf 'X' | dd of="$T/d.img" bs=1 seek=$((3 * 1048576 + 12345)) conv=notrunc status=none
if "$COPY" -q "$SIDE" "file:$T/out2.img,create=on,size=4M" > "$T/copy4" 2>&1; then
	fail "a corrupted block was read without error"
fi
grep -q "block 771 .*CRC32C" "$T/copy4" || { cat "$T/copy4"; fail "no message naming block 771"; }

# ---- over NBD, read by qemu-img and qemu-io ---------------------------
"$PIPE" --list | grep -q '^export nbd' || skip "no nbd export driver (the rest passed)"
need qemu-img
need qemu-io

# start NAME PIPELINE: nexus-pipe in the background; $NAME_URI
start() {
	"$PIPE" -q "$2" > "$T/$1.out" 2> "$T/$1.err" &
	pid=$!
	PIDS="$PIDS $pid"
	for _ in $(seq 1 100); do
		grep -q '^ready' "$T/$1.out" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || { cat "$T/$1.err"; fail "nexus-pipe $1 exited"; }
		sleep 0.1
	done
	grep -q '^ready' "$T/$1.out" || fail "nexus-pipe $1 not ready"
	addr=$(sed -n 's/^listening on //p' "$T/$1.out" | head -n1)
	eval "${1}_URI=nbd://$addr/"
}

"$COPY" -q 'pattern:size=64M' "file:$T/ref.img,create=on,size=64M" > "$T/copy5" 2>&1 ||
	{ cat "$T/copy5"; fail "reference copy"; }
start ro 'pattern:size=64M | checksum | nbd:listen=127.0.0.1:0'
timeout 60 qemu-img compare -f raw -F raw "$T/ref.img" "$ro_URI" > "$T/cmp1" 2>&1 ||
	{ cat "$T/cmp1"; fail "qemu-img compare pattern | checksum over NBD"; }
timeout 60 qemu-img convert -f raw -O raw "$ro_URI" "$T/conv.img" || fail "qemu-img convert"
cmp "$T/ref.img" "$T/conv.img" || fail "converted image differs"
cmp -n 65536 "$T/ref.img" "$T/p.img" > /dev/null 2>&1 && fail "seeds do not matter"

start rw "(file:$T/n.img,create=on,size=16M ; mem:size=64K) | checksum | nbd:listen=127.0.0.1:0"
head -c 16M /dev/urandom > "$T/rnd.img"
timeout 60 qemu-img convert -n -f raw -O raw "$T/rnd.img" "$rw_URI" || fail "qemu-img convert to NBD"
timeout 60 qemu-img compare -f raw -F raw "$T/rnd.img" "$rw_URI" || fail "compare after convert"
timeout 30 qemu-io -f raw -c 'write -P 0x5a 1M 64k' -c 'read -P 0x5a 1M 64k' -c flush "$rw_URI" \
	> "$T/qio1" 2>&1 || { cat "$T/qio1"; fail "qemu-io"; }
grep -q 'read 65536/65536' "$T/qio1" || { cat "$T/qio1"; fail "qemu-io read"; }
# a byte changed in the file under the export: the client gets an error
printf 'Y' | dd of="$T/n.img" bs=1 seek=$((1048576 + 5000)) conv=notrunc status=none
timeout 30 qemu-io -f raw -c 'read -P 0x5a 1M 64k' "$rw_URI" > "$T/qio2" 2>&1
grep -q 'read 65536/65536' "$T/qio2" && { cat "$T/qio2"; fail "corruption not reported over NBD"; }
grep -qi 'error' "$T/qio2" || { cat "$T/qio2"; fail "no error from qemu-io"; }
grep -q 'block 257 .*CRC32C' "$T/rw.err" || { cat "$T/rw.err"; fail "server did not log the mismatch"; }
echo ok
