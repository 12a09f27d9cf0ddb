#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark of nexus-copy against the tools a user would otherwise pick,
# doing the same copy in the same run (not part of make check):
#
#   qemu-img convert -n -f raw -O raw SRC DST      (qemu's default: in order)
#   qemu-img convert -n -W -m 16 ...               (out of order, 16 coroutines)
#   nbdcopy SRC DST                                (libnbd's copier)
#   nexus-copy SRC DST                             (16 x 256 KiB in flight)
#
# SRC is a file on tmpfs of SIZE MiB (default 1024) with some holes:
# data in DATA% of it (default 75%) as 4 MiB extents spread over the
# file, holes in between.  DST is a fresh sparse file of the same size
# for every run.  Two cases:
#   file: file to file;
#   nbd:  SRC served by nexus-pipe over NBD (Unix socket), copied to a
#         file by each client (nexus-copy with its nbd:// source).
# Every copy is checked with cmp once (outside the timing).  Runs are
# interleaved (A B C D, A B C D, ...) so that noise from other processes
# hits every tool alike; the median of RUNS runs is reported, with the
# ratio peer / nexus-copy (> 1: nexus-copy is faster).  Wall time
# suffers most from other load on the machine, so CPU time (user +
# system of the process and its threads, io_uring workers included) is
# reported too, as MiB copied per CPU-second.
#
#   tests/bench/copy.sh [-n RUNS] [-s SIZE_MB] [-d DATA_PCT] [-B BUILDDIR] [-c file|nbd]
set -u

RUNS=5
SIZE_MB=1024
DATA=75
B=
CASES="file nbd"
while getopts n:s:d:B:c: opt; do
	case $opt in
	n) RUNS=$OPTARG ;;
	s) SIZE_MB=$OPTARG ;;
	d) DATA=$OPTARG ;;
	B) B=$OPTARG ;;
	c) CASES=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-s SIZE_MB] [-d DATA_PCT] [-B BUILDDIR] [-c file|nbd]" >&2
	   exit 2 ;;
	esac
done
if [ -z "$B" ]; then
	for d in . build ..; do
		[ -x "$d/examples/nexus-copy" ] && { B=$d; break; }
	done
