#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark of the crypt stage, with its peers in the same run (not part
# of make check).  Medians of RUNS runs, runs interleaved so that noise
# from other processes hits every side alike.
#
#   tests/bench/crypt.sh [-t SECONDS] [-n RUNS] [-B BUILDDIR] [-s SIZE_MB] [-p 1|2]
#
# Part 1 -- cipher throughput per core: nexus-bench on ONE reactor drives
#   `null | crypt` and `file | crypt` (file on tmpfs), 4k and 64k blocks,
#   sector-size 512 and 4096, writes (encrypt) and reads (decrypt), QD32,
#   against `openssl speed -elapsed -evp aes-256-xts` (one thread) at the
#   same block size (-bytes), and at 512 bytes for 512-byte sectors.
#   "Per core" is bytes per CPU-second (user + system) of each process,
#   measured the same way for both, so that the load of other processes
#   on the machine cancels out.  Goal: crypt >= 0.8x OpenSSL at the block
#   size.  The same stack without crypt is measured too: the difference
#   is the cost of the stage, and the "stage" column compares that cost
#   alone (MB per CPU-second the stage adds) with OpenSSL at the block
#   size -- what the stage costs on top of any source, e.g. a file on
#   tmpfs whose page-cache copies cost more than the cipher.
# Part 2 -- encrypted export: `file | crypt | nbd` (examples/nexus-pipe)
#   against nbdkit's luks filter over a LUKS image of the same size
#   (qemu-img create -f luks), both on tmpfs, driven by fio's nbd engine:
#   4k randread QD32, 4k randwrite QD32, 1M sequential read QD8; then the
#   same with 4 connections (fio numjobs=4), and driven by nexus-bench's
#   nbd:// client (fio's nbd engine spends a core per connection, so with
#   one connection it measures itself).
#   Goal: libnexus >= 2x nbdkit+luks.  Skipped (with a message) when the
#   NBD export, nexus-pipe, nbdkit's luks filter, qemu-img or fio's nbd
#   engine is missing.
set -u

T=3
RUNS=3
B=
SIZE_MB=1024
PARTS=12
while getopts t:n:B:s:p: opt; do
	case $opt in
	t) T=$OPTARG ;;
	n) RUNS=$OPTARG ;;
	B) B=$OPTARG ;;
	s) SIZE_MB=$OPTARG ;;
	p) PARTS=$OPTARG ;;
	*) echo "usage: $0 [-t SECONDS] [-n RUNS] [-B BUILDDIR] [-s SIZE_MB] [-p 1|2]" >&2
	   exit 2 ;;
	esac
done
if [ -z "$B" ]; then
	for d in . build ..; do
		[ -x "$d/examples/nexus-bench" ] && { B=$d; break; }
	done
fi
BENCH=${B:-.}/examples/nexus-bench
PIPE=${B:-.}/examples/nexus-pipe
[ -x "$BENCH" ] || { echo "no examples/nexus-bench: build first, or -B BUILDDIR" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is needed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

W=$(mktemp -d /dev/shm/nexus-crypt-bench.XXXXXX) || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
umask 077
head -c 64 /dev/urandom > "$W/key"

median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END { if (NR == 0) print "nan";
		      else if (NR % 2) print a[(NR + 1) / 2];
		      else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# MB per CPU-second of a stage alone, from the stack with it (MB/CPU-s
# $1) and without it ($2): the inverse of the difference of costs
stage() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > a) printf "%.1f", 1 / (1 / a - 1 / b); else print "n/a" }'; }
# openssl speed -elapsed on BYTES-byte buffers: "WALL CPU" as nb() below
ossl() {
	python3 - "$1" "$T" <<'PY'
import resource, subprocess, sys
p = subprocess.run(["openssl", "speed", "-elapsed", "-evp", "aes-256-xts",
                    "-bytes", sys.argv[1], "-seconds", sys.argv[2]],
                   capture_output=True, text=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
rate = 0.0
for line in p.stdout.splitlines():
    if line.startswith("AES-256-XTS"):
        rate = float(line.split()[-1].rstrip("k")) / 1000  # MB/s
print("%.1f %.1f" % (rate, rate * float(sys.argv[2]) / (r.ru_utime + r.ru_stime)))
PY
}
# nexus-bench: "WALL CPU" -- MB/s of wall time, and MB per CPU-second
# of the process (user + system, all threads: what one core delivers)
nb() { # workload bs pipeline
	python3 - "$BENCH" -j -w "$1" -b "$2" -q 32 -t "$T" -r 1 "$3" <<'PY' 2>"$W/err" ||
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if p.returncode:
    sys.exit(p.stderr)
j = json.loads(p.stdout)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = r.ru_utime + r.ru_stime
print("%.1f %.1f" % (j["mbps"], j["mbps"] * j["seconds"] / cpu))
PY
		{ echo "nexus-bench failed: $(cat "$W/err")" >&2; echo "0 0"; }
}

part1() {
echo "== part 1: crypt vs openssl speed -evp aes-256-xts, one core, $RUNS runs of ${T}s, medians"
echo "   (load average now: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs)"
head -c 256M /dev/urandom > "$W/plain.img"

# results are kept in files named after the case
for run in $(seq "$RUNS"); do
	for bs in 4096 65536 512; do
		ossl "$bs" >> "$W/ossl.$bs"
	done
	for src in null file; do
		case $src in
		null) s="null:size=1G" ;;
		file) s="file:$W/plain.img" ;;
		esac
		for bs in 4096 65536; do
			for wl in randwrite randread; do
				nb $wl $bs "$s" >> "$W/nb.$src.$bs.none.$wl"
			done
			for ss in 512 4096; do
				for wl in randwrite randread; do
					nb $wl $bs "$s | crypt:key-file=$W/key,sector-size=$ss" \
						>> "$W/nb.$src.$bs.$ss.$wl"
				done
			done
		done
	done
