# Shared by the nbd-client-*.sh tests (sourced): a scratch directory,
# servers started in the background and killed on exit, free TCP ports,
# and `run SUITE PIPELINE [ARG]` for tests/interop/nbd-client-test.
set -u
T=./tests/interop/nbd-client-test
tmp=$(mktemp -d /tmp/nbd-client-test.XXXXXX)
pids=
failed=0

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# require TOOL...: skip the test (77) when a tool is missing
require() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || {
			echo "SKIP: $t not installed"
			exit 77
		}
	done
}

# newsock: a fresh Unix socket path in $S
nsock=0
newsock() {
	nsock=$((nsock + 1))
	S=$tmp/s$nsock.sock
}

. "${srcdir:-.}/tests/scratch.sh" # free_port

# wait_for PATH|PORT: until a socket file exists or a TCP port accepts
wait_for() {
	i=0
	while [ $i -lt 100 ]; do
		case $1 in
		/*) [ -S "$1" ] && return 0 ;;
		*) (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0 ;;
		esac
		sleep 0.1
		i=$((i + 1))
	done
	echo "server did not come up ($1)"
	exit 1
}

# bg CMD...: start a server in the background (its pid in $last)
bg() {
	"$@" &
	last=$!
	pids="$pids $last"
}

# serve PIPELINE: examples/nexus-pipe in the background (pid in $last,
# output in $tmp/out.N); waits for "ready"; $addr is the first address
# it listens on (unix:PATH or HOST:PORT)
PIPE=./examples/nexus-pipe
nserve=0
serve() {
	[ -x $PIPE ] || { echo "no $PIPE"; exit 1; }
	nserve=$((nserve + 1))
	out=$tmp/out.$nserve
	bg $PIPE -q "$1" > $out 2>&1
	i=0
	while ! grep -q '^ready' $out; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 $last 2>/dev/null; then
			cat $out
			echo "nexus-pipe did not start: $1"
			exit 1
		fi
		sleep 0.1
	done
	addr=$(sed -n 's/^listening on //p' $out | head -1)
}

stop() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

run() {
	echo "== $*"
	if ! timeout 150 "$T" "$@"; then
		echo "FAILED: $*"
		failed=1
	fi
}

finish() {
	[ $failed = 0 ] && echo "all passed"
	exit $failed
}
