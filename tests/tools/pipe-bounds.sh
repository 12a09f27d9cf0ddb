#!/bin/sh
# A plugin's option bounds, word lists and check() are applied when the
# pipeline is parsed, as for a built-in driver (--check refuses what
# open would refuse), --list shows them, and a table whose bounds, words
# or defaults do not hold together is refused when it loads.
. "${srcdir:-.}/tests/tools/common.sh"
D=$top_builddir/tests/tools/.libs
[ -f "$D/nexus-tbounds.so" ] || fail "missing $D/nexus-tbounds.so"
P="-P $D/nexus-tbounds.so"

bad() {
	if "$PIPE" $P --check "$1" > "$T/out" 2> "$T/err"; then
		fail "--check accepted '$1'"
	fi
	grep -q -- "$2" "$T/err" || { cat "$T/err"; fail "'$1': no '$2'"; }
	if "$PIPE" $P -q "$1" > "$T/out" 2> "$T/run.err"; then
		fail "opened '$1'"
	fi
	diff -u "$T/err" "$T/run.err" || fail "'$1': --check and open differ"
}
bad 'tbounds:1K' "option 'size' must be from 4K to 1G, got '1K'"
bad 'tbounds:depth=9' "option 'depth' must be from 1 to 8, got '9'"
bad 'tbounds:depth=0' "option 'depth' must be from 1 to 8"
bad 'tbounds:speed=medium' "option 'speed' must be fast or slow, got 'medium'"
bad 'tbounds:speed=slow' "stage 'tbounds' at column 1: tbounds: speed=slow needs depth=1"
"$PIPE" $P --check 'tbounds:4K,depth=1,speed=slow' > "$T/out" ||
	fail "--check refused a good tbounds"
"$PIPE" $P --check 'tbounds:1G,depth=8' > "$T/out" || fail "the bounds are inclusive"

"$PIPE" $P --list > "$T/list" || fail "--list exited $?"
grep -q '^    depth .*(from 1 to 8)' "$T/list" || { cat "$T/list"; fail "--list lacks bounds"; }
grep -q '^    speed .*(one of fast|slow)' "$T/list" || fail "--list lacks words"

# tables that do not hold together
refused() {
	if "$PIPE" -P "$D/nexus-$1.so" --list > /dev/null 2> "$T/err"; then
		fail "$1 loaded"
	fi
	grep -q -- "$2" "$T/err" || { cat "$T/err"; fail "$1: no '$2'"; }
}
refused tbadminmax "option 'depth' has min 8 above max 1"
refused tbaddefault "option 'depth' has default '9', which the option refuses"
refused tbadwords "option 'speed' has an empty word list"
refused tbadtype "option 'depth' has bounds but is not a uint or a size"
echo ok
