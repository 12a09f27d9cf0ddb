#!/bin/sh
# libnexus quick start (Debian 12).
#
#   ./quickstart.sh         install what is missing, build, run a demo
#   ./quickstart.sh test    build (if needed) and run the whole test suite
#   ./quickstart.sh deps    only install the packages in .ci/packages
#
# Builds out of tree in ./build (override with BUILD=dir; extra configure
# flags in CONFIGURE_FLAGS).  Installing packages needs root or sudo.
set -eu
cd "$(dirname "$0")"
top=$(pwd)
BUILD=${BUILD:-build}
CONFIGURE_FLAGS=${CONFIGURE_FLAGS:-}
jobs=$(nproc 2>/dev/null || echo 2)

say() { printf '\n==> %s\n' "$*"; }

deps() {
	pkgs=$(sed -e 's/#.*//' .ci/packages | tr -s ' \t\n' '  ')
	missing=
	for p in $pkgs; do
		dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed' || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		echo "all packages of .ci/packages are installed"
		return 0
	fi
	say "installing:$missing"
	if [ "$(id -u)" = 0 ]; then
		sudo=
	elif command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		echo "quickstart: run as root (or install sudo) to install:$missing" >&2
		exit 1
	fi
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing ||
	{ $sudo apt-get update -q &&
	  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing; }
}

build() {
	if [ ! -x configure ] || [ configure.ac -nt configure ]; then
		say "./autogen.sh"
		./autogen.sh
	fi
	mkdir -p "$BUILD"
	if [ ! -f "$BUILD/Makefile" ]; then
		say "configure $CONFIGURE_FLAGS"
		# shellcheck disable=SC2086
		(cd "$BUILD" && "$top/configure" $CONFIGURE_FLAGS)
	fi
	say "make -j$jobs"
	make -C "$BUILD" -j"$jobs"
}

# Print "N passed, N failed" for the automake test logs under a directory.
summary() {
	find "$1" -name '*.trs' -exec cat {} + 2>/dev/null |
	awk '/^:test-result:/ { r[$2]++ }
	END { printf "%d passed, %d failed, %d skipped\n",
		r["PASS"] + r["XFAIL"], r["FAIL"] + r["ERROR"] + r["XPASS"],
		r["SKIP"] }'
}

demo() {
	b=$top/$BUILD
	work=$(mktemp -d "${TMPDIR:-/tmp}/nexus-quickstart.XXXXXX")
	pipe_pid=
	trap 'test -z "$pipe_pid" || kill "$pipe_pid" 2>/dev/null; rm -rf "$work"' EXIT
	cd "$work"

	say "hello: write and read back through the pipeline 'file:vol.img,create=on,size=64M'"
	"$b/examples/hello" "file:vol.img,create=on,size=64M"

	say "nexus-bench: 4k random reads, queue depth 32, one reactor, 3 s, on 'file:vol.img'"
	"$b/examples/nexus-bench" -w randread -b 4k -q 32 -r 1 -t 3 file:vol.img
	say "nexus-bench: the same on the 'null' source (the library's own per-I/O cost)"
	"$b/examples/nexus-bench" -w randread -b 4k -q 32 -r 1 -t 3 null

	if has_driver transform crypt && has_driver export nbd; then
		say "encrypt a volume: nexus-copy file:plain.img 'file:enc.img,create=on,size=64M | crypt:key-file=vol.key'"
		dd if=/dev/zero of=plain.img bs=1M count=64 status=none
		printf 'the quarterly numbers, strictly confidential\n' |
			dd of=plain.img bs=1M seek=1 conv=notrunc status=none
		head -c 64 /dev/urandom > vol.key; chmod 600 vol.key
		"$b/examples/nexus-copy" -q file:plain.img \
			'file:enc.img,create=on,size=64M | crypt:key-file=vol.key'
		echo "plain.img holds the secret $(grep -c 'strictly confidential' plain.img) time(s), enc.img $(grep -c 'strictly confidential' enc.img) times"

		sock=$work/nbd.sock
		say "export it decrypted over NBD: nexus-pipe 'file:enc.img | crypt:key-file=vol.key | nbd:socket=$sock,name=vol'"
		"$b/examples/nexus-pipe" -q "file:enc.img | crypt:key-file=vol.key | nbd:socket=$sock,name=vol" \
			> pipe.out 2>&1 &
		pipe_pid=$!
		n=0
		until grep -q '^ready' pipe.out; do
			n=$((n + 1))
			if [ $n -gt 100 ] || ! kill -0 "$pipe_pid" 2>/dev/null; then
				cat pipe.out; echo "quickstart: nexus-pipe did not start" >&2; exit 1
			fi
			sleep 0.1
		done
		uri="nbd+unix:///vol?socket=$sock"
		say "qemu-img info '$uri'"
		qemu-img info "$uri"
		say "qemu-img convert -O raw '$uri' copy.img; cmp plain.img copy.img"
		qemu-img convert -O raw "$uri" copy.img
		cmp plain.img copy.img
		echo "qemu-img read the plaintext back through file | crypt | nbd"
		kill "$pipe_pid"; wait "$pipe_pid" 2>/dev/null || true; pipe_pid=
		echo "(the whole story, with the ciphertext copied over NBD: doc/story.md)"
	fi
	cd "$top"
	# More demos can be dropped into quickstart.d/*.sh (run with BUILD_DIR set).
	for d in quickstart.d/*.sh; do
		[ -f "$d" ] || continue
		say "$d"
		BUILD_DIR=$b sh "$d"
	done
	say "done: the library is in $BUILD/lib/.libs, the programs in $BUILD/examples"
}

has_driver() { # has_driver KIND NAME
	"$top/$BUILD/examples/nexus-pipe" --list 2>/dev/null | grep -q "^$1 $2\$"
}

case ${1:-demo} in
deps)
	deps ;;
demo)
	deps
	build
	demo ;;
test)
	deps
	build
	say "make check"
	rc=0
	make -C "$BUILD" -j"$jobs" check || rc=$?
	say "test summary ($BUILD)"
	summary "$BUILD"
	exit $rc ;;
*)
	echo "usage: $0 [demo|test|deps]" >&2
	exit 2 ;;
esac
