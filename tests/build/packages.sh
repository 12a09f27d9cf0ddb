#!/bin/sh
# Every tool a test or CI asks for (need/require TOOL, command -v TOOL)
# comes from a package listed in .ci/packages, so that a fresh Debian 12
# that ran .ci/run has it and nothing skips for want of it.  A tool
# missing from the table below fails the test: add it with its package.
set -u
: "${top_srcdir:?}"
pkgs=$top_srcdir/.ci/packages
[ -f "$pkgs" ] || { echo "FAIL: no .ci/packages"; exit 1; }

package_of() {
	case $1 in
	python3) echo python3 ;;
	nbdkit) echo nbdkit ;;
	qemu-img|qemu-io|qemu-nbd) echo qemu-utils ;;
	qemu-system-x86_64) echo qemu-system-x86 ;;
	nbdinfo|nbdcopy) echo libnbd-bin ;;
	nbdsh) echo python3-libnbd ;;
	openssl) echo openssl ;;
	groff) echo groff ;;
	debugfs|mkfs.ext4) echo e2fsprogs ;;
	fio) echo fio ;;
	ss) echo iproute2 ;;
	unshare) echo util-linux ;;
	timeout|dd|truncate|stat|seq|mktemp) echo coreutils ;;
	clang) echo clang ;;
	doxygen) echo doxygen ;;
	pkg-config) echo pkg-config ;;
	abidiff|abidw) echo abigail-tools ;;
	perf) echo linux-perf ;;
	etcd) echo etcd-server ;;
	*) return 1 ;;
	esac
}

# the tools named by the scripts (variables such as $t are left out)
tools=$(cd "$top_srcdir" && grep -rhv '^[[:space:]]*#' tests .ci |
	grep -oE '(^|[;&|(]|then|do)[[:space:]]*(need|require)[[:space:]]+[^$#;&|)]*|command -v "?[A-Za-z0-9_.+-]+' |
	sed -E 's/.*(need|require|command -v)[[:space:]]+//; s/"//g' |
	tr ' \t' '\n\n' | grep -E '^[A-Za-z][A-Za-z0-9_.+-]*$' | sort -u)
[ -n "$tools" ] || { echo "FAIL: found no tool at all (is the pattern right?)"; exit 1; }
fail=0
for t in $tools; do
	if ! p=$(package_of "$t"); then
		echo "FAIL: tests use '$t': add its Debian package to this table"
		fail=1
	elif ! grep -qx "$p" "$pkgs"; then
		echo "FAIL: tests use '$t' (package $p), not in .ci/packages"
		fail=1
	fi
done
[ $fail = 0 ] && echo "packages: $(echo $tools | wc -w) tools, all from .ci/packages"
exit $fail
