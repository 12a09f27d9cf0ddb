# SPDX-License-Identifier: MIT
"""The context's event stream: Context(on_event=...) and
Context(events=True) with ctx.events() / ctx.next_event().

Exports starting and stopping, devices added and removed, and an NBD
client (nbdsh) connecting and leaving must each produce their event, in
order, with sequence numbers without gaps.

The library delivers events from lib/core/event.c (workstream "graph").
A library built from a tree without that file delivers none: the tests
that need events then skip, saying so.  With the file in the tree, no
event is a failure."""

import errno
import gc
import pathlib
import threading
import time

import pytest

import nexus
from nexus import EventKind
from nexus import _core
from conftest import free_port, have_driver, nbdsh, wait_listening

TOP = pathlib.Path(__file__).resolve().parent.parent.parent.parent
EVENT_C = TOP / "lib" / "core" / "event.c"
FIRST_EVENT_TIMEOUT = 5.0
TIMEOUT = 20.0


def no_events(after):
    """Called when no event at all arrived within FIRST_EVENT_TIMEOUT."""
    if EVENT_C.exists():
        pytest.fail("no event within %.0f s after %s, although this tree "
                    "has %s" % (FIRST_EVENT_TIMEOUT, after, EVENT_C))
    pytest.skip("no event within %.0f s after %s, and this tree has no "
                "lib/core/event.c: this libnexus does not deliver events "
                "yet (workstream graph); the binding's side runs once it "
                "does" % (FIRST_EVENT_TIMEOUT, after))


