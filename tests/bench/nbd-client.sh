#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark of the nbd source (NBD client): nexus-bench on an nbd://
# device against fio's nbd engine (libnbd), both driving the SAME nbdkit
# server (file plugin, the same file in /dev/shm), in the same run.  Not
# part of make check.
#
#   tests/bench/nbd-client.sh [-t SECONDS] [-n RUNS] [-B BUILDDIR]
#                             [-s SIZE_MB] [-C CONNS] [-T tcp|unix]
#                             [-S nbdkit|nexus]
#
# Workloads: 4k randread QD32, 4k randwrite QD32, 1M sequential read QD8,
# one connection (nexus-bench -r 1; fio numjobs=1).  With -C N (N > 1)
# the same again over N connections: nexus-bench -r N with
# connections=N (one connection per reactor) against fio numjobs=N, the
# queue depth split between them.  Runs are interleaved (nexus, fio,
# nexus, fio, ...) so that noise from other processes hits both alike;
# the medians of RUNS runs and their ratio (nexus / fio) are printed.
# -S nexus serves the file with libnexus's own export (nexus-pipe
# 'file:... | nbd:...') instead of nbdkit: both clients again see the
# same server.
set -u

T=5
RUNS=3
B=
SIZE_MB=1024
CONNS=1
TRANSPORT=unix
SERVER=nbdkit
while getopts t:n:B:s:C:T:S: opt; do
	case $opt in
	t) T=$OPTARG ;;
	n) RUNS=$OPTARG ;;
	B) B=$OPTARG ;;
	s) SIZE_MB=$OPTARG ;;
	C) CONNS=$OPTARG ;;
	T) TRANSPORT=$OPTARG ;;
	S) SERVER=$OPTARG ;;
	*) echo "usage: $0 [-t SECONDS] [-n RUNS] [-B BUILDDIR] [-s SIZE_MB]" \
		"[-C CONNS] [-T tcp|unix] [-S nbdkit|nexus]" >&2
	   exit 2 ;;
	esac
done
if [ -z "$B" ]; then
	for d in . build ..; do
		[ -x "$d/examples/nexus-bench" ] && { B=$d; break; }
	done
fi
BENCH=${B:-.}/examples/nexus-bench
[ -x "$BENCH" ] || { echo "no examples/nexus-bench: build first, or -B BUILDDIR" >&2; exit 2; }
for t in nbdkit fio python3; do
	command -v $t >/dev/null || { echo "$t is needed" >&2; exit 2; }
done
fio --enghelp 2>/dev/null | grep -qw nbd ||
	{ echo "fio has no nbd engine (libnbd)" >&2; exit 2; }

W=$(mktemp -d /dev/shm/nexus-nbdc-bench.XXXXXX) || exit 1
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END { if (NR == 0) print "nan";
		      else if (NR % 2) print a[(NR + 1) / 2];
		      else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# the file is filled with data so that reads are not of holes
echo "preparing a ${SIZE_MB} MiB file in $W ..."
dd if=/dev/urandom of="$W/disk.img" bs=1M count="$SIZE_MB" status=none || exit 1

# serve ADDRESS-OPTIONS: start the server on the file ($PID)
case $SERVER in
nbdkit)
	serve_tcp() { nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$1" file "$W/disk.img" & PID=$!; }
	serve_unix() { nbdkit -f --exit-with-parent -U "$1" file "$W/disk.img" & PID=$!; }
	SDESC="nbdkit $(nbdkit --version | awk '{print $2}') file plugin" ;;
nexus)
	PIPE=${B:-.}/examples/nexus-pipe
	[ -x "$PIPE" ] || { echo "no $PIPE" >&2; exit 2; }
	serve_tcp() { "$PIPE" -q "file:$W/disk.img | nbd:listen=127.0.0.1:$1" >/dev/null & PID=$!; }
	serve_unix() { "$PIPE" -q "file:$W/disk.img | nbd:socket=$1" >/dev/null & PID=$!; }
	SDESC="libnexus file | nbd (nexus-pipe)" ;;
*)
	echo "-S nbdkit or -S nexus" >&2
	exit 2 ;;
esac
if [ "$TRANSPORT" = tcp ]; then
	PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	serve_tcp "$PORT"
	URI="nbd://127.0.0.1:$PORT/"
	for i in $(seq 50); do
		(exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
		sleep 0.1
	done 2>/dev/null
else
	serve_unix "$W/sock"
	URI="nbd+unix:///?socket=$W/sock"
	for i in $(seq 50); do [ -S "$W/sock" ] && break; sleep 0.1; done
fi
sleep 0.3
echo "server: $SDESC, $URI"

# nexus RW BS QD CONNS -> IOPS
nexus() {
	if [ "$4" -gt 1 ]; then
		pl="nbd:'$URI',connections=$4"
	else
		pl="$URI"
	fi
	"$BENCH" -j -w "$1" -b "$2" -q $(($3 / $4)) -r "$4" -t "$T" "$pl" |
		python3 -c 'import json, sys; d = json.load(sys.stdin); print("nan" if d["errors"] else d["iops"])'
}

# fio RW BS QD CONNS -> IOPS (summed over the jobs)
fiorun() {
	fio --name=nbdc --ioengine=nbd --uri="$URI" --rw="$1" --bs="$2" \
		--iodepth=$(($3 / $4)) --numjobs="$4" --group_reporting \
		--runtime="$T" --time_based --size="${SIZE_MB}M" \
		--output-format=json 2>/dev/null |
		python3 -c 'import json, sys
t = sys.stdin.read()  # fio prints "connected to NBD server" first
d = json.loads(t[t.index("{"):])["jobs"][0]
print(d["read"]["iops"] + d["write"]["iops"])'
}

printf '\n%-28s %12s %12s %8s   (medians of %d runs of %ss)\n' \
	workload "nexus IOPS" "fio IOPS" ratio "$RUNS" "$T"
line() { # label rw bs qd conns
	n=
	f=
	for i in $(seq "$RUNS"); do
		n="$n $(nexus "$2" "$3" "$4" "$5")"
		f="$f $(fiorun "$2" "$3" "$4" "$5")"
	done
	mn=$(median $n)
	mf=$(median $f)
	printf '%-28s %12.0f %12.0f %8s   nexus:%s  fio:%s\n' "$1" "$mn" "$mf" \
		"$(ratio "$mn" "$mf")" "$n" "$f"
}
line "4k randread QD32" randread 4k 32 1
line "4k randwrite QD32" randwrite 4k 32 1
line "1M read QD8" read 1M 8 1
if [ "$CONNS" -gt 1 ]; then
	line "4k randread QD32 x$CONNS conn" randread 4k 32 "$CONNS"
	line "4k randwrite QD32 x$CONNS conn" randwrite 4k 32 "$CONNS"
	line "1M read QD8 x$CONNS conn" read 1M 8 "$CONNS"
fi
echo "(1M read: multiply IOPS by 1.05 MB for throughput)"
