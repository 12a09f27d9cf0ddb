# SPDX-License-Identifier: MIT
"""The mirror from Python: opened as pipeline text, its children listed
with state and counters, a child faulted through control() and rebuilt,
with the rebuild's progress and the state events."""

import errno
import time

import pytest

import nexus


def wait_for(pred, secs=20):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_children_fault_and_rebuild():
    seen = []
    with nexus.Context(reactors=2, on_event=seen.append) as ctx:
        dev = ctx.open("( mem:size=8M ; mem:size=8M ) | mirror:"
                       "assume-clean=on,region-size=64K")
        kids = dev.mirror_children()
        assert [k.index for k in kids] == [0, 1]
        assert all(k.state == nexus.DevState.ONLINE for k in kids)
        assert kids[0].name.startswith("mem")
        dev.pwrite(b"a" * 65536, 0)
        assert all(k.writes >= 1 for k in dev.mirror_children())

        dev.control("mirror.child.1", "fault")
        k1 = dev.mirror_children()[1]
        assert k1.state == nexus.DevState.FAULTED
        assert k1.reason == nexus.Reason.USER and k1.partial_ok
        dev.pwrite(b"b" * 65536, 1 << 20)       # missed by child 1
        assert dev.mirror_children()[1].dirty_bytes == 65536
        assert dev.state == nexus.DevState.DEGRADED

        before = dev.mirror_rebuild().completed
        dev.control("mirror.child.1", "online")
        assert wait_for(lambda: dev.mirror_rebuild().completed > before)
        rb = dev.mirror_rebuild()
        assert rb.child is None and rb.partial and rb.last_result == 0
        assert rb.bytes_total == 65536 and rb.bytes_done == 65536
        assert dev.mirror_children()[1].state == nexus.DevState.ONLINE
        assert dev.state == nexus.DevState.ONLINE
        # the child's changes are events of the mirror naming the child
        assert wait_for(lambda: any(
            e.kind == nexus.EventKind.DEV_STATE and e.device is dev
            and e.old_state == nexus.DevState.REBUILDING
            and e.new_state == nexus.DevState.ONLINE for e in seen)), seen


def test_not_a_mirror(ctx):
    dev = ctx.open("mem:size=1M")
    with pytest.raises(nexus.NexusError) as ei:
        dev.mirror_children()
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(nexus.NexusError) as ei:
        dev.mirror_rebuild()
    assert ei.value.errno == errno.ENOENT