done

printf '%-13s %6s %6s %-5s %9s %10s %10s %6s %10s %6s %9s %6s\n' stack bs sector op \
	"MB/s" "MB/CPU-s" "ossl@bs" ratio "ossl@sect" ratio stage ratio
for src in null file; do
	for bs in 4096 65536; do
		o_bs=$(median $(awk '{ print $2 }' "$W/ossl.$bs"))
		for ss in 512 4096; do
			o_ss=$(median $(awk '{ print $2 }' "$W/ossl.$ss"))
			for wl in randwrite randread; do
				f="$W/nb.$src.$bs.$ss.$wl"
				v=$(median $(awk '{ print $1 }' "$f"))
				c=$(median $(awk '{ print $2 }' "$f"))
				op=write; [ $wl = randread ] && op=read
				c0=$(median $(awk '{ print $2 }' "$W/nb.$src.$bs.none.$wl"))
				st=$(stage "$c" "$c0")
				printf '%-13s %6s %6s %-5s %9s %10s %10s %6s %10s %6s %9s %6s\n' \
					"$src|crypt" $bs $ss $op "$v" "$c" "$o_bs" \
					"$(ratio "$c" "$o_bs")" "$o_ss" "$(ratio "$c" "$o_ss")" \
					"$st" "$(ratio "$st" "$o_bs")"
			done
		done
		for wl in randwrite randread; do
			f="$W/nb.$src.$bs.none.$wl"
			op=write; [ $wl = randread ] && op=read
			printf '%-13s %6s %6s %-5s %9s %10s   (the same stack without crypt)\n' \
				"$src" $bs - $op "$(median $(awk '{ print $1 }' "$f"))" \
				"$(median $(awk '{ print $2 }' "$f"))"
		done
	done
done
echo "   MB/CPU-s: MB per CPU-second of nexus-bench (all its threads, user+system);"
echo "   ossl: openssl speed -elapsed -evp aes-256-xts, MB per CPU-second measured the"
echo "   same way, at the block size (ossl@bs) and at the sector size (ossl@sect)."
echo "   stage: MB per CPU-second of the crypt stage alone (the stack's cost minus"
echo "   the same stack's without crypt), and its ratio to ossl@bs."
for bs in 512 4096 65536; do
	echo "   openssl at $bs bytes: $(median $(awk '{ print $1 }' "$W/ossl.$bs")) MB/s wall," \
		"$(median $(awk '{ print $2 }' "$W/ossl.$bs")) MB/CPU-s"
done
echo "   goal (issue 4): ratio at bs >= 0.80"
echo
}
case $PARTS in *1*) part1 ;; esac

# ---------------------------------------------------------------- part 2
case $PARTS in *2*) ;; *) exit 0 ;; esac
echo "== part 2: file | crypt | nbd  vs  nbdkit --filter=luks, fio nbd engine, $RUNS runs of ${T}s"
why=
[ -x "$PIPE" ] || why="examples/nexus-pipe is not built"
[ -z "$why" ] && ! "$PIPE" --check "null:size=1M | nbd:listen=127.0.0.1:1" >/dev/null 2>&1 &&
	why="no nbd export in this build"
[ -z "$why" ] && ! command -v nbdkit >/dev/null && why="nbdkit is not installed"
[ -z "$why" ] && ! nbdkit --dump-plugin file >/dev/null 2>&1 && why="nbdkit's file plugin is missing"
[ -z "$why" ] && ! nbdkit --filter=luks null --dump-plugin >/dev/null 2>&1 &&
	why="nbdkit's luks filter is missing (nbdkit-plugin-... packages)"
[ -z "$why" ] && ! command -v qemu-img >/dev/null && why="qemu-img is not installed"
[ -z "$why" ] && ! fio --enghelp=nbd >/dev/null 2>&1 && why="fio has no nbd engine"
[ -z "$why" ] && ! command -v python3 >/dev/null && why="python3 is needed to read fio's JSON"
if [ -n "$why" ]; then
	echo "   skipped: $why"
	exit 0
fi

