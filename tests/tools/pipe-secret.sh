#!/bin/sh
# Options flagged NEXUS_OPTF_SECRET: their values never appear in what
# nexus-pipe prints (--check, log messages, device names, error
# messages, --control replies); *** stands in their place.
. "${srcdir:-.}/tests/tools/common.sh"
PLUGIN=$top_builddir/tests/tools/.libs/nexus-tsecret.so
[ -f "$PLUGIN" ] || fail "missing $PLUGIN"

# no_secret FILE...: none of the secret values below is in the files
no_secret() {
	if grep -n 'S3CRET' "$@"; then
		fail "a secret value was printed"
	fi
}

# --list marks the secret option of crypt
"$PIPE" --list > "$T/list" || fail "--list exited $?"
grep -q '^    key  *string .*(secret' "$T/list" || fail "--list: crypt key= not marked secret"

# --check: crypt refuses key= when the pipeline is parsed (a key in
# pipeline text ends up in logs), without showing it, also quoted with
# separators and spaces in it
for p in "mem:size=1M | crypt:key=00S3CRET11,key-file=$T/k" \
	 "mem:size=1M | crypt: key = ' S3CRET,x; ' , key-file=$T/k"; do
	if "$PIPE" --check "$p" > "$T/out" 2> "$T/err"; then
		fail "--check accepted crypt's key="
	fi
	grep -q "option 'key' is refused" "$T/err" ||
		{ cat "$T/err"; fail "no refusal of key= by --check"; }
	no_secret "$T/out" "$T/err"
done

# a key given as crypt's positional value (cipher=) is refused by
# --check and by opening, without being shown
for run in --check -q; do
	if "$PIPE" $run "mem:size=1M | crypt:00112233445566778899aabbccddeeffS3CRET" \
		> "$T/out" 2> "$T/err"; then
		fail "crypt accepted a key as its cipher ($run)"
	fi
	grep -q "looks like a key" "$T/err" || { cat "$T/err"; fail "no reason ($run)"; }
	no_secret "$T/out" "$T/err"
done

# opening: crypt refuses key=, without showing it
if "$PIPE" -q -v "mem:size=1M | crypt:key=00S3CRET11,key-file=$T/k" \
	> "$T/out" 2> "$T/err"; then
	fail "crypt accepted key="
fi
grep -q "option 'key' is refused" "$T/err" || { cat "$T/err"; fail "no refusal"; }
no_secret "$T/out" "$T/err"

# a plugin's secret options: positional and by key, a URI, a bad value
"$PIPE" -P "$PLUGIN" --check 'tsecret:tok-S3CRET,pin=1234,size=64K' \
	> "$T/check" 2>&1 || { cat "$T/check"; fail "--check of tsecret exited $?"; }
echo 'source tsecret token=***,pin=***,size=64K' | diff -u - "$T/check" ||
	fail "--check output of tsecret differs"
"$PIPE" -P "$PLUGIN" --check 'tsecret://host/S3CRET' > "$T/check" 2>&1 ||
	fail "--check of a tsecret URI exited $?"
echo 'source tsecret token=***' | diff -u - "$T/check" ||
	fail "--check output of a tsecret URI differs"
if "$PIPE" -P "$PLUGIN" --check 'tsecret:x,pin=12S3CRET' > "$T/out" 2> "$T/err"; then
	fail "--check accepted pin=12S3CRET"
fi
grep -q "option 'pin' must be an unsigned number, got '\*\*\*'" "$T/err" ||
	{ cat "$T/err"; fail "no message for a bad pin"; }
no_secret "$T/out" "$T/err"

# running: the device name in the log hides the values, and so do the
# messages of run-time settings of the same name
start_control c "tsecret:tok-S3CRET, pin = '99', size=64K" \
	-v -q -P "$PLUGIN"
printf 'pin=4S3CRET2\npin=424242\n' >&3
wait_lines "$T/c.out" . 3
kill -TERM "$c_PID"
stop_wait "$c_PID" || fail "exit $? after SIGTERM"
exec 3>&-
grep -q "opened tsecret:\*\*\*, pin = \*\*\*, size=64K " "$T/c.err" ||
	{ cat "$T/c.err"; fail "no log of the device with its values hidden"; }
grep -q "^error: .*cannot set pin=\*\*\*" "$T/c.out" ||
	{ cat "$T/c.out"; fail "no error for a bad run-time pin"; }
grep -q "^ok" "$T/c.out" || { cat "$T/c.out"; fail "good run-time pin refused"; }
grep -q "pin=\*\*\*" "$T/c.err" || { cat "$T/c.err"; fail "no log of the setting"; }
grep -q "424242" "$T/c.out" "$T/c.err" && fail "run-time pin shown"
no_secret "$T/c.out" "$T/c.err"
echo ok
