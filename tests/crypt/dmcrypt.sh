#!/bin/sh
# SPDX-License-Identifier: MIT
# crypt against a real Linux kernel's dm-crypt.
#
# For four settings (512/4096-byte sectors, AES-256/AES-128, IV offsets,
# tweak in sector-size or 512-byte units), the host writes random
# plaintext through `file:X | crypt:...` and exports the raw ciphertext
# file X over NBD (`file:X | nbd:...`; nbdkit's file plugin while this
# build has no NBD export).  A Debian kernel booted under QEMU
# (../shared/tools/vmclient) attaches it with nbd-client, opens it with
# `cryptsetup open --type plain --cipher aes-xts-plain64 ...` and
#  1. checks the plaintext's SHA-256 (dm-crypt decrypts what libnexus
#     encrypted);
#  2. copies the plaintext elsewhere on the volume and zeroes a range,
#     through dm-crypt; the host then reads both through libnexus crypt
#     (libnexus decrypts what dm-crypt encrypted).
# Skips (77) only when the vmclient tool or QEMU is unavailable.
set -u
srcdir=${srcdir:-.}
IO=./tests/crypt/crypt-io
top=$(cd "$srcdir" && pwd)
. "$top/tests/vmclient.sh"
vmclient_find || { echo "SKIP: ../shared/tools/vmclient/run.sh not found"; exit 77; }
RUN=$VMCLIENT_RUN
command -v python3 >/dev/null || { echo "SKIP: python3 needed"; exit 77; }

W=$(mktemp -d "${TMPDIR:-/tmp}/crypt-dm.XXXXXX") || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
umask 077

. "${srcdir:-.}/tests/scratch.sh" # free_port, wait_port

# Export the raw file with libnexus if this build has the NBD export.
SERVER=nbdkit
"$IO" "null:size=1M | nbd:listen=127.0.0.1:$(free_port)" serve >"$W/probe" 2>&1 &
probe=$!
for _ in $(seq 50); do
	grep -qs serving "$W/probe" && { SERVER=libnexus; break; }
	kill -0 $probe 2>/dev/null || break
	sleep 0.1
done
kill $probe 2>/dev/null
wait $probe 2>/dev/null
if [ "$SERVER" = nbdkit ]; then
	command -v nbdkit >/dev/null || { echo "FAIL: no NBD export in this build and no nbdkit"; exit 1; }
	echo "note: this build has no NBD export ($(head -1 "$W/probe")); serving with nbdkit"
fi

MB=1048576
# name  crypt options                                   cryptsetup options                                  nbd block
CASES="a:sector-size=512:--key-size=512:512
b:sector-size=4096,iv-large-sectors=on:--key-size=512,--sector-size=4096,--iv-large-sectors:4096
c:sector-size=512,key-size=256,iv-offset=1000:--key-size=256,--skip=1000:512
d:sector-size=4096,iv-large-sectors=off,iv-offset=16:--key-size=512,--sector-size=4096,--skip=16:4096"

guest=$W/guest.sh
echo 'rc=0' > "$guest"
n=0
for c in $CASES; do
	name=${c%%:*}; rest=${c#*:}
	opts=${rest%%:*}; rest=${rest#*:}
	cs=$(echo "${rest%%:*}" | tr ',' ' '); bs=${rest#*:}
	bits=512
	case $opts in *key-size=256*) bits=256 ;; esac
	head -c $((bits / 8)) /dev/urandom > "$W/$name.key"
	head -c $((8 * MB)) /dev/urandom > "$W/$name.img"
	head -c $((3 * MB)) /dev/urandom > "$W/$name.plain"
	"$IO" -g 3000 "file:$W/$name.img | crypt:$opts,key-file=$W/$name.key" \
		write 0 "$W/$name.plain" || exit 1
	port=$(free_port)
	if [ "$SERVER" = libnexus ]; then
		"$IO" "file:$W/$name.img | nbd:listen=127.0.0.1:$port" serve \
			>"$W/$name.srv" 2>&1 &
	else
		nbdkit -f -i 127.0.0.1 -p "$port" file "$W/$name.img" \
			>"$W/$name.srv" 2>&1 &
	fi
	pid=$!
	PIDS="$PIDS $pid"
	wait_port "$port" $pid || { echo "FAIL: server for $name: $(cat "$W/$name.srv")"; exit 1; }
	sha=$(sha256sum < "$W/$name.plain" | cut -d' ' -f1)
	# the key as octal escapes for the guest's printf
	oct=$(od -An -v -to1 "$W/$name.key" | tr -s ' \n' ' ' | sed 's/ *$//; s/^ //; s/ /\\/g; s/^/\\/')
	cat >> "$guest" <<EOF
printf '$oct' > /tmp/$name.key
nbd-client 10.0.2.2 $port /dev/nbd$n -b $bs || { echo "CASE $name nbd-client failed"; rc=1; }
cryptsetup open --type plain --cipher aes-xts-plain64 $cs --key-file /tmp/$name.key /dev/nbd$n c$name || { echo "CASE $name cryptsetup failed"; rc=1; }
got=\$(dd if=/dev/mapper/c$name bs=1M count=3 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "\$got" = "$sha" ]; then echo "CASE $name read-ok"; else echo "CASE $name read-MISMATCH \$got"; rc=1; fi
dd if=/dev/mapper/c$name of=/dev/mapper/c$name bs=1M count=3 seek=4 conv=notrunc 2>/dev/null || rc=1
dd if=/dev/zero of=/dev/mapper/c$name bs=512k count=1 seek=14 conv=notrunc 2>/dev/null || rc=1
sync
cryptsetup close c$name || rc=1
nbd-client -d /dev/nbd$n
EOF
	n=$((n + 1))
done
echo 'exit $rc' >> "$guest"

out=$W/vm.out
"$RUN" "$guest" 900 > "$out" 2>&1
vmrc=$(vmclient_rc "$out")
if [ -z "$vmrc" ]; then
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "SKIP: QEMU is not available"; tail -5 "$out"; exit 77
	fi
	echo "FAIL: the VM did not run the script"; tail -40 "$out"; exit 1
fi
grep '^CASE' "$out"
fail=0
[ "$vmrc" = 0 ] || { echo "FAIL: guest script exit status $vmrc"; tail -30 "$out"; fail=1; }
for c in $CASES; do
	name=${c%%:*}; rest=${c#*:}; opts=${rest%%:*}
	grep -q "^CASE $name read-ok" "$out" ||
		{ echo "FAIL $name: dm-crypt did not read back what libnexus wrote"; fail=1; }
	"$IO" -g 777 "file:$W/$name.img | crypt:$opts,key-file=$W/$name.key" \
		read $((4 * MB)) $((3 * MB)) "$W/$name.back" || fail=1
	if cmp -s "$W/$name.back" "$W/$name.plain"; then
		echo "ok   $name: libnexus read back what dm-crypt wrote"
	else
		echo "FAIL $name: libnexus did not read back what dm-crypt wrote"; fail=1
	fi
	"$IO" "file:$W/$name.img | crypt:$opts,key-file=$W/$name.key" \
		read $((7 * MB)) $((MB / 2)) "$W/$name.zero" || fail=1
	if [ -s "$W/$name.zero" ] &&
	   [ "$(tr -d '\000' < "$W/$name.zero" | wc -c)" = 0 ]; then
		echo "ok   $name: zeroes written by dm-crypt read back as zeroes"
	else
		echo "FAIL $name: zeroes written by dm-crypt do not read back"; fail=1
	fi
done
echo "server: $SERVER"
exit $fail
