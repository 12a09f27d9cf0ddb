# SPDX-License-Identifier: MIT
"""Real I/O through file pipelines, checked by outside tools (qemu-img)
and by the example program."""

import pathlib
import subprocess
import sys

from conftest import need_tool, run

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def pattern(n, seed):
    return bytes(((i >> 9) * 31 + seed + i) & 0xFF for i in range(n))


def test_write_through_file_read_by_qemu_img(ctx, tmp_path):
    qemu_img = need_tool("qemu-img")
    img = tmp_path / "disk.img"
    data = pattern(1 << 20, 7)
    with ctx.open_pipeline("file:%s,create=on,size=4M" % img) as pl:
        dev = pl.device
        assert dev.size == 4 << 20
        dev.pwrite(data, 1 << 20)
        dev.write_zeroes(3 << 20, 1 << 20)
        dev.flush()
    # qemu-img, an independent reader, sees exactly what we wrote.
    expect = tmp_path / "expect.img"
    expect.write_bytes(bytes(1 << 20) + data + bytes(2 << 20))
    run(qemu_img, "compare", "-f", "raw", "-F", "raw", str(img),
        str(expect))
    out = tmp_path / "out.raw"
    run(qemu_img, "convert", "-f", "raw", "-O", "raw", str(img), str(out))
    assert out.read_bytes()[1 << 20:2 << 20] == data


def test_read_what_qemu_io_wrote(ctx, tmp_path):
    qemu_io = need_tool("qemu-io")
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(2 << 20))
    run(qemu_io, "-f", "raw", "-c", "write -P 0xa5 65536 131072", str(img))
    with ctx.open("file:%s,direct=off" % img) as dev:
        buf = bytearray(131072)
        dev.readinto(buf, 65536)
        assert buf == b"\xa5" * 131072
        assert dev.pread(65536, 0) == bytes(65536)


def test_hello_example(tmp_path):
    img = tmp_path / "hello.img"
    cp = subprocess.run([sys.executable, str(EXAMPLES / "hello.py"),
                         "file:%s,create=on,size=1M" % img],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert b"(ok)" in cp.stdout and b"1 writes" in cp.stdout
    assert img.read_bytes().startswith(b"hello from libnexus")
    cp = subprocess.run([sys.executable, str(EXAMPLES / "hello.py"),
                         "file:%s" % (tmp_path / "missing")],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=60)
    assert cp.returncode == 1 and b"missing" in cp.stderr
