#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark of the mirror against one child alone, in the same run (not
# part of make check).  Issue 11's goals:
#
#   device-bound  each child a file in /dev/shm under throttle:iops=IOPS
#                 (a replica whose disk is the limit), nexus-bench 4k
#                 QD32 on 2 reactors: mirror/single read >= 1.8x (reads
#                 are balanced), write >= 0.95x (the legs run in parallel)
#   nbd           the device-bound children exported over NBD (unix
#                 socket), fio's nbd engine 4k random write QD32 with 4
#                 connections: mirror/single >= 0.8x; and the same with
#                 plain files (nbd-cpu: CPU-bound, fio and the server share
#                 the machine's cores)
#   cpu-bound     plain /dev/shm files, nexus-bench: read and write
#                 ratios, and the process CPU time per write (user+system,
#                 microseconds) of a single child and of the mirror
#   rebuild       a full rebuild of a 1 GiB child on tmpfs: GB/s without
#                 load (>= 1 GB/s); with rate=RATE set, the measured rate
#                 against it (within 10%); under fio load (4k random
#                 write QD32, 4 connections, from the rebuild's start) the
#                 rebuild's rate unlimited, and with rate=RATE the rate
#                 and fio's IOPS against the same fio without a rebuild
#
#   tests/bench/mirror.sh [-n RUNS] [-t SECONDS] [-B BUILDDIR]
#                         [-i IOPS] [-R RATE_MB] [-c CASES]
#
# CASES: any of "device nbd cpu rebuild" (default: all).  Runs are
# interleaved (single, mirror, single, mirror...) and the tables show
# medians of RUNS runs.
RUNS=3 TIME=5 B=build IOPS=20000 RATE=200 CASES="device nbd cpu rebuild"
while getopts n:t:B:i:R:c: o; do
	case $o in
	n) RUNS=$OPTARG ;;
	t) TIME=$OPTARG ;;
	B) B=$OPTARG ;;
	i) IOPS=$OPTARG ;;
	R) RATE=$OPTARG ;;
	c) CASES=$OPTARG ;;
	*) sed -n '2,30p' "$0"; exit 2 ;;
	esac
done
B=$(cd "$B" && pwd) || exit 1
for t in python3 fio; do
	command -v $t >/dev/null || { echo "$t is not installed" >&2; exit 77; }
