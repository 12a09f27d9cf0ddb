#!/bin/sh
# Key material is never printed back, whatever option it is put in:
# a long hex or base64 run in any value (crypt's key-env=, key-name=,
# key-file=, key-size=, sector-size=, iv-offset=, discard=, or another
# driver's option) shows as *** in --check output, in error messages of
# --check and of opening, and in log messages.
. "${srcdir:-.}/tests/tools/common.sh"
HEX=00112233445566778899aabbccddeeff8899aabbccddeeff0011223344556677
B64=q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=
: > "$T/k"

# no_key FILE...: neither key appears, nor a long piece of one
no_key() {
	for _k in "$HEX" "$B64" 8899aabbccddeeff vEjRWeJCrze8SNFZ; do
		if grep -n -F -- "$_k" "$@"; then
			fail "key material was printed ($*)"
		fi
	done
}

for key in "$HEX" "$B64"; do
	for opt in key-env key-name key-file key-size sector-size iv-offset \
		   discard iv-large-sectors; do
		p="mem:1M | crypt:$opt=$key"
		case $opt in key-*) ;; *) p="$p,key-file=$T/k" ;; esac
		"$PIPE" --check "$p" > "$T/check.out" 2> "$T/check.err"
		"$PIPE" -q -v "$p" > "$T/run.out" 2> "$T/run.err"
		[ $? -ne 0 ] || fail "'crypt:$opt=KEY' opened"
		no_key "$T/check.out" "$T/check.err" "$T/run.out" "$T/run.err"
	done
	# the same for a value of another driver, and for a key as a key
	for p in "mem:1M | fault:errno=$key" "mem:1M | throttle:iops=$key" \
		 "null:$key" "file:/tmp/$key/x.img" "mem:1M,$key=1"; do
		"$PIPE" --check "$p" > "$T/check.out" 2> "$T/check.err"
		"$PIPE" -q -v "$p" > "$T/run.out" 2> "$T/run.err"
		no_key "$T/check.out" "$T/check.err" "$T/run.out" "$T/run.err"
	done
done

# run-time settings (nexus_dev_control) answer without the value either
start_control c 'mem:1M | fault:enable=off | throttle:iops=100' -q -v
printf 'throttle.iops=%s\nfault.errno=%s\nfault.delay=%s\n' "$HEX" "$HEX" "$B64" >&3
wait_lines "$T/c.out" '^error' 3
kill -TERM "$c_PID"
stop_wait "$c_PID" || fail "exit $? after SIGTERM"
exec 3>&-
[ "$(grep -c '^error' "$T/c.out")" = 3 ] || { cat "$T/c.out"; fail "settings not refused"; }
no_key "$T/c.out" "$T/c.err"

# a value that only looks like a key is still usable: an environment
# variable with a long hex name is read, and the key it holds works
# (the message says which option, not the value)
"$PIPE" --check "mem:1M | crypt:key-env=K$HEX" > "$T/check.out" 2>&1 ||
	{ cat "$T/check.out"; fail "--check refused a long variable name"; }
grep -q 'key-env=\*\*\*' "$T/check.out" || fail "key-env value not hidden"

# harmless values are still shown, in descriptions and in errors
"$PIPE" --check "mem:1M | crypt:key-env=VOLKEY,sector-size=4096" \
	> "$T/check.out" 2>&1 || fail "--check exited $?"
grep -q 'key-env=VOLKEY,sector-size=4096' "$T/check.out" ||
	{ cat "$T/check.out"; fail "harmless values hidden"; }
"$PIPE" --check "mem:1M | crypt:key-env=VOLKEY,sector-size=513" \
	> /dev/null 2> "$T/err" && fail "sector-size=513 accepted"
grep -q '513' "$T/err" || { cat "$T/err"; fail "sector-size=513 not shown"; }
echo ok
