#!/bin/sh
# The exported symbols of libnexus.so are exactly the NEXUS_API functions
# declared in include/nexus/*.h, each listed by name in lib/libnexus.map.
# Run by `make check`; needs top_srcdir, top_builddir, CC and NM (set by
# AM_TESTS_ENVIRONMENT).
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
CC=${CC:-cc}
NM=${NM:-nm}
map=$top_srcdir/lib/libnexus.map
so=$top_builddir/lib/.libs/libnexus.so
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nexus-symbols.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0

[ -e "$so" ] || { echo "symbols: $so not built"; exit 99; }

# 1. NEXUS_API functions of every public header (preprocessed, so macro
#    bodies such as NEXUS_REGISTER_PLUGIN do not count).
for h in "$top_srcdir"/include/nexus/*.h; do
	$CC -E -P -I"$top_srcdir/include" "$h" > "$tmp/pp" || exit 99
	tr '\n' ' ' < "$tmp/pp" | sed 's/;/;\n/g' |
	grep 'visibility *( *"default" *)' |
	awk '{ if (match($0, /nexus_[A-Za-z0-9_]*[ \t]*\(/)) {
		s = substr($0, RSTART, RLENGTH); sub(/[ \t]*\($/, "", s);
		print s } }'
done | sort -u > "$tmp/api"
[ -s "$tmp/api" ] || { echo "symbols: found no NEXUS_API declarations"; exit 99; }

# 2. Names listed in the version script (any node), and no wildcard
#    outside 'local: *;'.
sed -e 's,/\*.*\*/,,g' "$map" | awk '
	/\/\*/ { inc = 1 } inc { if (/\*\//) inc = 0; next }
	{ print }' > "$tmp/map.txt"
awk '/local:/ { loc = 1; next } /global:/ { loc = 0; next }
	!loc && /[*?[]/ { print NR ": " $0 }' "$tmp/map.txt" > "$tmp/wild"
if [ -s "$tmp/wild" ]; then
	echo "FAIL: lib/libnexus.map uses a wildcard for global symbols:"
	sed 's/^/    /' "$tmp/wild"
	echo "      list every exported symbol by name instead."
	fail=1
fi
awk '/local:/ { loc = 1 } /global:/ { loc = 0 }
	/^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*;/ && !loc {
		gsub(/[[:space:];]/, ""); print }' "$tmp/map.txt" | sort > "$tmp/map"
sort -u "$tmp/map" > "$tmp/map.u"
if ! cmp -s "$tmp/map" "$tmp/map.u"; then
	echo "FAIL: lib/libnexus.map lists a symbol twice:"
	comm -23 "$tmp/map" "$tmp/map.u" | sed 's/^/    /'
	fail=1
fi

# 3. What the built library really exports.
$NM -D --defined-only "$so" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	sort -u > "$tmp/exported" || exit 99

for s in $(comm -23 "$tmp/api" "$tmp/map.u"); do
	hdr=$(grep -l "\\<$s[[:space:]]*(" "$top_srcdir"/include/nexus/*.h | head -n 1)
	echo "FAIL: $s is declared NEXUS_API in include/nexus/${hdr##*/} but is"
	echo "      not in lib/libnexus.map, so it is not exported.  Add the line"
	printf '\t\t%s;\n' "$s"
	echo "      to the LIBNEXUS_1.0 node of lib/libnexus.map (keep it sorted)."
	fail=1
done
for s in $(comm -13 "$tmp/api" "$tmp/map.u"); do
	echo "FAIL: lib/libnexus.map lists $s, which no include/nexus/*.h header"
	echo "      declares with NEXUS_API: declare it (with a doc comment) or"
	echo "      remove it from the map."
	fail=1
done
for s in $(comm -23 "$tmp/api" "$tmp/exported"); do
	comm -12 "$tmp/api" "$tmp/map.u" | grep -qx "$s" || continue
	echo "FAIL: $s is declared and listed in lib/libnexus.map but the built"
	echo "      library does not export it: define it (non-static) in lib/."
	fail=1
done
for s in $(comm -13 "$tmp/api" "$tmp/exported"); do
	case $s in
	nexus_*) why="is not declared NEXUS_API in include/nexus/*.h" ;;
	*) why="is not a nexus_* symbol" ;;
	esac
	echo "FAIL: libnexus.so exports $s, which $why: make it static, or"
	echo "      remove it from lib/libnexus.map."
	fail=1
done
# Every exported symbol carries a version.
if $NM -D --defined-only "$so" | awk '$2 != "A"' | grep -v '@@LIBNEXUS_' > "$tmp/unv"; then
	echo "FAIL: unversioned exports:"; sed 's/^/    /' "$tmp/unv"; fail=1
fi

n=$(wc -l < "$tmp/api")
[ $fail = 0 ] && echo "symbols: $n NEXUS_API functions, all listed and exported, nothing else"
exit $fail