class Collector:
    """Events of a context, read from its queue or its callback."""

    def __init__(self, ctx=None):
        self.ctx = ctx
        self.events = []
        self.threads = set()
        self.cond = threading.Condition()

    def __call__(self, ev):  # on_event
        with self.cond:
            self.events.append(ev)
            self.threads.add(threading.get_ident())
            self.cond.notify_all()

    def _pull(self, timeout):
        if self.ctx is None:  # callback mode
            with self.cond:
                n = len(self.events)
                self.cond.wait_for(lambda: len(self.events) > n, timeout)
            return
        ev = self.ctx.next_event(timeout)
        if ev is not None:
            self.events.append(ev)

    def wait(self, label, after, timeout=TIMEOUT):
        """Wait for an event named @label; @after says what should have
        caused it (for the skip or failure message)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                for ev in self.events:
                    if ev.kind_name == label:
                        return ev
                empty = not self.events
            left = deadline - time.monotonic()
            if empty and left < timeout - FIRST_EVENT_TIMEOUT:
                no_events(after)
            if left <= 0:
                raise AssertionError("no %s event within %.0f s after %s; "
                                     "got: %s" % (label, timeout, after,
                                                  [str(e) for e in
                                                   self.events]))
            self._pull(min(left, 0.25))

    def names(self):
        return [e.kind_name for e in self.events]


@pytest.fixture
def need_nbd():
    with nexus.Context(reactors=1) as c:
        if not have_driver(c, "nbd"):
            pytest.skip("the nbd export is not built into this libnexus")


def export_session(ctx, col):
    """Create an export, serve a device, connect a client, take it all
    down; return (export, device, port)."""
    port = free_port()
    spec = "nbd:listen=127.0.0.1:%d" % port
    dev = ctx.open("mem:size=1M")
    exp = ctx.create_export(spec)
    col.wait("export-started", "nexus_export_create(%s)" % spec)
    exp.add(dev, name="vol")
    col.wait("export-dev-added", "nexus_export_add_dev")
    wait_listening(port)
    # wait_listening's probe connected too; clear the field and use a
    # real client.
    out = nbdsh("nbd://127.0.0.1:%d/vol" % port, "print(h.get_size())")
    assert int(out) == 1 << 20
    col.wait("conn-closed", "an NBD client disconnected")
    exp.remove(dev)
    col.wait("export-dev-removed", "nexus_export_remove_dev")
    exp.close()
    col.wait("export-stopped", "nexus_export_destroy")
    dev.close()
    return exp, dev, port


def check_session(col, exp, dev, port):
    evs = col.events
    seqs = [e.seq for e in evs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert all(isinstance(e, nexus.Event) for e in evs)
    assert not any(e.kind == EventKind.LOST for e in evs)
    names = col.names()
    order = ["export-started", "export-dev-added", "conn-opened",
             "conn-closed", "export-dev-removed", "export-stopped"]
    idx = [names.index(n) for n in order]
    assert idx == sorted(idx), names
    now = time.time_ns()
    for e in evs:
        assert abs(now - e.time_ns) < 600e9, e
        assert e.kind_name == nexus.EventKind(e.kind).label
    started = evs[names.index("export-started")]
    assert started.export is exp
    assert str(port) in started.object
    added = evs[names.index("export-dev-added")]
    assert added.export is exp and added.device is dev
    opened = [e for e in evs if e.kind == EventKind.CONN_OPENED]
    closed = [e for e in evs if e.kind == EventKind.CONN_CLOSED]
    # the wait_listening probe and nbdsh: every connection opens and closes
    assert len(opened) == len(closed) >= 1
    for e in opened + closed:
        assert e.peer.startswith("127.0.0.1:"), e
        assert e.export is exp
    assert {e.peer for e in opened} == {e.peer for e in closed}
    stopped = evs[names.index("export-stopped")]
    assert stopped.export is exp and exp.closed
    assert "export-stopped" in str(stopped)


def test_event_queue(need_nbd):
    before = len(_core._event_sinks)
    ctx = nexus.Context(reactors=2, events=True)
    sink = ctx._sink
    col = Collector(ctx)
    try:
        exp, dev, port = export_session(ctx, col)
    finally:
        ctx.close()
    # After close the queue ends: events() drains what is left and stops.
    col.events.extend(ctx.events())
    assert ctx.next_event(0) is None
    check_session(col, exp, dev, port)
    assert len(_core._event_sinks) == before
    if EVENT_C.exists():
        assert sink.freed_by_library, "event_free was not called"


def test_on_event_callback(need_nbd):
    col = Collector()
    main = threading.get_ident()
    ctx = nexus.Context(reactors=2, on_event=col)
    sink = ctx._sink
    try:
        exp, dev, port = export_session(ctx, col)
    finally:
        ctx.close()
    n = len(col.events)
    check_session(col, exp, dev, port)
    # One event thread, not ours; nothing after close.
    assert len(col.threads) == 1 and main not in col.threads
    time.sleep(0.2)
    assert len(col.events) == n
    if EVENT_C.exists():
        assert sink.freed_by_library, "event_free was not called"
    with pytest.raises(RuntimeError):
        ctx.next_event(0)  # a callback, no queue


def test_callback_errors_and_close_from_the_callback(need_nbd, caplog):
    seen = []
    refused = []

    def on_event(ev):
        seen.append(ev)
        try:
            ctx.close()
        except RuntimeError as e:
            refused.append(e)
        raise ValueError("the application's bug")

    ctx = nexus.Context(reactors=1, on_event=on_event, events=True)
    col = Collector(ctx)
    try:
        dev = ctx.open("mem:size=1M")
        exp = ctx.create_export("nbd:listen=127.0.0.1:%d" % free_port())
        exp.add(dev)
        col.wait("export-dev-added", "nexus_export_add_dev")
        # The exception was logged, the queue still got every event, and
        # the callback could not close its own context.
        assert len(seen) >= 2 and len(refused) == len(seen)
        assert not ctx.closed
        assert any("on_event" in r.getMessage() for r in caplog.records)
    finally:
        ctx.close()


def test_no_queue_without_events():
    with nexus.Context(reactors=1) as ctx:
        with pytest.raises(RuntimeError) as ei:
            ctx.next_event(0)
        assert "events=True" in str(ei.value)
        with pytest.raises(RuntimeError):
            next(ctx.events())


def test_sink_released_when_create_fails():
    before = len(_core._event_sinks)
    with pytest.raises(nexus.NexusError) as ei:
        nexus.Context(reactors=100000, on_event=print, events=True)
    assert ei.value.errno == errno.EINVAL
    assert len(_core._event_sinks) == before


def test_sink_released_with_a_forgotten_context():
    before = len(_core._event_sinks)
    ctx = nexus.Context(reactors=1, events=True)
    assert len(_core._event_sinks) == before + 1
    ctx.close()
    assert len(_core._event_sinks) == before
    assert list(ctx.events(timeout=0)) == []
    gc.collect()


def test_delivery_path_with_a_synthetic_event():
    """The binding's half on its own, whatever the library delivers: a
    struct nexus_event_info handed to the C trampoline the library calls
    (through ctypes, as from C) becomes an Event naming the Python
    objects, in the queue and the callback; event_free ends the queue."""
    import ctypes
    from nexus import _capi
    got = []
    ctx = nexus.Context(reactors=1, on_event=got.append, events=True)
    try:
        dev = ctx.open("mem:size=1M")
        raw = _capi.nexus_event_info()
        raw.size = ctypes.sizeof(raw)
        raw.kind = int(EventKind.DEV_STATE)
        raw.reason = int(nexus.Reason.IO_ERROR)
        raw.seq = 7
        raw.time_ns = time.time_ns()
        raw.dev = dev._ptr
        raw.object = b"mem:size=1M"
        raw.old_state = int(nexus.DevState.ONLINE)
        raw.new_state = int(nexus.DevState.FAULTED)
        raw.error = -errno.EIO
        raw.peer = None
        raw.message = b"a read failed"
        _core._EVENT_FN(ctx._event_key, ctypes.byref(raw))
        ev = ctx.next_event(1)
        assert got == [ev]
        assert ev.kind is EventKind.DEV_STATE and ev.kind_name == "dev-state"
        assert ev.reason is nexus.Reason.IO_ERROR
        assert ev.reason_name == "io-error"
        assert ev.device is dev and ev.export is None and ev.child is None
        assert (ev.old_state, ev.new_state) == (nexus.DevState.ONLINE,
                                                nexus.DevState.FAULTED)
        assert ev.error == errno.EIO and ev.peer == ""
        assert ev.seq == 7 and ev.object == "mem:size=1M"
        assert abs(ev.time.timestamp() - time.time()) < 60
        assert "online -> faulted" in str(ev) and "EIO" in str(ev)

        # A kind newer than the binding, from a library whose struct ends
        # before `count`: the number is kept, the missing field reads 0.
        raw.kind = 99
        raw.count = 12345
        raw.size = _capi.nexus_event_info.count.offset
        _core._EVENT_FN(ctx._event_key, ctypes.byref(raw))
        ev = ctx.next_event(1)
        assert ev.kind == 99 and ev.kind_name == "unknown"
        assert ev.count == 0

        # event_free: exactly once, then the queue ends and the key is
        # gone (a late call is ignored).
        key = ctx._event_key
        sink = ctx._sink
        _core._EVENT_FREE_FN(key)
        assert sink.freed_by_library and key not in _core._event_sinks
        assert ctx.next_event(1) is None
        _core._EVENT_FN(key, ctypes.byref(raw))
        _core._EVENT_FREE_FN(key)
        assert len(got) == 2
    finally:
        ctx.close()
