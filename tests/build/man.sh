#!/bin/sh
# Every manual page in doc/ formats without a warning from groff, and
# names itself in its .TH line.  Needs top_srcdir (AM_TESTS_ENVIRONMENT).
set -u
: "${top_srcdir:?}"
command -v groff >/dev/null 2>&1 || { echo "SKIP: groff not found"; exit 77; }
fail=0 n=0
for m in "$top_srcdir"/doc/*.[1-8]; do
	[ -f "$m" ] || continue
	n=$((n + 1))
	base=${m##*/}
	out=$(LC_ALL=C.UTF-8 groff -man -ww -z -t -Tutf8 "$m" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: groff warns on doc/$base:"; echo "$out"; fail=1
	fi
	name=${base%.*} sect=${base##*.}
	if ! grep -qi "^\.TH \"*$name\"* \"*$sect\"*" "$m"; then
		echo "FAIL: doc/$base: .TH does not say '$name' section $sect"; fail=1
	fi
done
[ $n -gt 0 ] || { echo "FAIL: no manual page in doc/"; exit 1; }
[ $fail = 0 ] && echo "man: $n pages format cleanly"
exit $fail
