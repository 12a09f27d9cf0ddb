#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark of the NBD export against the servers a user would otherwise
# pick, in the same run (not part of make check).
#
#   tests/bench/nbd.sh [-t SECONDS] [-n RUNS] [-B BUILDDIR] [-s SIZE_MB]
#                      [-S SERVERS] [-w WORKLOADS] [-O OLDBUILD]
#
# The same file in /dev/shm (SIZE_MB, default 1024, random data) is
# served by
#   nexus   libnexus `file:F | nbd:listen=...` (examples/nexus-pipe)
#   nbdkit  nbdkit's file plugin
#   qemu    qemu-nbd (raw, --shared=8)
#   nexus_sys  the same as nexus with congestion=system: the kernel's
#           default TCP congestion control (bbr on many machines) on the
#           loopback connections, to show what congestion=auto changes
#   null    libnexus `null | nbd`: a server that does no I/O at all; its
#           row is the most fio's nbd engine can take from any server on
#           this machine (the client's own ceiling), not a peer
#   nbdkit_null  nbdkit's null plugin: the peer of the null row (the
#           ratio null/nbdkit_null compares the two export loops alone)
#   poll, poll_null  nexus and null with nexus-pipe --poll-us=POLL_US
#           (default 50): reactors poll after work instead of sleeping at
#           once; shown against nbdkit, nbdkit_null and nexus
#   nopoll, nopoll_null  the same with --poll-us=0 (no polling; nexus
#           and null use nexus-pipe's default, 50 us)
#   old, old_null  nexus and null from another build (-O OLDBUILD, e.g.
#           the commit before a change), interleaved with this one: a
#           before/after comparison that the machine's noise hits alike
# and driven by fio's nbd engine (libnbd):
#   rr4k    4k random read,  QD32, one connection
#   rw4k    4k random write, QD32, one connection
#   sr1m    1M sequential read, QD8, one connection
#   rr4k-x4 / rw4k-x4 / sr1m-x4   the same with 4 connections (numjobs=4)
# Runs are interleaved (run 1 of every server and workload, then run 2,
# ...) so that noise from other processes hits every side alike; the
# table shows medians of RUNS runs and the ratios libnexus/peer.  The
# second table is I/Os (or MB) served per CPU-second of the server
# process (user+system): on a shared, noisy machine it shows the cost
# of each server independent of how much CPU it was given.
# Goal (issue 3): >= 1.5x nbdkit on rr4k and rw4k, >= 1.3x on sr1m.
#
# Last, the one-connection workloads again, driven by `nexus-bench` on
# an nbd:// source (the libnexus NBD client) against every server: fio's
# nbd engine needs a whole core per connection, so with one connection
# fio measures itself; this table shows what each server delivers.
set -u

T=10
RUNS=3
B=
SIZE_MB=1024
SERVERS="nexus nbdkit qemu nexus_sys null"
WORKLOADS="rr4k rw4k sr1m rr4k-x4 rw4k-x4 sr1m-x4"
OLD=
while getopts t:n:B:s:S:w:O: opt; do
	case $opt in
	t) T=$OPTARG ;;
	n) RUNS=$OPTARG ;;
	B) B=$OPTARG ;;
	s) SIZE_MB=$OPTARG ;;
	S) SERVERS=$OPTARG ;;
	w) WORKLOADS=$OPTARG ;;
	O) OLD=$OPTARG ;;
	*) sed -n '2,30p' "$0" >&2; exit 2 ;;
	esac
done

here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "$B" ]; then
	for d in "$here/build" "$here" .; do
		[ -x "$d/examples/nexus-pipe" ] && { B=$d; break; }
	done
fi
PIPE=$B/examples/nexus-pipe
BENCH=$B/examples/nexus-bench
[ -x "$PIPE" ] || { echo "nexus-pipe not found (build first, or -B BUILDDIR)" >&2; exit 1; }
for t in fio python3; do
	command -v $t >/dev/null || { echo "$t is not installed" >&2; exit 1; }
