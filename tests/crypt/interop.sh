#!/bin/sh
# SPDX-License-Identifier: MIT
# crypt vs Python's cryptography (AES-XTS): see interop.py.
srcdir=${srcdir:-.}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
python3 -c 'import cryptography' 2>/dev/null ||
	{ echo "SKIP: python3-cryptography is not installed"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/crypt-interop.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
timeout 600 python3 "$srcdir/tests/crypt/interop.py" ./tests/crypt/crypt-io "$work"
