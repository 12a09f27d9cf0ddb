#!/bin/sh
# nexus-copy between files: data identical, holes and zero blocks stay
# holes, --verify, size checks, errors that name the offset, and
# --target-is-zero caught by --verify when it is a lie.
. "${srcdir:-.}/tests/tools/common.sh"
MiB=1048576

# SRC: 64 MiB, data at 3 places, a written-zero region, holes elsewhere
truncate -s 64M "$T/src.img"
head -c $((5 * MiB)) /dev/urandom | dd of="$T/src.img" bs=1M seek=2 conv=notrunc status=none
head -c $((1 * MiB)) /dev/urandom | dd of="$T/src.img" bs=1M seek=30 conv=notrunc status=none
head -c 12288 /dev/urandom | dd of="$T/src.img" bs=4096 seek=$((60 * 256 + 1)) conv=notrunc status=none
dd if=/dev/zero of="$T/src.img" bs=1M seek=40 count=8 conv=notrunc status=none
data=$((6 * MiB + 12288))
[ "$(allocated "$T/src.img")" -ge $((data + 8 * MiB)) ] ||
	skip "this filesystem does not keep written zeroes allocated"

# into a new sparse file
truncate -s 64M "$T/dst.img"
"$COPY" --verify "file:$T/src.img" "file:$T/dst.img" 2> "$T/err" ||
	{ cat "$T/err"; fail "copy exited $?"; }
cmp "$T/src.img" "$T/dst.img" || fail "data differs"
grep -q 'verify: DST matches SRC' "$T/err" || fail "no verify message"
alloc=$(allocated "$T/dst.img")
echo "SRC allocated $(allocated "$T/src.img"), DST allocated $alloc, data $data"
# the written zeroes became a hole too; allow a filesystem block per extent
[ "$alloc" -le $((data + 64 * 1024)) ] || fail "DST not sparse: $alloc bytes allocated"

# onto a non-zero DST: zero ranges must be zeroed (punched), not skipped
head -c $((64 * MiB)) /dev/urandom > "$T/dirty.img"
"$COPY" -q "file:$T/src.img" "file:$T/dirty.img" || fail "copy onto dirty exited $?"
cmp "$T/src.img" "$T/dirty.img" || fail "dirty DST: data differs"
[ "$(allocated "$T/dirty.img")" -le $((data + 64 * 1024)) ] ||
	fail "dirty DST: zero ranges were written, not punched"

# --no-sparse writes every byte
rm -f "$T/full.img"; truncate -s 64M "$T/full.img"
"$COPY" -q --no-sparse "file:$T/src.img" "file:$T/full.img" || fail "--no-sparse exited $?"
cmp "$T/src.img" "$T/full.img" || fail "--no-sparse: data differs"
[ "$(allocated "$T/full.img")" -ge $((64 * MiB)) ] || fail "--no-sparse left holes"

# small requests, one at a time, through transforms on both sides
rm -f "$T/t.img"; truncate -s 64M "$T/t.img"
"$COPY" -q --verify -n 1 -b 4K "file:$T/src.img | fault:enable=off" \
	"file:$T/t.img | throttle:bps=1G" || fail "-n 1 -b 4K exited $?"
cmp "$T/src.img" "$T/t.img" || fail "-n 1 -b 4K: data differs"

# --target-is-zero on a DST that is not: --verify must catch the lie
# (0xff everywhere: random bytes could be 0 where the check looks)
tr '\0' '\377' < /dev/zero | head -c $((64 * MiB)) > "$T/lie.img"
if "$COPY" -q --verify --target-is-zero "file:$T/src.img" "file:$T/lie.img" 2> "$T/err"; then
	fail "--verify missed a difference"
fi
grep -q 'DST differs from SRC at offset 0$' "$T/err" || { cat "$T/err"; fail "verify message"; }

# sizes: a smaller DST is refused, a larger one keeps its tail
truncate -s 32M "$T/small.img"
if "$COPY" -q "file:$T/src.img" "file:$T/small.img" 2> "$T/err"; then
	fail "copied onto a smaller DST"