done
fio --enghelp=nbd >/dev/null 2>&1 || { echo "fio has no nbd engine" >&2; exit 1; }
for s in $SERVERS; do
	case $s in
	nbdkit|nbdkit_null) command -v nbdkit >/dev/null || { echo "no nbdkit: skipped"; SERVERS=$(echo $SERVERS | sed 's/nbdkit[a-z_]*//g'); } ;;
	qemu) command -v qemu-nbd >/dev/null || { echo "no qemu-nbd: skipped"; SERVERS=$(echo $SERVERS | sed 's/qemu//'); } ;;
	esac
done

W=$(mktemp -d /tmp/nbd-bench.XXXXXX)
F=$(mktemp /dev/shm/nbd-bench.XXXXXX)
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$W" "$F"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/../scratch.sh" # free_port, wait_port

echo "filling $SIZE_MB MiB in $F ..."
head -c "${SIZE_MB}M" /dev/urandom >"$F" || exit 1

# start_server NAME: sets PORT_<name>, PID_<name>
start_server() {
	p=$(free_port)
	case $1 in
	nexus)
		"$PIPE" -q "file:$F | nbd:listen=127.0.0.1:$p" >"$W/nexus.log" 2>&1 &
		;;
	nbdkit)
		nbdkit -f -i 127.0.0.1 -p "$p" file "$F" >"$W/nbdkit.log" 2>&1 &
		;;
	qemu)
		qemu-nbd -f raw -b 127.0.0.1 -p "$p" -e 8 -t "$F" >"$W/qemu.log" 2>&1 &
		;;
	nexus_sys)
		"$PIPE" -q "file:$F | nbd:listen=127.0.0.1:$p,congestion=system" >"$W/nexus_sys.log" 2>&1 &
		;;
	null)
		"$PIPE" -q "null:size=${SIZE_MB}M | nbd:listen=127.0.0.1:$p" >"$W/null.log" 2>&1 &
		;;
	nbdkit_null)
		nbdkit -f -i 127.0.0.1 -p "$p" null "size=${SIZE_MB}M" >"$W/nbdkit_null.log" 2>&1 &
		;;
	poll)
		"$PIPE" -q --poll-us="${POLL_US:-50}" "file:$F | nbd:listen=127.0.0.1:$p" >"$W/poll.log" 2>&1 &
		;;
	nopoll)
		"$PIPE" -q --poll-us=0 "file:$F | nbd:listen=127.0.0.1:$p" >"$W/nopoll.log" 2>&1 &
		;;
	nopoll_null)
		"$PIPE" -q --poll-us=0 "null:size=${SIZE_MB}M | nbd:listen=127.0.0.1:$p" >"$W/nopoll_null.log" 2>&1 &
		;;
	poll_null)
		"$PIPE" -q --poll-us="${POLL_US:-50}" "null:size=${SIZE_MB}M | nbd:listen=127.0.0.1:$p" >"$W/poll_null.log" 2>&1 &
		;;
	old)
		"$OLD/examples/nexus-pipe" -q "file:$F | nbd:listen=127.0.0.1:$p" >"$W/old.log" 2>&1 &
		;;
	old_null)
		"$OLD/examples/nexus-pipe" -q "null:size=${SIZE_MB}M | nbd:listen=127.0.0.1:$p" >"$W/old_null.log" 2>&1 &
		;;
	esac
	pid=$!
	PIDS="$PIDS $pid"
	eval "PORT_$1=$p PID_$1=$pid"
	wait_port "$p" || { echo "server on port $p did not start" >&2; exit 1; }
}

for s in $SERVERS; do
	start_server "$s"
done

cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# wl_spec WORKLOAD: sets rw, bs and qd
wl_spec() {
	case $1 in
	rr4k*) rw=randread bs=4k qd=32 ;;
	rw4k*) rw=randwrite bs=4k qd=32 ;;
	sr1m*) rw=read bs=1M qd=8 ;;
	esac
}

