# SPDX-License-Identifier: MIT
"""Errors: errno, the library's message, OSError subclasses, lifetimes."""

import errno
import os

import pytest

import nexus


def test_missing_file_is_file_not_found(ctx, tmp_path):
    missing = str(tmp_path / "nope.img")
    with pytest.raises(FileNotFoundError) as ei:
        ctx.open("file:" + missing)
    e = ei.value
    assert isinstance(e, nexus.NexusError) and isinstance(e, OSError)
    assert e.errno == errno.ENOENT
    assert missing in e.strerror          # the library's own message
    assert e.function == "nexus_dev_open"
    assert missing in str(e)


def test_directory(ctx, tmp_path):
    with pytest.raises(IsADirectoryError) as ei:
        ctx.open("file:" + str(tmp_path))
    assert ei.value.errno == errno.EISDIR


def test_unknown_driver(ctx):
    with pytest.raises(nexus.NexusError) as ei:
        ctx.open("nosuchdriver:x=1")
    assert "nosuchdriver" in ei.value.strerror


def test_syntax_error_names_column(ctx):
    with pytest.raises(nexus.NexusError) as ei:
        ctx.open("mem:size=1M | | mem:size=1M")
    assert ei.value.errno == errno.EINVAL
    assert "column" in ei.value.strerror


def test_check_pipeline(ctx):
    assert "mem" in ctx.check_pipeline("mem:size=1M")
    with pytest.raises(nexus.NexusError) as ei:
        ctx.check_pipeline("mem:bogus=1")
    assert ei.value.errno == errno.EINVAL and "bogus" in ei.value.strerror


def test_misaligned_and_out_of_range(ctx):
    with ctx.open("mem:size=1M") as dev:
        with pytest.raises(nexus.NexusError) as ei:
            dev.pread(100, 0)
        assert ei.value.errno == errno.EINVAL
        assert "align" in ei.value.strerror
        with pytest.raises(OSError) as ei:
            dev.pwrite(bytes(4096), 1 << 20)
        assert ei.value.errno == errno.EINVAL


def test_readonly_device(ctx, tmp_path):
    p = tmp_path / "ro.img"
    p.write_bytes(bytes(65536))
    with ctx.open("file:%s,readonly=on" % p) as dev:
        assert dev.info.read_only
        with pytest.raises(OSError) as ei:
            dev.pwrite(bytes(512), 0)
        assert ei.value.errno == errno.EROFS


def test_closed_handles(ctx):
    dev = ctx.open("mem:size=1M")
    dev.close()
    dev.close()  # harmless
    assert dev.closed
    with pytest.raises(ValueError):
        dev.pread(512, 0)
    with pytest.raises(ValueError):
        dev.info


def test_context_close_closes_children():
    ctx = nexus.Context(reactors=1)
    d1 = ctx.open("mem:size=1M")
    pl = ctx.open_pipeline("mem:size=1M")
    ctx.close()
    assert d1.closed and pl.closed and pl._device.closed
    with pytest.raises(ValueError):
        ctx.open("mem:size=1M")
    with pytest.raises(ValueError):
        d1.pread(512, 0)


def test_bad_context_options():
    with pytest.raises(nexus.NexusError) as ei:
        nexus.Context(reactors=100000)
    assert ei.value.errno == errno.EINVAL


def test_cannot_construct_directly():
    with pytest.raises(TypeError):
        nexus.Device()
    with pytest.raises(TypeError):
        nexus.Pipeline()


def test_errno_only_classes():
    e = nexus.errors.error_for(-errno.EACCES, "", "f")
    assert isinstance(e, PermissionError) and isinstance(e, nexus.NexusError)
    assert e.strerror == os.strerror(errno.EACCES)