done
[ -x "$B/examples/nexus-bench" ] || { echo "build first (-B BUILDDIR)" >&2; exit 1; }
W=$(mktemp -d /dev/shm/mirror-bench.XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
echo "filling 2 x 1 GiB in $W ..."
head -c 1G /dev/urandom >"$W/a.img" && cp "$W/a.img" "$W/b.img" || exit 1
exec python3 - "$B" "$W" "$RUNS" "$TIME" "$IOPS" "$RATE" "$CASES" <<'EOF'
import json, os, re, statistics, subprocess, sys, time

B, W, RUNS, T, IOPS, RATE, CASES = sys.argv[1:8]
RUNS, T, IOPS, RATE, CASES = int(RUNS), int(T), int(IOPS), int(RATE), CASES.split()
BENCH, PIPE = B + "/examples/nexus-bench", B + "/examples/nexus-pipe"
A, Bf = W + "/a.img", W + "/b.img"
res = {}  # (case, side, workload) -> list of values


def add(key, v):
    res.setdefault(key, []).append(v)


def med(key):
    v = res.get(key)
    return statistics.median(v) if v else 0.0


def run(cmd, **kw):
    """Run cmd; its stdout (exits on failure)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         **kw)
    out, err = p.communicate()
    if p.returncode:
        sys.exit("%s failed: %s" % (cmd[0], err.decode()[-500:]))
    return out.decode()


def nbench(pl, wl):
    """nexus-bench: (IOPS, CPU seconds per I/O)."""
    t0 = os.times()
    out = run([BENCH, "--json", "-w", wl, "-q", "32", "-r", "2", "-t", str(T),
               pl])
    t1 = os.times()
    d = json.loads(out)
    if d.get("errors"):
        sys.exit("nexus-bench: %d errors on %s" % (d["errors"], pl))
    cpu = (t1.children_user - t0.children_user) + \
          (t1.children_system - t0.children_system)
    return d["iops"], cpu / max(d["ios"], 1)


def mirror(*kids, opts="assume-clean=on"):
    return "( " + " ; ".join(kids) + " ) | mirror:" + opts


class Server:
    """nexus-pipe serving PIPELINE on a unix socket, control on stdin."""

    def __init__(self, pl, name):
        self.sock = "%s/%s.sock" % (W, name)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.err = open("%s/%s.err" % (W, name), "w+")
        self.p = subprocess.Popen([PIPE, "-C", "-v", "-q", "-r", "2",
                                   pl + " | nbd:socket=" + self.sock],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err)
        for line in self.p.stdout:
            if line.strip() == b"ready":
                break
        else:
            sys.exit("nexus-pipe did not start: " + self.log())
        self.uri = "nbd+unix:///?socket=" + self.sock

    def ctl(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def log(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def wait_log(self, pattern, secs):
        end = time.time() + secs
        while time.time() < end:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        sys.exit("no '%s' within %d s: %s" % (pattern, secs, self.log()[-800:]))

    def stop(self):
        self.p.terminate()
        self.p.wait(30)


def fio_nbd(uri, secs):
    out = run(["fio", "--name=m", "--ioengine=nbd", "--uri=" + uri,
               "--rw=randwrite", "--bs=4k", "--iodepth=32", "--numjobs=4",
               "--group_reporting", "--time_based", "--runtime=%d" % secs,
               "--size=1g", "--norandommap", "--randrepeat=0",
               "--output-format=json"])
    d = json.loads(out[out.index("{"):])
    if d["jobs"][0]["error"]:
        sys.exit("fio reported an error")
    return d["jobs"][0]["write"]["iops"]


REB = r"full rebuild of child 1 done: (\d+) bytes copied, (\d+) zeroed, in ([0-9.]+) s"


def rebuild(opts, load):
    """A full rebuild of b from a; (GB/s, fio IOPS meanwhile or 0).  With
    load, fio runs T seconds from the rebuild's start."""
    s = Server(mirror("file:" + A, "file:" + Bf,
                      opts="source=0,rebuild=manual" + opts), "reb")
    s.ctl("mirror.child.1=online")
    iops = fio_nbd(s.uri, T) if load else 0
    m = s.wait_log(REB, 600)
    s.stop()
    return int(m.group(1)) / float(m.group(3)) / 1e9, iops


for r in range(RUNS):
    if "device" in CASES:
        th = "throttle:iops=%d" % IOPS
        one = "file:%s | %s" % (A, th)
        two = mirror(one, "file:%s | %s" % (Bf, th))
        for wl in ("randread", "randwrite"):
            add(("device", "single", wl), nbench(one, wl)[0])
            add(("device", "mirror", wl), nbench(two, wl)[0])
    if "cpu" in CASES:
        one, two = "file:" + A, mirror("file:" + A, "file:" + Bf)
        for wl in ("randread", "randwrite"):
            for side, pl in (("single", one), ("mirror", two)):
                iops, cpu = nbench(pl, wl)
                add(("cpu", side, wl), iops)
                add(("cpuus", side, wl), cpu * 1e6)
    if "nbd" in CASES:
        th = "throttle:iops=%d" % IOPS
        one = "file:%s | %s" % (A, th)
        for case, pls in (
                ("nbd", (one, mirror(one, "file:%s | %s" % (Bf, th)))),
                ("nbd-cpu", ("file:" + A,
                             mirror("file:" + A, "file:" + Bf)))):
            for side, pl in zip(("single", "mirror"), pls):
                s = Server(pl, side)
                add((case, side, "randwrite"), fio_nbd(s.uri, T))
                s.stop()
    if "rebuild" in CASES:
        add(("rebuild", "idle", "GB/s"), rebuild("", False)[0])
        add(("rebuild", "limited", "GB/s"),
            rebuild(",rate=%dM" % RATE, False)[0])
        s = Server(mirror("file:" + A, "file:" + Bf), "fg")
        add(("rebuild", "fio-alone", "IOPS"), fio_nbd(s.uri, T))
        s.stop()
        add(("rebuild", "loaded", "GB/s"), rebuild("", True)[0])
        gbs, iops = rebuild(",rate=%dM" % RATE, True)
        add(("rebuild", "limited-loaded", "GB/s"), gbs)
        add(("rebuild", "fio-during", "IOPS"), iops)
    print("run %d of %d done" % (r + 1, RUNS), flush=True)

print("\nmedians of %d runs, %d s each, 2 reactors" % (RUNS, T))
print("%-8s %-10s %12s %12s %8s %s" % ("case", "workload", "single", "mirror",
                                      "ratio", "goal"))
goals = {("device", "randread"): ">= 1.80x", ("device", "randwrite"): ">= 0.95x",
         ("nbd", "randwrite"): ">= 0.80x"}
for case in ("device", "nbd", "nbd-cpu", "cpu"):
    for wl in ("randread", "randwrite"):
        a, b = med((case, "single", wl)), med((case, "mirror", wl))
        if a:
            print("%-8s %-10s %12.0f %12.0f %7.2fx %s" %
                  (case, wl, a, b, b / a, goals.get((case, wl), "")))
for wl in ("randread", "randwrite"):
    a, b = med(("cpuus", "single", wl)), med(("cpuus", "mirror", wl))
    if a:
        print("cpu/IO   %-10s %9.2f us %9.2f us %7.2fx" % (wl, a, b, b / a))
if res.get(("rebuild", "idle", "GB/s")):
    lim = med(("rebuild", "limited", "GB/s")) * 1e9 / (RATE << 20)
    fa, fd = med(("rebuild", "fio-alone", "IOPS")), med(("rebuild", "fio-during", "IOPS"))
    print("\nrebuild of a 1 GiB child (full, tmpfs)")
    print("  no load:          %6.2f GB/s   (goal >= 1 GB/s)" %
          med(("rebuild", "idle", "GB/s")))
    print("  rate=%dM:        %6.3f GB/s   %.2fx of the limit (goal 0.90-1.10x)"
          % (RATE, med(("rebuild", "limited", "GB/s")), lim))
    print("  under fio load:   %6.2f GB/s" % med(("rebuild", "loaded", "GB/s")))
    print("  rate=%dM under fio load: %6.3f GB/s; fio %.0f IOPS during it, "
          "%.0f without a rebuild (%.2fx)"
          % (RATE, med(("rebuild", "limited-loaded", "GB/s")), fd, fa,
             fd / fa if fa else 0))
    print("  (fio: 4k random write QD32, 4 connections over NBD, %d s from "
          "the rebuild's start)" % T)
EOF