# run_fio SERVER WORKLOAD RUN
run_fio() {
	eval "port=\$PORT_$1 pid=\$PID_$1"
	wl_spec "$2"
	args="--rw=$rw --bs=$bs --iodepth=$qd"
	case $2 in
	*-x4) args="$args --numjobs=4" ;;
	esac
	c0=$(cpu_ticks "$pid")
	# shellcheck disable=SC2086
	timeout $((T * 3 + 60)) fio --name=b --ioengine=nbd \
		--uri="nbd://127.0.0.1:$port/" $args --size="${SIZE_MB}M" \
		--time_based --runtime="$T" --ramp_time=1 --group_reporting \
		--output-format=json --output="$W/fio.json" >/dev/null 2>&1
	c1=$(cpu_ticks "$pid")
	python3 - "$W/fio.json" "$1" "$2" "$3" "$c0" "$c1" "$T" >>"$W/results" <<'PY'
import json, sys
f, server, wl, run, c0, c1, t = sys.argv[1:]
s = open(f).read()
try:
    j = json.loads(s[s.index("{"):])["jobs"][0]
    iops = j["read"]["iops"] + j["write"]["iops"]
    bw = (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6
    err = j["error"]
except (ValueError, KeyError, IndexError):
    iops, bw, err = 0, 0, -1
# server CPU seconds over the run (ramp included: scale to the runtime)
cpu = (float(c1) - float(c0)) / 100.0 * float(t) / (float(t) + 1)
print(server, wl, run, "%.0f" % iops, "%.1f" % bw, "%.3f" % cpu, err)
PY
	tail -n1 "$W/results" | awk '{ printf "  %-7s %-8s run %s: %9.0f IOPS %8.1f MB/s  server CPU %.2f s%s\n", $1, $2, $3, $4, $5, $6, ($7 != 0 ? "  (fio error " $7 ")" : "") }'
}

# each_run FN WORKLOADS: FN SERVER WORKLOAD RUN for every run, workload
# and server, interleaved (run 1 of all, then run 2, ...)
each_run() {
	for r in $(seq 1 "$RUNS"); do
		for wl in $2; do
			for s in $SERVERS; do
				"$1" "$s" "$wl" "$r"
			done
		done
	done
}

echo "servers: $SERVERS; workloads: $WORKLOADS; $RUNS runs of $T s"
each_run run_fio "$WORKLOADS"

# The same one-connection workloads driven by nexus-bench through the
# libnexus NBD client (nbd:// source), against every server: fio's nbd
# engine (libnbd) spends a whole core per connection at some 50-70k
# IOPS here, so with one connection it measures the client; this shows
# what each server itself delivers to a client that keeps up.
# run_nb SERVER WORKLOAD RUN
run_nb() {
	eval "port=\$PORT_$1"
	wl_spec "$2"
	out=$(timeout $((T * 3 + 60)) "$BENCH" -j -w "$rw" -b "$bs" -q "$qd" -t "$T" -r 1 \
		"nbd://127.0.0.1:$port/" 2>"$W/bench.err")
	echo "$out" | python3 -c '
import json, sys
s = sys.stdin.read()
try:
    j = json.loads(s[s.index("{"):])
    iops, mbps = j["iops"], j["mbps"]
except (ValueError, KeyError):
    iops = mbps = 0
print("nb-%s %s %s %.0f %.1f 0 0" % (sys.argv[1], sys.argv[2], sys.argv[3],
                                     iops, mbps))' "$1" "$2" "$3" >>"$W/results"
	tail -n1 "$W/results" | awk '{ printf "  %-9s %-5s run %s: %9.0f IOPS %8.1f MB/s  (nexus-bench nbd:// client)\n", $1, $2, $3, $4, $5 }'
}
NB_WLS=
for wl in rr4k rw4k sr1m; do
	case " $WORKLOADS " in *" $wl "*) NB_WLS="$NB_WLS $wl" ;; esac
done
[ -x "$BENCH" ] && each_run run_nb "$NB_WLS"

python3 - "$W/results" "$SERVERS" "$WORKLOADS" "$T" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
servers, wls = sys.argv[2].split(), sys.argv[3].split()
def med(server, wl, col):
    v = [float(r[col]) for r in rows if r[0] == server and r[1] == wl]
    return statistics.median(v) if v else 0.0
