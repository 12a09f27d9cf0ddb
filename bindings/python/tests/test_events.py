# SPDX-License-Identifier: MIT
"""The context's event stream: Context(on_event=...) and
Context(events=True) with ctx.events() / ctx.next_event().

A device whose NBD server goes away, devices changing state, exports
starting and stopping, devices added and removed, and an NBD client
(nbdsh) connecting and leaving must each produce their event, in order,
with sequence numbers without gaps.

The library delivers events from lib/core/event.c, and each kind from
the code that raises it (NEXUS_EVENT_EXPORT_STARTED from the export
code, ...).  A test that waits for a kind no source file of this tree
raises, or for any event from a tree without lib/core/event.c, skips
saying so; once the tree has the code, no event is a failure."""

import ctypes
import errno
import functools
import gc
import pathlib
import re
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


@functools.lru_cache(maxsize=None)
def raised_in_tree(label):
    """The file of this tree's lib/ that raises events of kind @label
    ("export-started": NEXUS_EVENT_EXPORT_STARTED), or None."""
    const = "NEXUS_EVENT_" + label.upper().replace("-", "_")
    if not EVENT_C.exists():
        return None
    for f in sorted((TOP / "lib").rglob("*.c")):
        if f.name in ("names.c", "event.c"):
            continue
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "",
                      f.read_text(errors="replace"), flags=re.S)
        if re.search(r"\b%s\b" % const, code):  # not in a comment (a TODO)
            return f
    return None


def no_event(label, after, waited):
    """No @label event within @waited seconds after @after."""
    src = raised_in_tree(label)
    if src is not None:
        pytest.fail("no %s event within %.0f s after %s, although %s "
                    "raises it" % (label, waited, after, src))
    if not EVENT_C.exists():
        pytest.skip("no event within %.0f s after %s, and this tree has no "
                    "lib/core/event.c: this libnexus does not deliver "
                    "events yet (workstream graph)" % (waited, after))
    pytest.skip("no %s event after %s: no file of this tree's lib/ raises "
                "NEXUS_EVENT_%s yet (exports and connections: workstream "
                "server); the test runs once one does"
                % (label, after, label.upper().replace("-", "_")))


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

    def wait(self, label, after, timeout=TIMEOUT, n=1):
        """Wait for the @n-th event named @label; @after says what should
        have caused it (for the skip or failure message)."""
        if raised_in_tree(label) is None:
            timeout = FIRST_EVENT_TIMEOUT  # to see whether it comes anyway
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                mine = [ev for ev in self.events if ev.kind_name == label]
                if len(mine) >= n:
                    return mine[n - 1]
            left = deadline - time.monotonic()
            if left <= 0:
                if raised_in_tree(label) is None:
                    no_event(label, after, timeout)
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


EXPORT_KINDS = ["export-started", "export-dev-added", "conn-opened",
                "conn-closed", "export-dev-removed", "export-stopped"]


def export_kinds():
    """The export and connection kinds this tree raises, or skip."""
    kinds = [k for k in EXPORT_KINDS if raised_in_tree(k)]
    if not kinds:
        pytest.skip("no file of this tree's lib/ raises %s yet (exports "
                    "and connections: workstream server); the test runs "
                    "once one does" % ", ".join(
                        "NEXUS_EVENT_" + k.upper().replace("-", "_")
                        for k in EXPORT_KINDS))
    return kinds


def export_session(ctx, col, kinds):
    """Create an export, serve a device, connect one client, take it all
    down, waiting for each event of @kinds; return (export, device,
    port)."""
    port = free_port()
    spec = "nbd:listen=127.0.0.1:%d" % port

    def step(label, after):
        if label in kinds:
            col.wait(label, after)
    dev = ctx.open("mem:size=1M")
    exp = ctx.create_export(spec)
    step("export-started", "nexus_export_create(%s)" % spec)
    exp.add(dev, name="vol")
    step("export-dev-added", "nexus_export_add_dev")
    # The export listens once the calls return: one client, no probe.
    out = nbdsh("nbd://127.0.0.1:%d/vol" % port, "print(h.get_size())")
    assert int(out) == 1 << 20
    step("conn-opened", "an NBD client connected")
    step("conn-closed", "an NBD client disconnected")
    exp.remove(dev)
    step("export-dev-removed", "nexus_export_remove_dev")
    exp.close()
    step("export-stopped", "nexus_export_destroy")
    dev.close()
    return exp, dev, port