. "$(dirname "$0")/../scratch.sh" # free_port, wait_port
# fio against nbd://127.0.0.1:PORT: prints IOPS and MB/s
fio_run() { # port rw bs qd [connections]
	fio --name=b --ioengine=nbd --uri="nbd://127.0.0.1:$1" --rw="$2" \
		--bs="$3" --iodepth="$4" --numjobs="${5:-1}" --group_reporting \
		--runtime="$T" --time_based \
		--size="${SIZE_MB}M" --output-format=json 2>"$W/fio.err" |
		python3 -c '
import json, sys
t = sys.stdin.read()  # the nbd engine prints a line before the JSON
j = json.loads(t[t.index("{"):])["jobs"][0]
r, w = j["read"], j["write"]
print("%.0f %.1f" % (r["iops"] + w["iops"], (r["bw_bytes"] + w["bw_bytes"]) / 1e6))' ||
		{ echo "fio failed: $(tail -3 "$W/fio.err")" >&2; echo "0 0"; }
}

# nexus-bench through the libnexus NBD client (one connection) against
# nbd://127.0.0.1:PORT: prints IOPS and MB/s.  fio's nbd engine spends a
# core per connection, so this shows what the servers themselves do.
nbc_run() { # port rw bs qd
	"$BENCH" -j -w "$2" -b "$3" -q "$4" -t "$T" -r 1 "nbd://127.0.0.1:$1/" \
		2>"$W/nbc.err" | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
print("%.0f %.1f" % (j["iops"], j["mbps"]))' ||
		{ echo "nexus-bench failed: $(tail -3 "$W/nbc.err")" >&2; echo "0 0"; }
}

PASS=nexus-bench-pass
rm -f "$W/plain.img"
truncate -s "${SIZE_MB}M" "$W/raw.img"
qemu-img create -q -f luks --object "secret,id=s0,data=$PASS" \
	-o key-secret=s0,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64 \
	"$W/vol.luks" "${SIZE_MB}M" || { echo "qemu-img create failed" >&2; exit 1; }

start_nexus() {
	NPORT=$(free_port)
	"$PIPE" -q "file:$W/raw.img | crypt:key-file=$W/key | nbd:listen=127.0.0.1:$NPORT" \
		>"$W/pipe.log" 2>&1 &
	NPID=$!
	PIDS="$PIDS $NPID"
	wait_port "$NPORT" "$NPID" || { echo "nexus-pipe did not start: $(cat "$W/pipe.log")" >&2; exit 1; }
}
start_nbdkit() {
	KPORT=$(free_port)
	nbdkit -f -i 127.0.0.1 -p "$KPORT" --filter=luks file "$W/vol.luks" \
		passphrase="$PASS" >"$W/nbdkit.log" 2>&1 &
	KPID=$!
	PIDS="$PIDS $KPID"
	wait_port "$KPORT" "$KPID" || { echo "nbdkit did not start: $(cat "$W/nbdkit.log")" >&2; exit 1; }
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

start_nexus
start_nbdkit
# fill both volumes once (real data to read; also a warm-up)
fio_run "$NPORT" write 1M 8 >/dev/null
fio_run "$KPORT" write 1M 8 >/dev/null
for run in $(seq "$RUNS"); do
	for job in "randread 4k 32" "randwrite 4k 32" "read 1M 8"; do
		set -- $job
		fio_run "$NPORT" "$1" "$2" "$3" >> "$W/fio.nexus.$1.$2"
		fio_run "$KPORT" "$1" "$2" "$3" >> "$W/fio.nbdkit.$1.$2"
		fio_run "$NPORT" "$1" "$2" "$3" 4 >> "$W/fio4.nexus.$1.$2"
		fio_run "$KPORT" "$1" "$2" "$3" 4 >> "$W/fio4.nbdkit.$1.$2"
		nbc_run "$NPORT" "$1" "$2" "$3" >> "$W/nbc.nexus.$1.$2"
		nbc_run "$KPORT" "$1" "$2" "$3" >> "$W/nbc.nbdkit.$1.$2"
	done
done
stop "$NPID"
stop "$KPID"
PIDS=

for client in fio fio4 nbc; do
case $client in
fio) echo "   client: fio's nbd engine (libnbd), one connection" ;;
fio4) echo "   client: fio's nbd engine, 4 connections (numjobs=4)" ;;
nbc) echo "   client: nexus-bench on nbd:// (the libnexus NBD client), one connection" ;;
esac
printf '%-18s %16s %16s %7s\n' job "libnexus" "nbdkit+luks" ratio
for job in "randread 4k 32 iops" "randwrite 4k 32 iops" "read 1M 8 mbps"; do
	set -- $job
	col=1; unit=IOPS
	[ "$4" = mbps ] && { col=2; unit=MB/s; }
	a=$(median $(awk -v c=$col '{ print $c }' "$W/$client.nexus.$1.$2"))
	b=$(median $(awk -v c=$col '{ print $c }' "$W/$client.nbdkit.$1.$2"))
	printf '%-18s %11s %4s %11s %4s %7s\n' "$1 $2 QD$3" "$a" $unit "$b" $unit "$(ratio "$a" "$b")"
done
done
echo "   goal: ratio >= 2.0 on all three"