def eff(server, wl):
    # I/Os (MB for sequential workloads) per CPU-second of the server
    col = 4 if wl.startswith("sr") else 3
    t = float(sys.argv[4])
    v = [float(r[col]) * t / float(r[5]) for r in rows
         if r[0] == server and r[1] == wl and float(r[5]) > 0]
    return statistics.median(v) if v else 0.0
def unit(wl):
    return "MB/s" if wl.startswith("sr") else "IOPS"
def val(server, wl):
    return med(server, wl, 4 if wl.startswith("sr") else 3)
peers = [s for s in servers if s not in ("nexus", "null", "nbdkit_null",
                                         "old_null", "poll", "poll_null",
                                         "nopoll", "nopoll_null")]
print()
print("median throughput (fio nbd engine)")
hdr = "%-9s %5s" % ("workload", "unit") + "".join("%11s" % s for s in servers)
# ratio columns: wide enough for their header
W = {p: max(14, len("nexus/" + p) + 2) for p in peers}
def rcol(a, b, p):
    return "%*.2fx" % (W[p] - 1, a / b) if b else "%*s" % (W[p], "-")
hdr += "".join("%*s" % (W[p], "nexus/" + p) for p in peers if "nexus" in servers)
print(hdr)
for wl in wls:
    line = "%-9s %5s" % (wl, unit(wl))
    line += "".join("%11.0f" % val(s, wl) for s in servers)
    if "nexus" in servers:
        for p in peers:
            b = val(p, wl)
            line += rcol(val("nexus", wl), b, p)
    print(line)
print()
print("served per CPU-second of the server process (I/Os, or MB for sr1m)")
print(hdr)
for wl in wls:
    line = "%-9s %5s" % (wl, "MB" if wl.startswith("sr") else "I/Os")
    line += "".join("%11.0f" % eff(s, wl) for s in servers)
    if "nexus" in servers:
        for p in peers:
            b = eff(p, wl)
            line += rcol(eff("nexus", wl), b, p)
    print(line)
nbw = [wl for wl in wls if any(r[0].startswith("nb-") and r[1] == wl
                               for r in rows)]
if nbw:
    print()
    print("median throughput, one connection, nexus-bench nbd:// client")
    print(hdr)
    for wl in nbw:
        line = "%-9s %5s" % (wl, unit(wl))
        line += "".join("%11.0f" % val("nb-" + s, wl) for s in servers)
        if "nexus" in servers:
            for p in peers:
                b = val("nb-" + p, wl)
                line += rcol(val("nb-nexus", wl), b, p)
        print(line)
pairs = [(a, b) for a, b in (("poll", "nbdkit"), ("poll_null", "nbdkit_null"),
                             ("poll", "nexus"), ("poll", "old"),
                             ("poll", "nopoll"),
                             ("poll_null", "nopoll_null"))
         if a in servers and b in servers]
if pairs:
    print()
    print("polling after work (--poll-us): throughput and per CPU-second")
    for a, b in pairs:
        for wl in wls:
            x, y = val(a, wl), val(b, wl)
            ex, ey = eff(a, wl), eff(b, wl)
            print("%-9s %-18s %6.2fx   per CPU-s %6.2fx" %
                  (wl, a + "/" + b, x / y if y else 0, ex / ey if ey else 0))
if "null" in servers and "old_null" in servers:
    print()
    print("export loop, this build against the old one: null/old_null")
    for wl in wls:
        b = val("old_null", wl)
        print("%-9s %5s %10.2fx" % (wl, unit(wl), val("null", wl) / b if b else 0))
if "null" in servers and "nbdkit_null" in servers:
    print()
    print("export loop alone: null/nbdkit_null")
    for wl in wls:
        b = val("nbdkit_null", wl)
        print("%-9s %5s %10.2fx" % (wl, unit(wl), val("null", wl) / b if b else 0))
print()
if "null" in servers:
    print()
    print("the null column: fio's nbd engine against a server that does no")
    print("I/O, i.e. what the client itself can do on this machine; a peer")
    print("near it leaves no room for a ratio, whatever the server")
print("goal: nexus >= 1.5x nbdkit on rr4k and rw4k, >= 1.3x on sr1m")
PY
