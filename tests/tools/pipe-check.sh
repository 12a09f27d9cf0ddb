#!/bin/sh
# nexus-pipe --check and --list: output taken from the driver tables,
# clear errors and exit codes for bad pipelines and usage.
. "${srcdir:-.}/tests/tools/common.sh"

# --list: every built-in driver, with its options and help
"$PIPE" --list > "$T/list" || fail "--list exited $?"
for d in "source file" "source mem" "source null" "transform throttle" \
	 "transform fault"; do
	grep -q "^$d\$" "$T/list" || fail "--list lacks '$d'"
done
grep -q '^    iops  *uint ' "$T/list" || fail "--list lacks throttle's iops"
grep -q '^    probability  *string .*0\.\.1' "$T/list" ||
	fail "--list lacks fault's probability help"
grep -q '(required)' "$T/list" || fail "--list does not mark required options"

# --check: the parsed pipeline, one stage per line
"$PIPE" --check 'mem:size=1G | throttle:iops=500,bps=10M | fault:ops=write,probability=0.5' \
	> "$T/check" || fail "--check of a good pipeline exited $?"
cat > "$T/want" <<'END'
source mem size=1G
transform throttle iops=500,bps=10M
transform fault ops=write,probability=0.5
END
diff -u "$T/want" "$T/check" || fail "--check output differs"

# --check does not open anything: a missing file is fine to check
"$PIPE" --check "file:$T/does-not-exist.img" > /dev/null ||
	fail "--check opened the file"

# bad pipelines: exit 1 and a message naming the problem
check_bad() {
	if "$PIPE" --check "$1" > "$T/out" 2> "$T/err"; then
		fail "--check accepted '$1'"
	fi
	grep -q "$2" "$T/err" || { cat "$T/err"; fail "no '$2' for '$1'"; }
}
check_bad 'mem:size=1G | nosuchdriver' 'nosuchdriver'
check_bad 'mem:size=1G | throttle:iops=abc' "iops"
check_bad 'mem:size=1G | throttle:speed=1' "unknown option 'speed'"
check_bad 'mem:size=1G |' 'column'

# the same errors when running it, plus what only opening finds
if "$PIPE" -q 'mem:size=1G | throttle:iops=0' > "$T/out" 2> "$T/err"; then
	fail "nexus-pipe ran with iops=0"
fi
grep -q "throttle.*iops.*at least 1.*0" "$T/err" || fail "no message for iops=0"
grep -q ready "$T/out" && fail "printed ready for a failed pipeline"

# usage errors exit 2
"$PIPE" > /dev/null 2>&1; [ $? -eq 2 ] || fail "no argument: want exit 2"
"$PIPE" --bogus x > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad option: want exit 2"
"$PIPE" --list extra > /dev/null 2>&1; [ $? -eq 2 ] || fail "--list extra: want exit 2"
"$PIPE" --help | grep -q -- '--check' || fail "--help lacks --check"
echo ok
