#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The crypt stage against an independent AES-XTS: Python's cryptography.

For 512- and 4096-byte sectors, AES-128 and AES-256, with and without an
IV offset, with the tweak in sector-size or 512-byte units, and with the
key from a file, the environment or the API:
  1. data written through `file:X | crypt:...` (in requests whose iovec
     segments cut sectors at random places) is, sector by sector, what
     cryptography's AES-XTS makes of the same plaintext with the tweak =
     sector number (little-endian, 16 bytes), and bytes outside the
     written range are untouched;
  2. ciphertext made by cryptography reads back through crypt as the
     plaintext;
  3. WRITE_ZEROES reads back as zeroes through crypt, and what it left
     below is the encryption of zeroes.
crypt-io itself checks that the caller's buffer is unchanged by writes.
Usage: interop.py CRYPT_IO_BINARY WORKDIR
Exit 0 pass, 1 fail, 77 skip (cryptography missing).
"""
import os
import random
import subprocess
import sys

try:
    from cryptography.hazmat.primitives.ciphers import (Cipher, algorithms,
                                                        modes)
except ImportError:
    print("SKIP: python3-cryptography is not installed")
    sys.exit(77)

TOOL, WORK = sys.argv[1], sys.argv[2]
DEV_SIZE = 4 << 20
failures = 0


def xts(key, tweak, data, encrypt):
    c = Cipher(algorithms.AES(key), modes.XTS(tweak.to_bytes(16, "little")))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


def transform(key, ss, iv_shift, iv_offset, offset, data, encrypt):
    out = bytearray()
    for i in range(0, len(data), ss):
        sector = (offset + i) // ss
        tweak = (sector << iv_shift) + iv_offset
        out += xts(key, tweak, data[i:i + ss], encrypt)
    return bytes(out)


def run(args, env=None, check=True):
    p = subprocess.run([TOOL] + args, env=env, capture_output=True,
                       timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("crypt-io %s failed (%d): %s" %
                           (" ".join(args), p.returncode,
                            p.stderr.decode(errors="replace")))
    return p


def fail(cfg, msg):
    global failures
    failures += 1
    print("FAIL [%s]: %s" % (cfg, msg))


def first_diff(a, b, ss):
    for i in range(0, min(len(a), len(b)), ss):
        if a[i:i + ss] != b[i:i + ss]:
            return i // ss
    return None


def one(ss, bits, iv_offset, large, keysrc, seed):
    rng = random.Random(seed)
    klen = bits // 8
    while True:
        key = bytes(rng.getrandbits(8) for _ in range(klen))
        if key[:klen // 2] != key[klen // 2:]:
            break
    iv_shift = 0 if large else (ss // 512).bit_length() - 1
    cfg = "sector=%d key=%d iv-offset=%d large=%s key-from=%s" % (
        ss, bits, iv_offset, large, keysrc)
    img = os.path.join(WORK, "x.img")
    keyfile = os.path.join(WORK, "k.bin")
    with open(keyfile, "wb") as f:
        f.write(key)
    os.chmod(keyfile, 0o600)
    env = dict(os.environ)
    pre = []
    opts = "sector-size=%d,key-size=%d" % (ss, bits)
    if iv_offset:
        opts += ",iv-offset=%d" % iv_offset
    if ss != 512:
        opts += ",iv-large-sectors=%s" % ("on" if large else "off")
    if keysrc == "file":
        opts += ",key-file=" + keyfile
    elif keysrc == "env":
        env["CRYPT_TEST_KEY"] = key.hex()
        opts += ",key-env=CRYPT_TEST_KEY"
    else:
        pre = ["-K", "vol:" + keyfile]
        opts += ",key-name=vol"
    pipeline = "file:%s | crypt:%s" % (img, opts)

    garbage = bytes(rng.getrandbits(8) for _ in range(DEV_SIZE))
    with open(img, "wb") as f:
        f.write(garbage)

    # 1. libnexus encrypts, cryptography checks
    nsec = rng.randrange(20, 70)
    off = rng.randrange(0, DEV_SIZE // ss - nsec) * ss
    plain = bytes(rng.getrandbits(8) for _ in range(nsec * ss))
    pin = os.path.join(WORK, "p.bin")
    with open(pin, "wb") as f:
        f.write(plain)
    run(pre + ["-S", str(seed), "-g", str(rng.choice([1, 7, 300, 3000])),
               "-c", str(rng.choice([ss, 8 * ss, 65536])), pipeline,
               "write", str(off), pin], env=env)
    with open(img, "rb") as f:
        disk = f.read()
    want = transform(key, ss, iv_shift, iv_offset, off, plain, True)
    got = disk[off:off + len(plain)]
    d = first_diff(got, want, ss)
    if d is not None:
        fail(cfg, "ciphertext of sector %d differs from cryptography's"
             % (off // ss + d))
    if disk[:off] != garbage[:off] or \
       disk[off + len(plain):] != garbage[off + len(plain):]:
        fail(cfg, "bytes outside the written range changed")

    # 2. cryptography encrypts, libnexus decrypts
    nsec2 = rng.randrange(10, 50)
    off2 = rng.randrange(0, DEV_SIZE // ss - nsec2) * ss
    plain2 = bytes(rng.getrandbits(8) for _ in range(nsec2 * ss))
    ct = transform(key, ss, iv_shift, iv_offset, off2, plain2, True)
    with open(img, "r+b") as f:
        f.seek(off2)
        f.write(ct)
    pout = os.path.join(WORK, "o.bin")
    run(pre + ["-S", str(seed + 1), "-g", str(rng.choice([1, 5, 513, 5000])),
               pipeline, "read", str(off2), str(len(plain2)), pout], env=env)
    with open(pout, "rb") as f:
        back = f.read()
    d = first_diff(back, plain2, ss)
    if d is not None or len(back) != len(plain2):
        fail(cfg, "sector %s of cryptography's ciphertext did not decrypt "
             "to the plaintext" % (off2 // ss + (d or 0)))

    # 3. WRITE_ZEROES: zeroes through crypt, encrypted zeroes below
    nz = rng.randrange(1, min(DEV_SIZE // ss, (2 << 20) // ss))
    offz = rng.randrange(0, DEV_SIZE // ss - nz) * ss
    run(pre + [pipeline, "zero", str(offz), str(nz * ss)], env=env)
    run(pre + ["-g", "1000", pipeline, "read", str(offz), str(nz * ss), pout],
        env=env)
    with open(pout, "rb") as f:
        if f.read() != bytes(nz * ss):
            fail(cfg, "write-zeroes of %d sectors at %d does not read back "
                 "as zeroes" % (nz, offz))
    with open(img, "rb") as f:
        f.seek(offz)
        raw = f.read(nz * ss)
    if raw != transform(key, ss, iv_shift, iv_offset, offz, bytes(nz * ss),
                        True):
        fail(cfg, "write-zeroes left something other than encrypted zeroes")
    print("ok   [%s]" % cfg)


def main():
    seed = 1
    cases = []
    for ss in (512, 4096):
        for bits in (512, 256):
            for iv_offset in (0, 1000003):
                for large in ((True,) if ss == 512 else (True, False)):
                    cases.append((ss, bits, iv_offset, large))
    srcs = ("file", "env", "api")
    for i, (ss, bits, ivo, large) in enumerate(cases):
        try:
            one(ss, bits, ivo, large, srcs[i % 3], seed)
        except Exception as e:  # a failing tool is a failed case
            fail("sector=%d key=%d" % (ss, bits), str(e))
        seed += 7
    if failures:
        print("%d failure(s)" % failures)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