def check_session(col, kinds, exp, dev, port):
    evs = col.events
    seqs = [e.seq for e in evs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert all(isinstance(e, nexus.Event) for e in evs)
    assert not any(e.kind == EventKind.LOST for e in evs)
    names = col.names()
    idx = [names.index(n) for n in kinds]
    assert idx == sorted(idx), names
    now = time.time_ns()
    for e in evs:
        assert abs(now - e.time_ns) < 600e9, e
        assert e.kind_name == nexus.EventKind(e.kind).label
    if "export-started" in kinds:
        started = evs[names.index("export-started")]
        assert started.export is exp
        assert str(port) in started.object
    for label in ("export-dev-added", "export-dev-removed"):
        if label in kinds:
            ev = evs[names.index(label)]
            assert ev.export is exp and ev.device is dev, ev
    for kind in (EventKind.CONN_OPENED, EventKind.CONN_CLOSED):
        if kind.label in kinds:
            conns = [e for e in evs if e.kind == kind]
            assert len(conns) == 1, [str(e) for e in conns]
            assert conns[0].peer.startswith("127.0.0.1:"), conns[0]
            assert conns[0].export is exp, conns[0]
    if "export-stopped" in kinds:
        stopped = evs[names.index("export-stopped")]
        # the export is freed as it stops: a delivery that comes later
        # names no handle (nexus.h, Events), only the object
        assert stopped.export in (exp, None) and exp.closed
        assert "export-stopped" in str(stopped)


def test_export_events_queue(need_nbd):
    kinds = export_kinds()
    before = len(_core._event_sinks)
    ctx = nexus.Context(reactors=2, events=True)
    sink = ctx._sink
    col = Collector(ctx)
    try:
        exp, dev, port = export_session(ctx, col, kinds)
    finally:
        ctx.close()
    # After close the queue ends: events() drains what is left and stops.
    col.events.extend(ctx.events())
    assert ctx.next_event(0) is None
    check_session(col, kinds, exp, dev, port)
    assert len(_core._event_sinks) == before
    if EVENT_C.exists():
        assert sink.freed_by_library, "event_free was not called"


def test_export_events_callback(need_nbd):
    kinds = export_kinds()
    col = Collector()
    main = threading.get_ident()
    ctx = nexus.Context(reactors=2, on_event=col)
    sink = ctx._sink
    try:
        exp, dev, port = export_session(ctx, col, kinds)
    finally:
        ctx.close()
    n = len(col.events)
    check_session(col, kinds, exp, dev, port)
    # One event thread, not ours; nothing after close.
    assert len(col.threads) == 1 and main not in col.threads
    time.sleep(0.2)
    assert len(col.events) == n
    if EVENT_C.exists():
        assert sink.freed_by_library, "event_free was not called"
    with pytest.raises(RuntimeError):
        ctx.next_event(0)  # a callback, no queue


def set_state(dev, state, reason=nexus.Reason.USER, msg=None):
    """nexus_dev_set_state() of the driver API (nexus_driver.h), which
    the embedder API has no use for: a device changes state for the
    tests."""
    fn = nexus._capi.lib().nexus_dev_set_state
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32,
                   ctypes.c_char_p]
    assert fn(dev._ptr, int(state), int(reason),
              msg.encode() if msg else None) == 0


def state_session(ctx, col):
    """A device of @ctx reading from an NBD server (another context's
    export) that goes away, then closed; returns the device."""
    port = free_port()
    with nexus.Context(reactors=1) as server:
        if not have_driver(server, "nbd"):
            pytest.skip("the nbd driver is not built into this libnexus")
        pl = server.open_pipeline("mem:size=1M | nbd:listen=127.0.0.1:%d"
                                  % port)
        wait_listening(port)
        dev = ctx.open("nbd:nbd://127.0.0.1:%d" % port)
        assert dev.info.driver == "nbd" and dev.state == nexus.DevState.ONLINE
        pl.close()
    ev = col.wait("dev-state", "the NBD server of an nbd: device went away")
    with pytest.raises(OSError):
        dev.pread(512, 0)
    assert dev.state == nexus.DevState.FAULTED
    dev.close()
    col.wait("dev-state", "closing an nbd: device", n=2)
    return dev, port, ev


