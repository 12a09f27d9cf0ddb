#!/bin/sh
# Parse-time validation: nexus-pipe --check refuses every pipeline that
# cannot open because of its options (bounds, accepted words, power-of-two
# block sizes, rules between options), with the same message that
# opening gives, and still accepts the values next to the bad ones.
. "${srcdir:-.}/tests/tools/common.sh"

# bad PIPELINE WORDS...: --check exits 1 and its message holds every word
bad() {
	_p=$1
	shift
	if "$PIPE" --check "$_p" > "$T/out" 2> "$T/err"; then
		fail "--check accepted '$_p'"
	fi
	[ -s "$T/out" ] && fail "--check printed a description for '$_p'"
	for _w in "$@"; do
		grep -q -- "$_w" "$T/err" ||
			{ cat "$T/err"; fail "'$_p': message lacks '$_w'"; }
	done
}
good() {
	"$PIPE" --check "$1" > "$T/out" 2> "$T/err" ||
		{ cat "$T/err"; fail "--check refused '$1'"; }
}

# mem and null: size and block size
bad 'mem:size=0' "stage 'mem'" "size"
bad 'mem:1000' "stage 'mem'" "multiple of block-size"
bad 'mem:1M,block-size=3' "block-size" "power of two"
bad 'mem:1M,block-size=128K' "block-size"
bad 'null:size=0' "stage 'null'" "size"
bad 'null:1M,block-size=3' "block-size" "power of two"
bad 'null:1000' "multiple of block-size"
good 'mem:1M,block-size=4096'
good 'null:1M,block-size=512'
# file: a block size given must be a power of two; size= only with create
bad "file:$T/x.img,block-size=3" "block-size" "power of two"
bad "file:$T/x.img,create=on" "create=on needs size="
bad "file:$T/x.img,size=1M" "size= is only used with create=on"
good "file:$T/x.img,create=on,size=1M,block-size=4096"

# crypt: words and numbers it accepts, and one key source
K="key-file=$T/k"
bad "mem:1M | crypt:sector-size=513,$K" "stage 'crypt'" "sector-size"
bad "mem:1M | crypt:key-size=384,$K" "key-size"
bad "mem:1M | crypt:key-size=0,$K" "key-size"
bad "mem:1M | crypt" "no key"
bad "mem:1M | crypt:$K,key-env=V" "only one of"
good "mem:1M | crypt:sector-size=4096,key-size=256,$K"

# throttle: a rate of 0 can never pass an I/O
bad 'mem:1M | throttle:iops=0' "stage 'throttle'" "iops"
bad 'mem:1M | throttle:bps=0' "bps"
bad 'mem:1M | throttle:burst-iops=0,iops=5' "burst-iops"
good 'mem:1M | throttle:iops=1,bps=1'

# fault: probability 0..1, errno names and 1..4095
bad 'mem:1M | fault:probability=2' "stage 'fault'" "probability"
bad 'mem:1M | fault:probability=-0.5' "probability"
bad 'mem:1M | fault:errno=EBOGUS' "errno"
bad 'mem:1M | fault:errno=0' "errno"
bad 'mem:1M | fault:errno=4096' "errno"
bad 'mem:1M | fault:ops=reed' "ops"
bad 'mem:1M | fault:delay=3parsecs' "delay"
bad 'mem:1M | fault:delay=10ms,delay-max=1ms' "delay-max"
bad 'mem:1M | fault:start=1M,end=4K' "start"
good 'mem:1M | fault:probability=0.5,errno=ENOSPC,ops=read+write'
good 'mem:1M | fault:errno=4095,delay=1ms,delay-max=2ms,start=4K,end=8K'
good 'mem:1M | fault:errno=none,delay=1ms'

# the NBD export's numeric bounds
if has_driver export nbd; then
	bad 'mem:1M | nbd:listen=127.0.0.1:0,max-inflight=0' "max-inflight"
	bad 'mem:1M | nbd:listen=127.0.0.1:0,max-inflight=5000' "max-inflight"
	good 'mem:1M | nbd:listen=127.0.0.1:0,max-inflight=4096'
	bad 'mem:1M | nbd:listen=127.0.0.1:0,handshake-timeout=86401' \
		"handshake-timeout" "at most 86400"
	good 'mem:1M | nbd:listen=127.0.0.1:0,handshake-timeout=0'
fi

# opening gives the same message as --check (one validation for both)
"$PIPE" --check 'mem:1M | fault:probability=2' 2> "$T/check.err" && fail "accepted"
"$PIPE" -q 'mem:1M | fault:probability=2' > "$T/run.out" 2> "$T/run.err" &&
	fail "nexus-pipe ran fault:probability=2"
diff -u "$T/check.err" "$T/run.err" || fail "--check and running differ"
echo ok
