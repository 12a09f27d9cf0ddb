#!/bin/sh
# Local data path benchmark: nexus-bench through the `file` source against
# fio --ioengine=io_uring on the same 1 GiB file in /dev/shm, in the same
# run, one reactor against one fio job:
#   4k random read QD32, 4k random write QD32, 1M sequential read QD8
# then the `null` source alone on one reactor (the library's own per-I/O
# cost).  Each case runs RUNS times, fio and nexus-bench alternating; the
# medians are compared.  Not part of make check.
#
#   tests/bench/local.sh                  (from the source tree, build in ./build)
#   BUILD=/path/to/build RUNS=5 TIME=10 tests/bench/local.sh
#
# Environment: BUILD (build directory, default ./build next to this tree),
# RUNS (default 3), TIME (seconds per measurement, default 5),
# FILE (default /dev/shm/nexus-bench-local.img), KEEP=1 keeps the file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$top/build}
RUNS=${RUNS:-3}
TIME=${TIME:-5}
FILE=${FILE:-/dev/shm/nexus-bench-local.img}
bench=$BUILD/examples/nexus-bench

for t in fio python3; do
	command -v $t >/dev/null 2>&1 || { echo "local.sh: $t not found (apt-get install $t)" >&2; exit 77; }
done
[ -x "$bench" ] || { echo "local.sh: $bench not built (make in $BUILD)" >&2; exit 1; }
fio --enghelp 2>/dev/null | grep -qw io_uring ||
	{ echo "local.sh: this fio has no io_uring engine" >&2; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-bench-local.XXXXXX")
cleanup() {
	rm -rf "$tmp"
	[ "${KEEP:-0}" = 1 ] || rm -f "$FILE"
}
trap cleanup EXIT INT TERM

echo "libnexus local benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kernel $(uname -r), $(fio --version), runs=$RUNS, ${TIME}s each"

# Prewrite the whole file so that both programs read allocated pages.
echo "prewriting 1 GiB to $FILE ..."
rm -f "$FILE"
dd if=/dev/urandom of="$FILE" bs=1M count=1024 conv=fsync status=none

# fio_run NAME RW BS QD -> prints "IOPS BYTES_PER_S"
fio_run() {
	fio --name="$1" --filename="$FILE" --ioengine=io_uring --rw="$2" \
		--bs="$3" --iodepth="$4" --numjobs=1 --size=1G --direct=0 \
		--time_based --runtime="$TIME" --ramp_time=1 --norandommap \
		--randrepeat=0 --output-format=json > "$tmp/fio.json" 2> "$tmp/fio.err" ||
		{ cat "$tmp/fio.err" >&2; exit 1; }
	python3 - "$tmp/fio.json" "$2" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index('{'):])
job = doc["jobs"][0]
side = job["write" if "write" in sys.argv[2] else "read"]
print("%.0f %.0f" % (side["iops"], side["bw_bytes"]))
EOF
}

# nb_run WORKLOAD BS QD [PIPELINE] -> prints "IOPS BYTES_PER_S"
nb_run() {
	"$bench" --json -w "$1" -b "$2" -q "$3" -r 1 -t "$TIME" "${4:-file:$FILE}" \
		> "$tmp/nb.json" 2> "$tmp/nb.err" || { cat "$tmp/nb.err" >&2; exit 1; }
	python3 - "$tmp/nb.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
if doc.get("errors"):
    sys.exit("nexus-bench reported %d errors" % doc["errors"])
print("%.0f %.0f" % (doc["iops"], doc["mbps"] * 1e6))
EOF
}

median() { # values on stdin, one per line
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

human() { # IOPS
	awk -v v="$1" 'BEGIN { if (v >= 1e6) printf "%.2fM", v / 1e6;
		else if (v >= 1e3) printf "%.1fk", v / 1e3; else printf "%d", v }'
}
gbs() { awk -v v="$1" 'BEGIN { printf "%.2f GB/s", v / 1e9 }'; }

summary=$tmp/summary
: > "$summary"
# case LABEL FIO_RW NEXUS_WORKLOAD BS QD UNIT(iops|bw)
run_case() {
	label=$1 rw=$2 wl=$3 bs=$4 qd=$5 unit=$6
	: > "$tmp/f" ; : > "$tmp/n"
	i=1
	while [ $i -le "$RUNS" ]; do
		# alternate the order so that drift hits both alike
		if [ $((i % 2)) = 1 ]; then
			f=$(fio_run "$label" "$rw" "$bs" "$qd"); n=$(nb_run "$wl" "$bs" "$qd")
		else
			n=$(nb_run "$wl" "$bs" "$qd"); f=$(fio_run "$label" "$rw" "$bs" "$qd")
		fi
		echo "$f" >> "$tmp/f"; echo "$n" >> "$tmp/n"
		if [ "$unit" = iops ]; then
			printf '  %-22s run %d: fio %s IOPS, nexus-bench %s IOPS\n' "$label" $i \
				"$(human "${f% *}")" "$(human "${n% *}")"
		else
			printf '  %-22s run %d: fio %s, nexus-bench %s\n' "$label" $i \
				"$(gbs "${f#* }")" "$(gbs "${n#* }")"
		fi
		i=$((i + 1))
	done
	if [ "$unit" = iops ]; then
		fm=$(cut -d' ' -f1 "$tmp/f" | median); nm=$(cut -d' ' -f1 "$tmp/n" | median)
		fs="$(human "$fm") IOPS"; ns="$(human "$nm") IOPS"
	else
		fm=$(cut -d' ' -f2 "$tmp/f" | median); nm=$(cut -d' ' -f2 "$tmp/n" | median)
		fs=$(gbs "$fm"); ns=$(gbs "$nm")
	fi
	ratio=$(awk -v a="$nm" -v b="$fm" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	printf '%-24s %18s %18s %8sx\n' "$label" "$ns" "$fs" "$ratio" >> "$summary"
}

echo
echo "runs (file source, one reactor / one fio job):"
run_case "4k randread QD32" randread randread 4k 32 iops
run_case "4k randwrite QD32" randwrite randwrite 4k 32 iops
run_case "1M read QD8" read read 1M 8 bw

echo
echo "null source, one reactor, 4k randread QD32 (the library's own per-I/O cost):"
: > "$tmp/z"
i=1
while [ $i -le "$RUNS" ]; do
	z=$(nb_run randread 4k 32 null)
	echo "${z% *}" >> "$tmp/z"
	printf '  run %d: %s IOPS\n' $i "$(human "${z% *}")"
	i=$((i + 1))
done
zm=$(median < "$tmp/z")

echo
echo "medians of $RUNS runs:"
printf '%-24s %18s %18s %9s\n' "case" "nexus-bench" "fio io_uring" "ratio"
cat "$summary"
printf '%-24s %18s %18s\n' "null 4k randread QD32" "$(human "$zm") IOPS" "-"
awk -v v="$zm" 'BEGIN { if (v > 0) printf "  = %.0f ns of library time per I/O on one reactor\n", 1e9 / v }'
