#!/bin/sh
# Header hygiene: every public header compiles on its own (and twice,
# for its include guard) as strict C99 and as C++11, with warnings as
# errors.  Needs top_srcdir, CC and CXX (AM_TESTS_ENVIRONMENT).
set -u
: "${top_srcdir:?}"
CC=${CC:-cc}
CXX=${CXX:-c++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-headers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0

cxx_ok=yes
printf 'int main() { return 0; }\n' > "$tmp/probe.cc"
$CXX -std=c++11 -c -o "$tmp/probe.o" "$tmp/probe.cc" 2>/dev/null || cxx_ok=no

for h in "$top_srcdir"/include/nexus/*.h; do
	name=nexus/${h##*/}
	printf '#include <%s>\n#include <%s>\nint nexus_header_test_dummy;\n' \
		"$name" "$name" > "$tmp/t.c"
	if ! $CC -std=c99 -pedantic -Werror -Wall -Wextra -Wstrict-prototypes \
		-Wundef -I"$top_srcdir/include" -c -o "$tmp/t.o" "$tmp/t.c" \
		> "$tmp/log" 2>&1; then
		echo "FAIL: $name does not compile alone as C99:"
		echo "  $CC -std=c99 -pedantic -Werror -Wall -Wextra -Wstrict-prototypes -Wundef"
		sed 's/^/    /' "$tmp/log"
		fail=1
	fi
	n=$((n + 1))
	[ $cxx_ok = yes ] || continue
	cp "$tmp/t.c" "$tmp/t.cc"
	if ! $CXX -std=c++11 -pedantic -Werror -Wall -Wextra \
		-I"$top_srcdir/include" -c -o "$tmp/t.o" "$tmp/t.cc" \
		> "$tmp/log" 2>&1; then
		echo "FAIL: $name does not compile alone as C++11:"
		echo "  $CXX -std=c++11 -pedantic -Werror -Wall -Wextra"
		sed 's/^/    /' "$tmp/log"
		fail=1
	fi
	n=$((n + 1))
done
if [ $cxx_ok = no ]; then
	echo "SKIP: no working C++ compiler ($CXX); checked C99 only"
	[ $fail = 0 ] && exit 77
fi
[ $fail = 0 ] && echo "headers: $n compilations passed"
exit $fail