fi
COPY=${B:-.}/examples/nexus-copy
PIPE=${B:-.}/examples/nexus-pipe
[ -x "$COPY" ] || { echo "no examples/nexus-copy: build first, or -B BUILDDIR" >&2; exit 2; }
# In a build tree examples/nexus-copy is libtool's wrapper script, which
# costs more than a small copy: run the real binary.
if [ -x "${B:-.}/examples/.libs/nexus-copy" ]; then
	COPY=${B:-.}/examples/.libs/nexus-copy
	LD_LIBRARY_PATH=$(cd "${B:-.}/lib/.libs" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export LD_LIBRARY_PATH
fi
for t in qemu-img nbdcopy python3; do
	command -v $t >/dev/null || { echo "$t is needed" >&2; exit 2; }
done

W=$(mktemp -d /dev/shm/nexus-copy-bench.XXXXXX) || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# SRC: 4 MiB extents of random data where (extent * 37 % 100) < DATA
echo "creating a $SIZE_MB MiB SRC on tmpfs with ~$DATA% data ..."
truncate -s "${SIZE_MB}M" "$W/src.img"
head -c 4M /dev/urandom > "$W/chunk"
i=0
while [ $i -lt $((SIZE_MB / 4)) ]; do
	if [ $((i * 37 % 100)) -lt "$DATA" ]; then
		# a different 4 MiB each time: rotate the chunk by i KiB
		{ tail -c +$((i * 1024 % 4194304 + 1)) "$W/chunk"
		  head -c $((i * 1024 % 4194304)) "$W/chunk"; } |
			dd of="$W/src.img" bs=4M seek=$i conv=notrunc status=none
	fi
	i=$((i + 1))
done
alloc=$(( $(stat -c %b "$W/src.img") * 512 / 1048576 ))
echo "SRC: $SIZE_MB MiB, $alloc MiB allocated"

fresh_dst() { rm -f "$W/dst.img"; truncate -s "${SIZE_MB}M" "$W/dst.img"; }

# run_tool CMD...: one timed run into a fresh DST; prints
# "wall-seconds cpu-seconds"
run_tool() {
	fresh_dst
	/usr/bin/time -f "%e %U %S" -o "$W/time" "$@" > "$W/out" 2>&1 ||
		{ echo "FAILED: $*" >&2; cat "$W/out" >&2; return 1; }
	awk '{ print $1, $2 + $3 }' "$W/time"
}

bench_case() { # CASE SRC_FOR_QEMU SRC_FOR_NBDCOPY SRC_FOR_NEXUS
	case=$1
	set -- \
		"qemu-img convert -n" "qemu-img convert -n -f raw -O raw $2 $W/dst.img" \
		"qemu-img convert -n -W -m 16" "qemu-img convert -n -W -m 16 -f raw -O raw $2 $W/dst.img" \
		"nbdcopy" "nbdcopy $3 $W/dst.img" \
		"nexus-copy" "$COPY -q $4 file:$W/dst.img"
	# correctness once, untimed
	for k in 1 2 3 4; do
		eval "cmd=\${$((k * 2))}"
		eval "name=\${$((k * 2 - 1))}"
		fresh_dst
		sh -c "$cmd" > "$W/out" 2>&1 || { echo "FAILED: $cmd" >&2; cat "$W/out" >&2; exit 1; }
		cmp -s "$W/src.img" "$W/dst.img" || { echo "$name: DST differs from SRC" >&2; exit 1; }
		: > "$W/times.$k"
	done
	r=1
	while [ $r -le "$RUNS" ]; do
		for k in 1 2 3 4; do
			eval "cmd=\${$((k * 2))}"
			s=$(run_tool sh -c "exec $cmd") || exit 1
			echo "$s" >> "$W/times.$k"
		done
		r=$((r + 1))
	done
	nx=$(cut -d' ' -f1 "$W/times.4" | median)
	nxc=$(cut -d' ' -f2 "$W/times.4" | median)
	echo
	echo "== $case: $SIZE_MB MiB ($alloc MiB data), median of $RUNS runs =="
	printf "%-30s %8s %8s %7s | %8s %9s %7s\n" tool wall-s "MiB/s" ratio \
		cpu-s "MiB/cpu-s" ratio
	for k in 1 2 3 4; do
		eval "name=\${$((k * 2 - 1))}"
		m=$(cut -d' ' -f1 "$W/times.$k" | median)
		c=$(cut -d' ' -f2 "$W/times.$k" | median)
		printf "%-30s %8.3f %8.0f %7.2f | %8.3f %9.0f %7.2f\n" "$name" \
			"$m" "$(echo "$SIZE_MB / $m" | bc -l)" \
			"$(echo "$m / $nx" | bc -l)" "$c" \
			"$(echo "$SIZE_MB / ($c + 0.0001)" | bc -l)" \
			"$(echo "$c / ($nxc + 0.0001)" | bc -l)"
	done
}

for c in $CASES; do
	case $c in
	file)
		bench_case file "$W/src.img" "$W/src.img" "file:$W/src.img"
		;;
	nbd)
		[ -x "$PIPE" ] || { echo "nbd: no nexus-pipe, skipped"; continue; }
		"$PIPE" --list | grep -q '^export nbd' || { echo "nbd: no nbd export, skipped"; continue; }
		"$PIPE" --list | grep -q '^source nbd' || { echo "nbd: no nbd source, skipped"; continue; }
		"$PIPE" -q "file:$W/src.img,readonly=on | nbd:socket=$W/sock" > "$W/pipe.out" 2>&1 &
		PIDS="$PIDS $!"
		for _ in $(seq 1 100); do
			grep -q ready "$W/pipe.out" && break
			sleep 0.1
		done
		U="nbd+unix:///?socket=$W/sock"
		bench_case "nbd (nexus-pipe export over a Unix socket)" \
			"'$U'" "'$U'" "'$U'"
		;;
	*) echo "unknown case $c" >&2; exit 2 ;;
	esac
done
echo
echo "ratio: peer seconds / nexus-copy seconds (> 1: nexus-copy is faster or"
echo "uses less CPU).  Load while measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
