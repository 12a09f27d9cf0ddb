# SPDX-License-Identifier: MIT
"""Live device graphs: children attached to and detached from a running
transform (the "tee" test plugin of tests/graph), their ownership and
their events."""

import errno
import time

import pytest

import nexus
from conftest import built_plugin
from test_events import no_event


@pytest.fixture
def tee_ctx():
    path = built_plugin("nexus-tee.so")
    seen = []
    with nexus.Context(reactors=2, on_event=seen.append) as c:
        c.load_plugin(path)
        c.seen = seen
        yield c


def test_attach_and_detach(tee_ctx):
    ctx = tee_ctx
    tee = ctx.open("mem:size=1M | tee")
    (first,) = tee.children
    extra = ctx.open("mem:size=1M")
    tee.pwrite(b"1" * 4096, 0)
    tee.attach_child(extra)
    kids = tee.children
    assert len(kids) == 2 and kids[0].info.driver == "mem" and kids[1] is extra
    tee.pwrite(b"2" * 4096, 0)          # goes to both children now
    assert extra.pread(4096, 0) == b"2" * 4096

    # Owned by the tee: its close is refused, it stays usable.
    with pytest.raises(nexus.NexusError) as ei:
        extra.close()
    assert ei.value.errno == errno.EBUSY
    assert not extra.closed and extra.pread(512, 0) == b"2" * 512
    with pytest.raises(nexus.NexusError) as ei:
        tee.attach_child(extra)
    assert ei.value.errno in (errno.EBUSY, errno.EEXIST, errno.EINVAL)

    tee.detach_child(extra)
    assert len(tee.children) == 1
    tee.pwrite(b"3" * 4096, 0)          # no longer reaches extra
    assert extra.pread(4096, 0) == b"2" * 4096
    with pytest.raises(FileNotFoundError):
        tee.detach_child(extra)
    extra.close()
    assert extra.closed

    # The original child, detached through its view, is ours to close
    # (after another one took its place: the last child stays).
    other = ctx.open("mem:size=1M")
    tee.attach_child(other)
    tee.detach_child(first)
    assert tee.pread(512, 0) == bytes(512)  # reads go to `other` now

    # The events: extra attached and detached, other attached, first
    # detached, in that order, naming the Python objects (waited for
    # before tee and first close).
    want = [("child-attached", extra), ("child-detached", extra),
            ("child-attached", other), ("child-detached", first)]
    deadline = time.monotonic() + 20

    def got():
        return [(e.kind_name, e.child) for e in list(ctx.seen)
                if e.kind in (nexus.EventKind.CHILD_ATTACHED,
                              nexus.EventKind.CHILD_DETACHED)]
    while len(got()) < len(want) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not got():
        no_event("child-attached", "Device.attach_child", 20)
    # A child closed before its event is delivered reads as None.
    assert len(got()) == len(want), got()
    for (kind, child), (wkind, wchild) in zip(got(), want):
        assert kind == wkind and child in (wchild, None), got()
    # Every event arrived while tee was open, so each names it (an event
    # delivered after its device closed would read as None).
    assert all(e.device is tee for e in ctx.seen
               if e.kind == nexus.EventKind.CHILD_ATTACHED)
    first.close()
    assert first.closed
    tee.close()
    assert other.closed and tee.closed


def test_attach_misuse(ctx):
    a = ctx.open("mem:size=1M | fault")
    b = ctx.open("mem:size=1M")
    with pytest.raises(nexus.NexusError) as ei:
        a.attach_child(b)
    assert ei.value.errno == errno.EOPNOTSUPP
    with pytest.raises(TypeError):
        a.attach_child("mem:size=1M")
    (child,) = a.children
    with pytest.raises(nexus.NexusError):
        a.detach_child(child)
    assert not b.closed
