# SPDX-License-Identifier: MIT
"""Devices: I/O with every kind of buffer, info, stats, block status."""

import array
import errno
import mmap

import pytest

import nexus
from nexus import Op

MiB = 1 << 20


@pytest.fixture
def dev(ctx):
    with ctx.open("mem:size=4M") as d:
        yield d


def pattern(n, seed=1):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def test_version():
    v = nexus.version()
    assert v and v[0].isdigit()


def test_info(dev):
    info = dev.info
    assert isinstance(info, nexus.DeviceInfo)
    assert info.size == 4 * MiB == dev.size
    assert info.logical_block_size == 512 == dev.block_size
    assert info.driver == "mem"
    assert info.name == "mem:size=4M" == dev.name
    assert info.supports(Op.READ) and info.supports(Op.WRITE)
    assert Op.TRIM in info.ops
    assert not info.read_only
    assert info.max_io_size >= 4096


def test_pwrite_pread_bytes(dev):
    data = pattern(8192)
    assert dev.pwrite(data, 4096) == 8192
    got = dev.pread(8192, 4096)
    assert isinstance(got, bytes) and got == data
    assert dev.pread(4096, 0) == bytes(4096)


def test_zero_length(dev):
    assert dev.pread(0, 0) == b""
    assert dev.readinto(bytearray(), 512) == 0
    assert dev.pwrite(b"", 0) == 0
    assert dev.op_stats(Op.READ).ops == 0


def test_fua_write(dev):
    dev.pwrite(pattern(512), 0, fua=True)
    assert dev.pread(512, 0) == pattern(512)


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "mmap",
                                  "array"])
def test_readinto_any_writable_buffer(dev, kind):
    data = pattern(16384, seed=3)
    dev.pwrite(data, 0)
    if kind == "bytearray":
        buf = bytearray(16384)
    elif kind == "memoryview":
        backing = bytearray(32768)
        buf = memoryview(backing)[8192:8192 + 16384]
    elif kind == "mmap":
        buf = mmap.mmap(-1, 16384)
    else:
        buf = array.array("I", bytes(16384))
    assert dev.readinto(buf, 0) == 16384
    assert bytes(memoryview(buf).cast("B")) == data
    if kind == "memoryview":
        assert backing[:8192] == bytes(8192)      # untouched around it
        assert backing[8192 + 16384:] == bytes(8192)
    if kind == "mmap":
        buf.close()  # no export left behind: closing works


def test_readinto_is_zero_copy(ctx, tmp_path):
    # readinto straight into a shared file mapping: the data lands in the
    # file without passing through any Python object.
    path = tmp_path / "target.bin"
    path.write_bytes(bytes(8192))
    with ctx.open("mem:size=1M") as d, open(path, "r+b") as f:
        d.pwrite(pattern(8192, 9), 0)
        m = mmap.mmap(f.fileno(), 8192)
        d.readinto(m, 0)
        m.flush()
        m.close()
    assert path.read_bytes() == pattern(8192, 9)


@pytest.mark.parametrize("kind", ["bytearray", "memoryview-ro", "mmap",
                                  "mmap-ro"])
def test_pwrite_any_buffer(dev, tmp_path, kind):
    data = pattern(4096, seed=5)
    if kind == "bytearray":
        buf = bytearray(data)
    elif kind == "memoryview-ro":
        buf = memoryview(b"xx" + data)[2:]
    else:
        p = tmp_path / "src"
        p.write_bytes(data)
        f = open(p, "r+b")
        buf = mmap.mmap(f.fileno(), 4096,
                        access=mmap.ACCESS_READ if kind == "mmap-ro"
                        else mmap.ACCESS_WRITE)
    dev.pwrite(buf, 512)
    assert dev.pread(4096, 512) == data
    if kind.startswith("mmap"):
        buf.close()
        f.close()


def test_readonly_buffer_rejected_for_read(dev):
    with pytest.raises(TypeError):
        dev.readinto(b"\0" * 512, 0)
    with pytest.raises(TypeError):
        dev.readinto(memoryview(bytes(512)), 0)


def test_non_contiguous_rejected(dev):
    buf = memoryview(bytearray(2048))[::2]
    with pytest.raises(BufferError):
        dev.readinto(buf, 0)


def test_vectored(dev):
    a, b = pattern(512, 1), pattern(1024, 2)
    assert dev.pwritev([a, bytearray(b)], 1024) == 1536
    x, y = bytearray(1024), mmap.mmap(-1, 512)
    assert dev.preadv([x, y], 1024) == 1536
    assert bytes(x) == a + b[:512] and y[:] == b[512:]


