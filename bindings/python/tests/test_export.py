# SPDX-License-Identifier: MIT
"""Exports made from nothing (Context.create_export) serving devices added
and removed while they run; the reference an export holds on a device."""

import errno

import pytest

import nexus
from conftest import free_port, have_driver, nbdsh, wait_listening


@pytest.fixture
def nbd_ctx(ctx):
    if not have_driver(ctx, "nbd"):
        pytest.skip("the nbd export is not built into this libnexus")
    return ctx


def test_export_holds_the_device(nbd_ctx):
    ctx = nbd_ctx
    port = free_port()
    spec = "nbd:listen=127.0.0.1:%d" % port
    dev = ctx.open("mem:size=2M")
    with ctx.create_export(spec) as exp:
        assert exp.spec == spec and exp.context is ctx
        assert len(exp) == 0 and exp.devices == [] and exp.device is None
        assert exp  # empty, but an export all the same
        exp.add(dev, name="vol")
        assert len(exp) == 1 and exp.devices == [dev] and dev in exp
        wait_listening(port)
        dev.pwrite(b"\x42" * 4096, 0)
        got = nbdsh("nbd://127.0.0.1:%d/vol" % port,
                    "import sys; sys.stdout.buffer.write(h.pread(4096, 0))")
        assert got == b"\x42" * 4096

        # Served: closing the device is refused with the library's EBUSY,
        # whose message names the export, and the device stays usable.
        with pytest.raises(nexus.NexusError) as ei:
            dev.close()
        assert ei.value.errno == errno.EBUSY
        assert ei.value.function == "nexus_dev_close"
        assert spec in ei.value.strerror
        assert not dev.closed and dev.pread(4096, 0) == b"\x42" * 4096

        with pytest.raises(nexus.NexusError) as ei:
            exp.add(dev)
        assert ei.value.errno == errno.EEXIST

        exp.remove(dev)
        assert len(exp) == 0 and dev not in exp
        with pytest.raises(FileNotFoundError):
            exp.remove(dev)
        dev.close()
        assert dev.closed
    assert exp.closed
    with pytest.raises(ValueError):
        len(exp)


def test_closing_the_export_releases_its_devices(nbd_ctx):
    ctx = nbd_ctx
    dev = ctx.open("mem:size=1M")
    exp = ctx.create_export("nbd:listen=127.0.0.1:%d" % free_port())
    exp.add(dev, read_only=True)
    with pytest.raises(OSError):
        dev.close()
    exp.close()
    exp.close()  # harmless
    dev.close()


def test_several_devices_on_one_export(nbd_ctx):
    ctx = nbd_ctx
    port = free_port()
    a, b = ctx.open("mem:size=1M"), ctx.open("mem:size=2M")
    with ctx.create_export("nbd:listen=127.0.0.1:%d" % port) as exp:
        exp.add(a, name="a")
        try:
            exp.add(b, name="b")
        except nexus.NexusError as e:
            assert e.errno == errno.EOPNOTSUPP, e
            pytest.skip("this NBD export serves one device (%s)"
                        % e.strerror)
        assert len(exp) == 2
        wait_listening(port)
        for name, size in (("a", 1 << 20), ("b", 2 << 20)):
            out = nbdsh("nbd://127.0.0.1:%d/%s" % (port, name),
                        "print(h.get_size())")
            assert int(out) == size
        exp.remove(a)
        assert exp.devices == [b]


def test_context_close_with_served_devices(nbd_ctx):
    ctx = nexus.Context(reactors=1)
    dev = ctx.open("mem:size=1M")
    exp = ctx.create_export("nbd:listen=127.0.0.1:%d" % free_port())
    exp.add(dev)
    ctx.close()
    assert exp.closed and dev.closed


def test_device_export_shorthand_stops_with_the_device(nbd_ctx):
    dev = nbd_ctx.open("mem:size=1M")
    exp = dev.export("nbd:listen=127.0.0.1:%d" % free_port(), name="x")
    assert exp.devices == [dev]
    dev.close()  # its own export stops first
    assert exp.closed and dev.closed


def test_export_misuse(nbd_ctx):
    ctx = nbd_ctx
    with pytest.raises(nexus.NexusError) as ei:
        ctx.create_export("mem:size=1M")
    assert ei.value.errno == errno.EINVAL and ei.value.strerror
    with pytest.raises(nexus.NexusError):
        ctx.create_export("nbd:bogus=1")
    with pytest.raises(TypeError):
        nexus.Export()
    with ctx.create_export("nbd:listen=127.0.0.1:%d" % free_port()) as exp:
        with pytest.raises(TypeError):
            exp.add("mem:size=1M")
        other = nexus.Context(reactors=1)
        try:
            with other.open("mem:size=1M") as foreign:
                with pytest.raises(nexus.NexusError) as ei:
                    exp.add(foreign)
                assert ei.value.errno == errno.EINVAL
        finally:
            other.close()
