#!/bin/sh
# doc/story.md, step by step: encrypt a volume with nexus-copy, export
# the ciphertext with nexus-pipe, copy it encrypted over NBD, decrypt
# the copy, verify.  Keep the commands in sync with the document (only
# the port differs: a free one instead of 10809).
. "${srcdir:-.}/tests/tools/common.sh"
need mkfs.ext4
need debugfs
need python3
has_driver transform crypt || skip "no crypt transform"
has_driver export nbd || skip "no nbd export"
has_driver source nbd || skip "no nbd source (nbd:// client)"
cd "$T" || fail "cd $T"
PORT=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')

# 0. a volume and a key
mkdir content
echo "the quarterly numbers, strictly confidential" > content/secret.txt
mkfs.ext4 -q -d content plain.img 256M || fail "mkfs.ext4"
head -c 64 /dev/urandom > vol.key
chmod 600 vol.key

# 1. encrypt the volume
"$COPY" file:plain.img 'file:enc.img,create=on,size=256M | crypt:key-file=vol.key' ||
	fail "encrypt"
[ "$(grep -c 'strictly confidential' plain.img)" = 1 ] || fail "plaintext lacks the secret"
[ "$(grep -c 'strictly confidential' enc.img)" = 0 ] || fail "ciphertext shows the secret"
cmp -s plain.img enc.img && fail "enc.img is the plaintext"
[ "$(stat -c %s enc.img)" = 268435456 ] || fail "enc.img size"

# 2. export the ciphertext, no key on this side
start_pipe exp "file:enc.img,readonly=on | nbd:listen=127.0.0.1:$PORT,name=vol" -q
[ "$exp_ADDR" = "127.0.0.1:$PORT" ] || fail "listening on '$exp_ADDR'"
if command -v nbdinfo > /dev/null; then
	timeout 20 nbdinfo --size "nbd://127.0.0.1:$PORT/vol" | grep -qx 268435456 ||
		fail "nbdinfo on the export"
fi

# 3. copy it, still encrypted, to another place
"$COPY" --verify "nbd://127.0.0.1:$PORT/vol" file:copy.img,create=on,size=256M ||
	fail "copy over NBD"
cmp enc.img copy.img || fail "the copy is not the ciphertext"
kill -TERM "$exp_PID"
stop_wait "$exp_PID" || fail "nexus-pipe exit $?"

# 4. decrypt there
"$COPY" 'file:copy.img | crypt:key-file=vol.key' file:plain2.img,create=on,size=256M ||
	fail "decrypt"
# ... or served decrypted
start_pipe dec "file:copy.img | crypt:key-file=vol.key | nbd:socket=$T/vol.sock" -q
"$COPY" -q --verify "nbd+unix:///?socket=$T/vol.sock" file:plain.img ||
	fail "the decrypted export differs from the original"
kill -INT "$dec_PID"
stop_wait "$dec_PID" || fail "nexus-pipe exit $?"

# 5. verify
cmp plain.img plain2.img || fail "decrypted copy differs from the original"
debugfs -R 'cat /secret.txt' plain2.img 2>/dev/null | grep -q 'strictly confidential' ||
	fail "debugfs cannot read the secret back"
# --verify reads back through the pipelines: decrypts again
"$COPY" -q --verify file:plain.img 'file:enc.img | crypt:key-file=vol.key' ||
	fail "verify through crypt"
# the wrong key gives noise, not the data
head -c 64 /dev/urandom > other.key
"$COPY" -q 'file:copy.img | crypt:key-file=other.key' file:wrong.img,create=on,size=256M ||
	fail "decrypt with another key"
cmp -s plain.img wrong.img && fail "another key decrypted the volume"
[ "$(grep -c 'strictly confidential' wrong.img)" = 0 ] || fail "another key shows the secret"
echo ok
