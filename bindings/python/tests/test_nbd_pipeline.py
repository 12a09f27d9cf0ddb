# SPDX-License-Identifier: MIT
"""Pipelines that end in an NBD export: real I/O through
``file | crypt | nbd`` and through Device.export(), read back and written
by outside clients (nbdsh, qemu-img)."""

import errno
import os
import subprocess
import time

import pytest

import nexus
from conftest import (free_port, have_driver, nbdsh, nbdsh_argv, need_tool,
                      run, tool_env, wait_listening)

MiB = 1 << 20


@pytest.fixture
def nbd_ctx(ctx):
    if not have_driver(ctx, "nbd"):
        pytest.skip("the nbd export is not built into this libnexus")
    return ctx


def pattern(n, seed):
    return bytes(((i >> 9) * 13 + seed + i) & 0xFF for i in range(n))


def make_key(path):
    key = os.urandom(64)
    while key[:32] == key[32:]:  # XTS refuses equal halves
        key = os.urandom(64)
    path.write_bytes(key)
    os.chmod(path, 0o600)
    return key


def xts_encrypt(key, data, sector_size=512):
    """AES-XTS, tweak = sector number (aes-xts-plain64), with an
    implementation independent of libnexus; None if unavailable."""
    try:
        from cryptography.hazmat.primitives.ciphers import (Cipher,
                                                            algorithms,
                                                            modes)
    except ImportError:
        return None
    out = bytearray()
    for i in range(0, len(data), sector_size):
        tweak = (i // sector_size).to_bytes(16, "little")
        enc = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
        out += enc.update(data[i:i + sector_size]) + enc.finalize()
    return bytes(out)


def test_file_crypt_nbd(nbd_ctx, tmp_path):
    ctx = nbd_ctx
    if not have_driver(ctx, "crypt"):
        pytest.skip("the crypt transform is not built into this libnexus")
    img, keyfile = tmp_path / "vol.img", tmp_path / "vol.key"
    key = make_key(keyfile)
    port = free_port()
    uri = "nbd://127.0.0.1:%d" % port
    text = ("file:%s,create=on,size=4M | crypt:key-file=%s | "
            "nbd:listen=127.0.0.1:%d" % (img, keyfile, port))
    plain = pattern(MiB, 5)
    with ctx.open_pipeline(text) as pl:
        assert pl.export is not None
        assert pl.export.spec.startswith("nbd:listen=")
        dev = pl.device
        assert dev.info.driver == "crypt"
        assert [c.info.driver for c in dev.children] == ["file"]
        wait_listening(port)

        # Written through the Python device, read by nbdsh over NBD.
        dev.pwrite(plain, 0, fua=True)
        got = nbdsh(uri, "import sys; "
                    "sys.stdout.buffer.write(h.pread(%d, 0))" % MiB)
        assert got == plain

        # Written by nbdsh over NBD, read by the Python device.
        nbdsh(uri, "h.pwrite(b'\\xc3' * 65536, %d); h.flush()" % (2 * MiB))
        assert dev.pread(65536, 2 * MiB) == b"\xc3" * 65536

        # qemu-img sees the same plaintext over NBD.
        qemu_img = need_tool("qemu-img")
        out = tmp_path / "plain.raw"
        run(qemu_img, "convert", "-f", "raw", "-O", "raw", uri, str(out))
        data = out.read_bytes()
        assert data[:MiB] == plain
        assert data[2 * MiB:2 * MiB + 65536] == b"\xc3" * 65536

    # At rest the file holds ciphertext: AES-XTS of the plaintext.
    raw = img.read_bytes()
    assert raw[:MiB] != plain
    expect = xts_encrypt(key, plain)
    if expect is not None:
        assert raw[:MiB] == expect

    # The same key, a context secret, decrypts it again.
    ctx.set_secret("vol", key)
    with pytest.raises(FileExistsError):
        ctx.set_secret("vol", key)
    with ctx.open("file:%s | crypt:key-name=vol" % img) as dev:
        assert dev.pread(MiB, 0) == plain
        ctx.remove_secret("vol")     # the open device keeps its copy
        assert dev.pread(MiB, 0) == plain
    with pytest.raises(FileNotFoundError):
        ctx.remove_secret("vol")
    with pytest.raises(nexus.NexusError):
        ctx.open("file:%s | crypt:key-name=vol" % img)
    # Without the crypt stage the data stays encrypted.
    with ctx.open("file:%s" % img) as dev:
        assert dev.pread(MiB, 0) == raw[:MiB]


def test_wrong_key_reads_garbage(nbd_ctx, tmp_path):
    ctx = nbd_ctx
    if not have_driver(ctx, "crypt"):
        pytest.skip("the crypt transform is not built into this libnexus")
    img = tmp_path / "v.img"
    ctx.set_secret_hex("a", "11" * 32 + "22" * 32)
    ctx.set_secret_hex("b", "33" * 32 + "44" * 32)
    with ctx.open("file:%s,create=on,size=1M | crypt:key-name=a" % img) as d:
        d.pwrite(pattern(4096, 1), 0)
    with ctx.open("file:%s | crypt:key-name=b" % img) as d:
        assert d.pread(4096, 0) != pattern(4096, 1)
    with pytest.raises(nexus.NexusError) as ei:
        ctx.set_secret_hex("bad", "xyz")
    assert ei.value.errno == errno.EINVAL and "xyz" not in ei.value.strerror
    with pytest.raises(nexus.NexusError) as ei:
        ctx.set_secret("bad name!", b"k" * 64)
    assert ei.value.errno == errno.EINVAL


def test_device_export_and_connections(nbd_ctx, tmp_path):
    ctx = nbd_ctx
    with ctx.open("mem:size=8M") as dev:
        port = free_port()
        uri = "nbd://127.0.0.1:%d" % port
        exp = dev.export("nbd:listen=127.0.0.1:%d" % port)
        assert exp.device is dev and exp.spec.endswith(str(port))
        wait_listening(port)
        dev.pwrite(pattern(65536, 3), 0)

        # A client that stays connected shows up in connections().
        client = subprocess.Popen(
            nbdsh_argv() + ["-u", uri, "-c",
                            "import sys\n"
                            "h.pread(65536, 0)\n"
                            "print('up', flush=True)\n"
                            "sys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=tool_env())
        try:
            assert client.stdout.readline().strip() == b"up"
            deadline = time.monotonic() + 10
            conns = exp.connections()
            while not conns and time.monotonic() < deadline:
                time.sleep(0.05)
                conns = exp.connections()
            assert len(conns) == 1
            c = conns[0]
            assert isinstance(c, nexus.ConnInfo)
            assert c.peer.startswith("127.0.0.1")
            assert c.host_id == ""           # NBD has no host identity
            assert c.bytes_read >= 65536 and c.requests >= 1
        finally:
            client.stdin.close()
            client.wait(timeout=30)

        got = nbdsh(uri, "import sys; "
                    "sys.stdout.buffer.write(h.pread(65536, 0))")
        assert got == pattern(65536, 3)
        exp.stop()
        exp.stop()  # harmless
        with pytest.raises(ValueError):
            exp.connections()
        # The device outlives its export.
        assert dev.pread(65536, 0) == pattern(65536, 3)

        # An export left running is stopped when its device closes.
        port2 = free_port()
        exp2 = dev.export("nbd:listen=127.0.0.1:%d" % port2)
    assert exp2.closed and dev.closed


def test_export_errors(nbd_ctx):
    with nbd_ctx.open("mem:size=1M") as dev:
        with pytest.raises(nexus.NexusError) as ei:
            dev.export("mem:size=1M")
        assert ei.value.errno > 0 and ei.value.strerror
        with pytest.raises(nexus.NexusError):
            dev.export("nbd:bogus=1")