fi
grep -q 'DST is smaller than SRC' "$T/err" || fail "no size message"
head -c $((65 * MiB)) /dev/urandom > "$T/big.img"
tail -c $MiB "$T/big.img" > "$T/tail"
"$COPY" "file:$T/src.img" "file:$T/big.img" 2> "$T/err" || fail "larger DST exited $?"
grep -q 'DST is larger' "$T/err" || fail "no note for a larger DST"
cmp -n $((64 * MiB)) "$T/src.img" "$T/big.img" || fail "larger DST: data differs"
tail -c $MiB "$T/big.img" | cmp - "$T/tail" || fail "larger DST: tail changed"

# an I/O error names the operation, the offset and the side
truncate -s 64M "$T/e.img"
if "$COPY" -q "file:$T/src.img" \
	"file:$T/e.img | fault:ops=write,start=30M,end=31M,errno=ENOSPC" 2> "$T/err"; then
	fail "copy ignored a write error"
fi
grep -q "write of .* at offset 31457280 on DST: No space left on device" "$T/err" ||
	{ cat "$T/err"; fail "write error message"; }
if "$COPY" -q "file:$T/src.img | fault:ops=read,start=2M,end=3M" "file:$T/e.img" 2> "$T/err"; then
	fail "copy ignored a read error"
fi
grep -q "read of .* at offset 2097152 on SRC: Input/output error" "$T/err" ||
	{ cat "$T/err"; fail "read error message"; }

# -p: a bar per phase that ends at 100%, then the summary
rm -f "$T/p.img"; truncate -s 64M "$T/p.img"
"$COPY" -p --verify "file:$T/src.img" "file:$T/p.img" 2> "$T/err" || fail "-p exited $?"
tr '\r' '\n' < "$T/err" > "$T/bars"
grep -q '^.*copy   \[#\{40\}\] 100% 64.0 MiB/64.0 MiB' "$T/bars" || { cat "$T/bars"; fail "no final copy bar"; }
grep -q '^.*verify \[#\{40\}\] 100% 64.0 MiB/64.0 MiB' "$T/bars" || { cat "$T/bars"; fail "no final verify bar"; }
grep -q '^nexus-copy: copied 64.0 MiB in .* data, .* zero' "$T/bars" || fail "no summary"

# --rate: 4 MiB of data at 8 MiB/s takes about half a second (bounds
# that survive a loaded machine)
head -c $((4 * MiB)) /dev/urandom > "$T/r.src"
rm -f "$T/r.dst"; truncate -s 4M "$T/r.dst"
t0=$(date +%s%N)
"$COPY" -q --rate 8M -b 64K "file:$T/r.src" "file:$T/r.dst" || fail "--rate exited $?"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "4 MiB at --rate 8M: $ms ms"
[ "$ms" -ge 350 ] || fail "--rate 8M copied 4 MiB in $ms ms"
cmp "$T/r.src" "$T/r.dst" || fail "--rate: data differs"
"$COPY" --rate 0 a b > /dev/null 2>&1; [ $? -eq 2 ] || fail "--rate 0: want exit 2"

# SIGINT cancels: requests in flight complete, exit 1, "interrupted"
rm -f "$T/i.img"; truncate -s 64M "$T/i.img"
"$COPY" -q --no-sparse --rate 4M "file:$T/src.img" "file:$T/i.img" 2> "$T/err" &
pid=$!
sleep 0.5
kill -INT $pid
t0=$(date +%s%N)
wait $pid; st=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $st -eq 1 ] || fail "interrupted copy exited $st"
grep -q '^nexus-copy: interrupted$' "$T/err" || { cat "$T/err"; fail "no interrupted message"; }
[ "$ms" -lt 3000 ] || fail "interrupted copy took $ms ms to stop"

# bad arguments
"$COPY" "file:$T/src.img" > /dev/null 2>&1; [ $? -eq 2 ] || fail "one argument: want exit 2"
"$COPY" -n 0 a b > /dev/null 2>&1; [ $? -eq 2 ] || fail "-n 0: want exit 2"
if "$COPY" -q "file:$T/nope.img" "file:$T/dst.img" 2> "$T/err"; then fail "missing SRC"; fi
grep -q "SRC: .*nope.img" "$T/err" || fail "missing SRC message"
echo ok