def check_state_session(col, dev, port):
    evs = [e for e in col.events if e.kind == EventKind.DEV_STATE]
    assert len(evs) == 2, [str(e) for e in col.events]
    fault, closing = evs
    # A handle closed before its event is delivered reads as NULL (None):
    # the closing event may come after close() returned.
    assert fault.device is dev and closing.device in (dev, None)
    assert closing.object == dev.name
    assert fault.object == dev.name == "nbd:nbd://127.0.0.1:%d" % port
    assert (fault.old_state, fault.new_state) == (nexus.DevState.ONLINE,
                                                  nexus.DevState.FAULTED)
    assert fault.reason in (nexus.Reason.PEER_CLOSED, nexus.Reason.IO_ERROR)
    assert str(port) in fault.message
    assert "online -> faulted" in str(fault)
    assert (closing.old_state, closing.new_state) == (nexus.DevState.FAULTED,
                                                      nexus.DevState.CLOSING)
    seqs = [e.seq for e in col.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert abs(time.time_ns() - fault.time_ns) < 600e9


def test_device_state_events_queue():
    before = len(_core._event_sinks)
    ctx = nexus.Context(reactors=1, events=True)
    sink = ctx._sink
    col = Collector(ctx)
    try:
        dev, port, _ = state_session(ctx, col)
    finally:
        ctx.close()
    col.events.extend(ctx.events())  # what is left, then the end
    assert ctx.next_event(0) is None
    check_state_session(col, dev, port)
    assert len(_core._event_sinks) == before
    assert sink.freed_by_library, "event_free was not called"


def test_device_state_events_callback():
    col = Collector()
    ctx = nexus.Context(reactors=1, on_event=col)
    sink = ctx._sink
    try:
        dev, port, ev = state_session(ctx, col)
    finally:
        ctx.close()
    n = len(col.events)
    check_state_session(col, dev, port)
    assert len(col.threads) == 1 and threading.get_ident() not in col.threads
    time.sleep(0.2)
    assert len(col.events) == n
    assert sink.freed_by_library, "event_free was not called"


def test_many_state_changes_in_order():
    col = Collector()
    with nexus.Context(reactors=2, on_event=col) as ctx:
        a, b = ctx.open("mem:size=1M"), ctx.open("mem:size=2M")
        states = [nexus.DevState.DEGRADED, nexus.DevState.REBUILDING,
                  nexus.DevState.ONLINE] * 100
        for i, st in enumerate(states):
            set_state(a, st, msg="a %d" % i)
            set_state(b, st, nexus.Reason.TIMEOUT)
        col.wait("dev-state", "nexus_dev_set_state", n=2 * len(states))
        a.close()
        b.close()
    evs = col.events
    assert not any(e.kind == EventKind.LOST for e in evs)
    for dev in (a, b):
        # by name: the closing event may name a closed (None) device
        mine = [e for e in evs if e.object == dev.name]
        assert all(e.device in (dev, None) for e in mine)
        assert [e.new_state for e in mine] == states + [nexus.DevState.CLOSING]
        assert [e.old_state for e in mine[1:]] == [e.new_state
                                                   for e in mine[:-1]]
    assert [e.message for e in evs if e.object == a.name][:2] == ["a 0",
                                                                  "a 1"]
    assert all(e.reason == nexus.Reason.TIMEOUT for e in evs
               if e.object == b.name and e.new_state != nexus.DevState.CLOSING)
    assert [e.seq for e in evs] == list(range(evs[0].seq,
                                              evs[0].seq + len(evs)))


def test_callback_errors_and_close_from_the_callback(caplog):
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
        set_state(dev, nexus.DevState.OFFLINE)
        set_state(dev, nexus.DevState.ONLINE)
        col.wait("dev-state", "nexus_dev_set_state", n=2)
        # The exception was logged, the queue still got every event, and
        # the callback could not close its own context.
        assert len(col.events) == 2 and len(seen) == 2
        assert len(refused) == 2
        assert not ctx.closed
        assert any("on_event" in r.getMessage() for r in caplog.records)
    finally:
        ctx.close()


def test_callback_uses_the_library():
    got = []

    def on_event(ev):
        got.append((ev.device.state, ev.device.pread(512, 0)))

    with nexus.Context(reactors=1, on_event=on_event) as ctx:
        dev = ctx.open("mem:size=1M")
        dev.pwrite(b"e" * 512, 0)
        set_state(dev, nexus.DevState.DEGRADED)
        deadline = time.monotonic() + TIMEOUT
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        dev.close()
    assert got[0] == (nexus.DevState.DEGRADED, b"e" * 512)


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


def test_lookup_waits_for_a_creation_in_progress():
    """The event of a new object is delivered before the call that made it
    returns: its lookup waits for the creation, and only so long."""
    objs = _core._Objects()

    class Obj:
        closed = False
    obj = Obj()
    with objs.creating():
        t = threading.Timer(0.2, objs.register, (0x1000, obj))
        t.start()
        t0 = time.monotonic()
        assert objs.lookup(0x1000) is obj          # waited for it
        assert time.monotonic() - t0 < _core.LOOKUP_WAIT
        t0 = time.monotonic()
        assert objs.lookup(0x2000) is None         # never comes: gives up
        assert time.monotonic() - t0 >= _core.LOOKUP_WAIT * 0.9
        t.join()
    t0 = time.monotonic()
    assert objs.lookup(0x3000) is None             # nothing pending: at once
    assert time.monotonic() - t0 < 0.5


def test_close_while_events_flow():
    """Contexts closed while a thread changes states and a slow callback
    runs: close() waits for the event thread, the callback is not called
    after it, the queue ends."""
    for round_ in range(3):
        calls = []

        def slow(ev):
            calls.append(ev)
            time.sleep(0.001)
        ctx = nexus.Context(reactors=1, on_event=slow, events=True)
        dev = ctx.open("mem:size=1M")
        stop = threading.Event()

        def flip():
            states = (nexus.DevState.DEGRADED, nexus.DevState.ONLINE)
            i = 0
            while not stop.is_set() and i < 500:
                try:
                    set_state(dev, states[i % 2])
                except (ValueError, AssertionError):
                    return  # closed
                i += 1
        t = threading.Thread(target=flip)
        t.start()
        assert ctx.next_event(TIMEOUT) is not None
        time.sleep(0.01 * round_)
        stop.set()
        t.join()
        ctx.close()
        n = len(calls)
        time.sleep(0.05)
        assert len(calls) == n
        rest = list(ctx.events())
        assert len(rest) <= n