def test_large_io_is_split(ctx):
    with ctx.open("mem:size=48M") as d:
        big = bytes(range(256)) * (40 * MiB // 256)
        assert big and len(big) > d.info.max_io_size
        assert d.pwrite(big, 0) == len(big)
        out = bytearray(len(big))
        assert d.readinto(out, 0) == len(big)
        assert out == big


def test_flush_trim_write_zeroes(dev):
    dev.pwrite(b"\xff" * 8192, 0)
    dev.flush()
    dev.write_zeroes(0, 4096)
    assert dev.pread(4096, 0) == bytes(4096)
    assert dev.pread(4096, 4096) == b"\xff" * 4096
    dev.write_zeroes(4096, 4096, fua=True, no_unmap=True)
    assert dev.pread(4096, 4096) == bytes(4096)
    dev.pwrite(b"\xff" * 4096, 0)
    dev.trim(0, 4096)
    if nexus.DeviceFlag.TRIM_ZEROES in dev.info.flags:
        assert dev.pread(4096, 0) == bytes(4096)


def test_block_status(dev):
    dev.pwrite(b"\1" * 65536, 0)
    ext = dev.block_status(0, dev.size)
    assert ext and ext[0].offset == 0
    assert sum(e.length for e in ext) <= dev.size
    for prev, nxt in zip(ext, ext[1:]):
        assert prev.offset + prev.length == nxt.offset
    assert not ext[0].zero
    if len(ext) > 1:
        assert ext[-1].zero


def test_stats(dev):
    before = dev.stats()
    dev.pwrite(b"a" * 4096, 0)
    dev.pread(4096, 0)
    dev.pread(512, 0)
    dev.flush()
    st = dev.stats()
    assert isinstance(st, nexus.DeviceStats)
    assert st.per_op[Op.WRITE].ops == before.per_op[Op.WRITE].ops + 1
    assert st.per_op[Op.READ].ops == before.per_op[Op.READ].ops + 2
    assert st.per_op[Op.FLUSH].ops == before.per_op[Op.FLUSH].ops + 1
    assert st.ops == before.ops + 4 and st.errors == before.errors
    assert st.per_op[Op.WRITE].bytes - before.per_op[Op.WRITE].bytes == 4096
    assert st.per_op[Op.READ].bytes - before.per_op[Op.READ].bytes == 4608
    assert set(st.per_op) >= set(Op)
    assert dev.op_stats(Op.WRITE) == st.per_op[Op.WRITE]
    assert st.bytes_written - before.bytes_written == 4096
    assert st.bytes_read - before.bytes_read == 4608
    assert len(st.latency) == 128 and sum(st.latency) >= 4
    assert st.percentile(99) >= st.percentile(50) > 0
    assert nexus.DeviceStats.bucket_floor(0) == 0
    assert nexus.DeviceStats.bucket_floor(10) > 0
    with pytest.raises(nexus.NexusError):
        dev.pread(100, 0)
    with pytest.raises(nexus.NexusError) as ei:
        dev.op_stats(1000)
    assert ei.value.errno == errno.ERANGE
    assert dev.state == nexus.DevState.ONLINE


def test_threads(ctx):
    import threading
    with ctx.open("mem:size=16M") as d:
        errors = []

        def worker(i):
            try:
                data = pattern(65536, seed=i)
                for k in range(20):
                    off = (i * 20 + k) * 65536
                    d.pwrite(data, off)
                    assert d.pread(65536, off) == data
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors
        assert d.op_stats(Op.WRITE).ops == 160


def test_fault_control_and_children(ctx):
    with ctx.open("mem:size=1M | fault:errno=ENOSPC,ops=write") as dev:
        assert dev.info.driver == "fault"
        (child,) = dev.children
        assert child.info.driver == "mem" and child.children == []
        with pytest.raises(OSError) as ei:
            dev.pwrite(b"x" * 512, 0)
        assert ei.value.errno == errno.ENOSPC
        assert dev.op_stats(Op.WRITE).errors == 1
        assert dev.stats().errors == 1
        dev.control("fault.enable", False)
        dev.pwrite(b"x" * 512, 0)
        assert child.pread(512, 0) == b"x" * 512
        with pytest.raises(nexus.NexusError) as ei:
            dev.control("fault.nosuchsetting", "1")
        assert ei.value.errno in (errno.ENOENT, errno.EINVAL)
        assert "nosuchsetting" in ei.value.strerror
        child.close()  # belongs to the stack: no effect
        assert child.pread(512, 0) == b"x" * 512
    assert child.closed
    with pytest.raises(ValueError):
        child.pread(512, 0)
