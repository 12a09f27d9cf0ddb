# SPDX-License-Identifier: MIT
"""Contexts, devices, pipelines and exports: the Python face of nexus.h."""

from __future__ import annotations

import atexit
import ctypes
import datetime
import enum
import errno as _errno
import itertools
import logging
import os
import queue
import threading
import weakref
from ctypes import byref, c_char, c_void_p, sizeof
from dataclasses import dataclass, field
from typing import (Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, Union)

from . import _capi
from ._capi import lib
from .errors import error_for

__all__ = [
    "Op", "DeviceFlag", "LogLevel", "EventKind", "DevState", "Reason",
    "Context", "Device", "Pipeline", "Export", "DeviceInfo", "DeviceStats",
    "OpStats", "Extent", "ConnInfo", "Event", "MirrorChild",
    "MirrorRebuild", "version", "load_library", "open",
]

# --------------------------------------------------------------------------
# constants

class Op(enum.IntEnum):
    """I/O operations (``enum nexus_op``)."""
    READ = 0
    WRITE = 1
    FLUSH = 2
    TRIM = 3
    WRITE_ZEROES = 4
    BLOCK_STATUS = 5


class DeviceFlag(enum.IntFlag):
    """Device flags (``NEXUS_DEV_*``)."""
    READ_ONLY = 1 << 0
    TRIM_ZEROES = 1 << 1
    MULTI_CONN = 1 << 2
    BLOCK_STATUS = 1 << 3


class LogLevel(enum.IntEnum):
    """Log levels (``enum nexus_log_level``), most severe first."""
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


class EventKind(enum.IntEnum):
    """Kinds of events (``enum nexus_event_kind``); the library may report
    kinds newer than this list, which :class:`Event` keeps as plain ints."""
    DEV_STATE = 1
    CHILD_ATTACHED = 2
    CHILD_DETACHED = 3
    EXPORT_STARTED = 4
    EXPORT_STOPPED = 5
    EXPORT_DEV_ADDED = 6
    EXPORT_DEV_REMOVED = 7
    CONN_OPENED = 8
    CONN_CLOSED = 9
    CLIENT_ERROR = 10
    IO_TIMEOUT = 11
    COPY_DONE = 12
    LOST = 13

    @property
    def label(self) -> str:
        """The library's name of the kind, e.g. ``"conn-opened"``."""
        return _dec(lib().nexus_event_kind_name(int(self)))


class DevState(enum.IntEnum):
    """States of a device (``enum nexus_dev_state``)."""
    ONLINE = 0
    DEGRADED = 1
    FAULTED = 2
    OFFLINE = 3
    REBUILDING = 4
    CLOSING = 5

    @property
    def label(self) -> str:
        """The library's name of the state, e.g. ``"degraded"``."""
        return _dec(lib().nexus_dev_state_name(int(self)))


class Reason(enum.IntEnum):
    """Why something happened (``enum nexus_reason``)."""
    NONE = 0
    IO_ERROR = 1
    TIMEOUT = 2
    CANT_OPEN = 3
    NO_SPACE = 4
    USER = 5
    REBUILD_FAILED = 6
    PEER_CLOSED = 7
    PROTOCOL = 8
    LIMIT = 9
    SHUTDOWN = 10

    @property
    def label(self) -> str:
        """The library's name of the reason, e.g. ``"peer-closed"``."""
        return _dec(lib().nexus_reason_name(int(self)))


def _enum_or_int(cls, value: int):
    try:
        return cls(value)
    except ValueError:  # newer than this binding: keep the number
        return value


_IO_FUA = 1 << 0
_IO_NO_UNMAP = 1 << 1
_IO_FAST_ZERO = 1 << 2
_EXTENT_HOLE = 1 << 0
_EXTENT_ZERO = 1 << 1
_CTX_BUSY_POLL = 1 << 0
_EXPORT_DEV_READ_ONLY = 1 << 0

BufferLike = Union[bytes, bytearray, memoryview, "mmap.mmap"]  # noqa: F821


def _enc(text: Union[str, bytes, os.PathLike]) -> bytes:
    return os.fsencode(text)


def _dec(raw: Optional[bytes]) -> str:
    return os.fsdecode(raw) if raw is not None else ""


def _error(rc: int, function: str):
    """The NexusError for negative return @rc; build it right after the C
    call, on the same thread, so nexus_last_error() is the right one."""
    msg = lib().nexus_last_error()
    return error_for(rc, msg.decode("utf-8", "replace") if msg else "",
                     function)


def _check(rc: int, function: str) -> int:
    """Raise the NexusError for a negative return (see _error)."""
    if rc < 0:
        raise _error(rc, function)
    return rc


def version() -> str:
    """Version string of the loaded library, e.g. ``"1.0.0"``."""
    return _dec(lib().nexus_version())


def load_library(path: Union[str, os.PathLike]) -> None:
    """Use the libnexus shared object at @path instead of searching.

    Call before anything else of this package; the default search is the
    ``NEXUS_LIBRARY`` environment variable, then the system loader.
    """
    _capi.set_library_path(os.fspath(path))
    lib()


# --------------------------------------------------------------------------
# plain result objects

@dataclass(frozen=True)
class OpStats:
    """Counters of one operation of a device (``struct nexus_op_stats``)."""
    ops: int
    """Completed operations, failed ones included."""
    errors: int
    """Failed operations."""
    bytes: int
    """Bytes of the successful operations: data moved for READ and WRITE,
    range covered for TRIM, WRITE_ZEROES and BLOCK_STATUS, 0 for FLUSH."""


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is and can do (``struct nexus_dev_info``)."""
    size: int
    """Size in bytes."""
    logical_block_size: int
    """Required alignment of offsets and lengths."""
    physical_block_size: int
    """Preferred alignment to avoid read-modify-write."""
    optimal_io_size: int
    """Optimal I/O size in bytes (0 if unknown)."""
    max_io_size: int
    """Largest single READ or WRITE request."""
    ops: frozenset
    """Supported operations, a frozenset of :class:`Op`."""
    flags: DeviceFlag
    """:class:`DeviceFlag` bits."""
    driver: str
    """Driver of the top of the stack, e.g. ``"file"``."""
    name: str
    """The pipeline text that opened the device."""

    @property
    def read_only(self) -> bool:
        """Writes are refused."""
        return bool(self.flags & DeviceFlag.READ_ONLY)

    def supports(self, op: Op) -> bool:
        """True if the device handles operation @op."""
        return Op(op) in self.ops


@dataclass(frozen=True)
class MirrorChild:
    """A child of a mirror (``struct nexus_mirror_child``)."""
    index: int
    """Its place in the mirror (0 is the first child of the group)."""
    name: str
    """The pipeline text of the child."""
    state: Union["DevState", int]
    """ONLINE (in sync), FAULTED, OFFLINE or REBUILDING."""
    reason: Union["Reason", int]
    """Why it is in that state."""
    error: int
    """Negative errno of the I/O that faulted it, or 0."""
    partial_ok: bool
    """A rebuild would copy only what it missed (its dirty map is valid)."""
    reads: int
    writes: int
    errors: int
    timeouts: int
    in_flight: int
    dirty_bytes: int
    """Bytes of the regions it missed."""


@dataclass(frozen=True)
class MirrorRebuild:
    """A mirror's rebuild (``struct nexus_mirror_rebuild``)."""
    child: Optional[int]
    """The child being rebuilt, or None when none is."""
    partial: bool
    """The running (or last) rebuild copies the dirty regions only."""
    completed: int
    """Rebuilds finished successfully since open."""
    last_result: int
    """0 or the negative errno of the last finished rebuild."""
    bytes_done: int
    bytes_total: int
    rate: int
    """Average rate, bytes per second."""
    eta_s: Optional[float]
    """Seconds left at that rate (None when unknown or idle)."""


@dataclass(frozen=True)
class DeviceStats:
    """A snapshot of a device's counters (``struct nexus_dev_stats`` and
    ``nexus_dev_get_op_stats()`` of every operation)."""
    ops: int
    """Completed operations of every kind, failed ones included."""
    errors: int
    """Failed operations of every kind."""
    bytes_read: int
    bytes_written: int
    in_flight: int
    """Operations submitted and not yet completed."""
    latency: Tuple[int, ...] = field(repr=False)
    """Latency histogram; see :meth:`bucket_floor`."""
    per_op: Mapping[Union[Op, int], OpStats]
    """:class:`OpStats` of every operation the library knows, by
    :class:`Op` (an int for an operation newer than this binding):
    ``stats.per_op[Op.WRITE].ops``."""

    def percentile(self, pct: float) -> int:
        """Upper estimate in nanoseconds of the @pct latency percentile
        (0 if nothing completed)."""
        hist = (ctypes.c_uint64 * _capi.LAT_BUCKETS)(*self.latency)
        return int(lib().nexus_lat_percentile(hist, float(pct)))

    @staticmethod
    def bucket_floor(i: int) -> int:
        """Lower bound in nanoseconds of latency bucket @i."""
        return int(lib().nexus_lat_bucket_floor(i))


@dataclass(frozen=True)
class Extent:
    """One extent from :meth:`Device.block_status`."""
    offset: int
    length: int
    flags: int

    @property
    def hole(self) -> bool:
        """The range is not allocated."""
        return bool(self.flags & _EXTENT_HOLE)

    @property
    def zero(self) -> bool:
        """The range reads as zeroes."""
        return bool(self.flags & _EXTENT_ZERO)


@dataclass(frozen=True)
class ConnInfo:
    """One client connection of an export (``struct nexus_conn_info``)."""
    peer: str
    """Peer address, e.g. ``"127.0.0.1:50312"``."""
    export_name: str
    """Name of the device the client selected (NBD export name)."""
    host_id: str
    """Host identity the client gave (NVMe host NQN, iSCSI initiator
    IQN); ``""`` where the protocol has none (NBD)."""
    reactor: int
    requests: int
    errors: int
    bytes_read: int
    bytes_written: int


@dataclass(frozen=True)
class Event:
    """One event of a context's event stream (``struct nexus_event_info``),
    copied out of the callback: it stays valid after it.

    Events of one context arrive in order, each once; :attr:`seq` counts
    them from 1 (a gap means events were lost, and a :attr:`EventKind.LOST`
    event says how many).
    """
    kind: Union[EventKind, int]
    """:class:`EventKind` (an int for a kind newer than this binding)."""
    kind_name: str
    """The library's name of the kind, e.g. ``"conn-opened"``."""
    seq: int
    """Sequence number in the context, from 1."""
    time_ns: int
    """Wall-clock time, nanoseconds since the epoch."""
    reason: Union[Reason, int]
    """Why it happened (:class:`Reason`)."""
    reason_name: str
    """The library's name of the reason, e.g. ``"peer-closed"``."""
    object: str
    """Name of the object concerned (device name, export spec), or ``""``."""
    device: Optional["Device"]
    """The :class:`Device` concerned, if this binding opened it, else None
    (see :attr:`object` for its name)."""
    child: Optional["Device"]
    """CHILD_ATTACHED/DETACHED: the child device, if known, else None."""
    export: Optional["Export"]
    """The :class:`Export` concerned, if this binding created it."""
    old_state: Union[DevState, int]
    """DEV_STATE: the state before the change."""
    new_state: Union[DevState, int]
    """DEV_STATE: the state after the change."""
    error: int
    """Positive errno where the event is about an error, else 0."""
    peer: str
    """Peer address of a connection, or ``""``."""
    message: str
    """Human-readable detail, or ``""``."""
    count: int
    """LOST: number of events dropped; else 0."""

    @property
    def time(self) -> datetime.datetime:
        """:attr:`time_ns` as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self.time_ns / 1e9,
                                               datetime.timezone.utc)

    def __str__(self) -> str:
        parts = ["#%d %s" % (self.seq, self.kind_name)]
        if self.object:
            parts.append(self.object)
        if self.kind == EventKind.DEV_STATE:
            parts.append("%s -> %s" % (_state_name(self.old_state),
                                       _state_name(self.new_state)))
        if self.peer:
            parts.append("peer " + self.peer)
        if self.reason:
            parts.append("(%s)" % self.reason_name)
        if self.error:
            parts.append("error %s" % _errno.errorcode.get(self.error,
                                                           self.error))
        if self.count:
            parts.append("%d lost" % self.count)
        if self.message:
            parts.append(": " + self.message)
        return " ".join(parts)


def _state_name(state) -> str:
    return _dec(lib().nexus_dev_state_name(int(state)))


# --------------------------------------------------------------------------
# events: the C callbacks
#
# Two ctypes trampolines live as long as the module, so the C library
# never calls into freed thunks; nexus_ctx_opts.event_user_data is a key
# into _event_sinks, whose entry (holding the Python callback and queue)
# is dropped by event_free -- exactly once, when the context is destroyed
# (or by Context.close() if the library never called it).

_END = object()  # end of a context's event queue


class _EventSink:
    """The Python side of one context's event stream."""

    def __init__(self, objects: "_Objects",
                 callback: Optional[Callable[[Event], None]],
                 events: bool) -> None:
        self.objects = objects          # C handle -> wrapper
        self.callback = callback
        self.queue: Optional["queue.Queue"] = queue.Queue() if events else None
        self.thread: Optional[int] = None  # thread inside deliver()
        self.ended = False
        self.freed_by_library = False      # event_free ran (tests)

    def _lookup(self, ptr):
        return self.objects.lookup(ptr) if ptr else None

    def deliver(self, raw: "_capi.nexus_event_info") -> None:
        self.thread = threading.get_ident()
        try:
            self._deliver(raw)
        finally:
            self.thread = None

    def _deliver(self, raw: "_capi.nexus_event_info") -> None:
        ev = Event(
            kind=_enum_or_int(EventKind, raw.kind),
            kind_name=_dec(lib().nexus_event_kind_name(raw.kind)),
            seq=raw.seq, time_ns=raw.time_ns,
            reason=_enum_or_int(Reason, raw.reason),
            reason_name=_dec(lib().nexus_reason_name(raw.reason)),
            object=_dec(raw.object),
            device=self._lookup(raw.dev), child=self._lookup(raw.child),
            export=self._lookup(raw.exp),
            old_state=_enum_or_int(DevState, raw.old_state),
            new_state=_enum_or_int(DevState, raw.new_state),
            error=-raw.error if raw.error < 0 else raw.error,
            peer=_dec(raw.peer), message=_dec(raw.message), count=raw.count)
        if self.callback is not None:
            try:
                self.callback(ev)
            except Exception:  # never unwind into C
                logging.getLogger("nexus").exception(
                    "nexus: on_event callback failed on %s", ev)
        if self.queue is not None:
            self.queue.put(ev)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            if self.queue is not None:
                self.queue.put(_END)


# How long an event waits for the creation of the object it names.
LOOKUP_WAIT = 2.0


class _Objects:
    """A context's C handles -> weak references to their wrappers, so that
    events name the Python objects.  An event about an object is usually
    delivered before the call that created the object has returned and
    registered it, so a miss waits for the creations in progress."""

    def __init__(self) -> None:
        self._refs: Dict[int, "weakref.ref"] = {}
        self._cond = threading.Condition(threading.Lock())
        self._pending = 0

    def creating(self):
        objects = self

        class _Creating:
            def __enter__(self):
                with objects._cond:
                    objects._pending += 1

            def __exit__(self, *exc):
                with objects._cond:
                    objects._pending -= 1
                    objects._cond.notify_all()
        return _Creating()

    # A wrapper stays registered after it is closed (events about its end
    # arrive later) until its address is registered again.

    def _get(self, ptr):
        ref = self._refs.get(ptr)
        return ref() if ref is not None else None

    def find(self, ptr):
        """The open wrapper of @ptr, or None (no waiting)."""
        with self._cond:
            obj = self._get(ptr)
            return obj if obj is not None and not obj.closed else None

    def lookup(self, ptr):
        with self._cond:
            obj = self._get(ptr)
            if obj is None and self._pending:
                # Not for long: a slow open elsewhere (an NBD connect)
                # must not hold up the events of objects we never wrap.
                self._cond.wait_for(
                    lambda: not self._pending or self._get(ptr) is not None,
                    timeout=LOOKUP_WAIT)
                obj = self._get(ptr)
            return obj

    def register(self, ptr: int, obj, replace: bool = True) -> None:
        if not ptr:
            return
        with self._cond:
            cur = self._get(ptr)
            if replace or cur is None or cur.closed:
                self._refs[ptr] = weakref.ref(obj)
                self._cond.notify_all()
            for p, ref in list(self._refs.items()):  # prune the dead
                if ref() is None:
                    del self._refs[p]


_event_sinks: Dict[int, _EventSink] = {}
_event_keys = itertools.count(1)


def _event_fn(user_data, evp) -> None:
    try:
        sink = _event_sinks.get(user_data or 0)
        if sink is None or not evp:
            return
        # Copy only what the library filled (the struct is size-stamped):
        # fields it does not know read as zero.
        raw = _capi.nexus_event_info()
        n = min(evp.contents.size, sizeof(raw))
        ctypes.memmove(byref(raw), evp, n)
        sink.deliver(raw)
    except BaseException:  # pragma: no cover - interpreter shutdown
        pass


def _event_free(user_data) -> None:
    try:
        sink = _event_sinks.pop(user_data or 0, None)
        if sink is not None:
            sink.freed_by_library = True
            sink.end()
    except BaseException:  # pragma: no cover
        pass


_EVENT_FN = _capi.EVENT_FN(_event_fn)
_EVENT_FREE_FN = _capi.EVENT_FREE_FN(_event_free)


# --------------------------------------------------------------------------
# handles

class _Handle:
    """A C handle that other threads cannot use after it is closed: calls
    hold it with _acquire()/_release(); _detach() waits for them."""

    _ptr: Optional[int] = None
    _what = "handle"

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._users = 0
        self._ptr = None

    def _acquire(self) -> int:
        with self._cond:
            if self._ptr is None:
                raise ValueError("%s is closed" % self._what)
            self._users += 1
            return self._ptr

    def _release(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0:
                self._cond.notify_all()

    def _detach(self) -> Optional[int]:
        cond = getattr(self, "_cond", None)
        if cond is None:  # __init__ failed
            return None
        with cond:
            ptr, self._ptr = self._ptr, None
            while self._users:
                cond.wait()
            return ptr

    def _reattach(self, ptr: int) -> None:
        """Undo _detach() after the library refused to close."""
        with self._cond:
            self._ptr = ptr

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._ptr is None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __del__(self) -> None:
        # A garbage collection may run on a reactor thread while it is in
        # a Python log callback; the library refuses to close from there
        # (it would deadlock), so leave the handle to nexus_ctx_destroy().
        if isinstance(threading.current_thread(), _FOREIGN_THREAD):
            return
        try:
            self.close()
        except Exception:  # interpreter shutdown, or close() failed
            pass


# How `threading` represents a thread it did not start (a reactor).
_FOREIGN_THREAD = getattr(threading, "_DummyThread", ())

_live_contexts: "weakref.WeakSet[Context]" = weakref.WeakSet()


@atexit.register
def _close_all_contexts() -> None:
    # Stop reactor threads (and any callbacks into Python) before the
    # interpreter goes away.
    for ctx in list(_live_contexts):
        try:
            ctx.close()
        except Exception:
            pass


class Context(_Handle):
    """A libnexus context: reactor threads, the driver registry, secrets
    and the event stream.

    Use as a context manager; closing it closes every export, pipeline and
    device opened through it::

        with nexus.Context() as ctx, ctx.open("mem:size=64M") as dev:
            dev.pwrite(b"x" * 4096, 0)

    Args:
        reactors: reactor threads; 0 means one per CPU.
        ring_entries: io_uring entries per reactor; 0 means the default.
        queue_capacity: cross-thread submission queue size; 0: default.
        plugin_path: colon-separated plugin directories (searched before
            ``$NEXUS_PLUGIN_PATH``).
        log: where library messages go: ``None`` (warnings and errors to
            stderr), a :class:`logging.Logger`, or a callable
            ``log(level: LogLevel, message: str)``.  It is called from the
            reactor threads, so it must be thread-safe and quick.
        log_level: most verbose :class:`LogLevel` passed on.
        busy_poll: reactors spin instead of sleeping when idle.
        mem_budget: payload bytes all the exports of the context may hold
            at once (0: 1 GiB; else at least 32 MiB).
        poll_us: after work, reactors keep polling this many
            microseconds before they sleep (lower latency for one
            connection at a time, for CPU; 0: sleep at once).
        on_event: a callable ``on_event(event: Event)`` for the context's
            events (device state changes, exports starting and stopping,
            client connections...).  It runs on the context's event
            thread, one event at a time, in order; a slow callback delays
            later events, never I/O.  It may use the library (open,
            close, read...) but must not close this context.
        events: keep the events in a queue, read with :meth:`events` or
            :meth:`next_event` (unbounded: read them, or leave this off).

    Raises:
        NexusError: the context could not be created.
    """

    _what = "context"

    def __init__(self, reactors: int = 0, *, ring_entries: int = 0,
                 queue_capacity: int = 0,
                 plugin_path: Optional[str] = None,
                 log: Union[None, logging.Logger,
                            Callable[[LogLevel, str], None]] = None,
                 log_level: Optional[LogLevel] = None,
                 busy_poll: bool = False,
                 poll_us: int = 0,
                 mem_budget: int = 0,
                 on_event: Optional[Callable[[Event], None]] = None,
                 events: bool = False) -> None:
        super().__init__()
        self._children: "weakref.WeakSet[_Handle]" = weakref.WeakSet()
        # C handle -> weakref to its Device/Export wrapper, so that events
        # name the Python objects.
        self._objects = _Objects()
        self._log_cb = None
        self._sink: Optional[_EventSink] = None
        self._event_key = 0
        opts = _capi.nexus_ctx_opts()
        opts.size = sizeof(opts)
        opts.reactors = reactors
        opts.ring_entries = ring_entries
        opts.queue_capacity = queue_capacity
        opts.plugin_path = _enc(plugin_path) if plugin_path else None
        opts.flags = _CTX_BUSY_POLL if busy_poll else 0
        opts.poll_us = poll_us
        opts.mem_budget = mem_budget
        if log_level is not None:
            opts.log_level = int(log_level)
        if log is not None:
            self._log_cb = _capi.LOG_FN(_log_adapter(log))
            opts.log_fn = ctypes.cast(self._log_cb, c_void_p).value
        if on_event is not None or events:
            self._sink = _EventSink(self._objects, on_event, events)
            self._event_key = next(_event_keys)
            _event_sinks[self._event_key] = self._sink
            opts.event_fn = ctypes.cast(_EVENT_FN, c_void_p).value
            opts.event_free = ctypes.cast(_EVENT_FREE_FN, c_void_p).value
            opts.event_user_data = self._event_key
        out = c_void_p()
        rc = lib().nexus_ctx_create(byref(opts), byref(out))
        if rc < 0:
            err = _error(rc, "nexus_ctx_create")
            self._end_events()
            raise err
        self._ptr = out.value
        _live_contexts.add(self)

    def _end_events(self) -> None:
        # event_free has run (or, with a library that never calls it,
        # never will): drop the sink and end the queue.
        if self._event_key:
            sink = _event_sinks.pop(self._event_key, None)
            if sink is not None:
                sink.end()
            self._event_key = 0

    def close(self) -> None:
        """Close every export, pipeline and device of the context, stop the
        reactors and the event thread and free it; then :meth:`events`
        ends.  Closing twice is harmless.

        Raises:
            RuntimeError: called from the context's own event callback.
        """
        sink = self._sink
        if sink is not None and sink.thread == threading.get_ident() \
                and not self.closed:
            raise RuntimeError("a context cannot be closed from its own "
                               "event callback")
        ptr = self._detach()
        if ptr is None:
            return
        # Exports first: they hold references on devices.
        children = list(self._children)
        for rank in (Export, Pipeline, Device):
            for child in children:
                if isinstance(child, rank):
                    try:
                        child.close()
                    except Exception:  # the library closes it below
                        child._detach()
        lib().nexus_ctx_destroy(ptr)
        self._end_events()
        _live_contexts.discard(self)

    # ---- events

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterate over the context's events as they arrive (blocking),
        until the context is closed and its queue drained, or until no
        event arrived for @timeout seconds::

            with nexus.Context(events=True) as ctx:
                ...
                for ev in ctx.events(timeout=5):
                    print(ev.seq, ev.kind_name, ev.object)

        Raises:
            RuntimeError: the context was created without ``events=True``.
        """
        while True:
            ev = self.next_event(timeout)
            if ev is None:
                return
            yield ev

    def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event of the queue, waiting up to @timeout seconds
        (None: until one arrives or the context is closed).

        Returns:
            The :class:`Event`, or None on timeout or once the context is
            closed and the queue is empty.
        Raises:
            RuntimeError: the context was created without ``events=True``.
        """
        sink = self._sink
        if sink is None or sink.queue is None:
            raise RuntimeError("this context keeps no events: create it "
                               "with nexus.Context(events=True)")
        try:
            ev = sink.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if ev is _END:
            sink.queue.put(_END)  # for the other readers
            return None
        return ev

    def _register(self, ptr: int, obj, replace: bool = True) -> None:
        self._objects.register(ptr, obj, replace)

    @property
    def reactor_count(self) -> int:
        """Number of reactor threads."""
        ptr = self._acquire()
        try:
            return _check(lib().nexus_ctx_reactor_count(ptr),
                          "nexus_ctx_reactor_count")
        finally:
            self._release()

    def open(self, pipeline: str) -> "Device":
        """Open a device from pipeline text without an export stage, e.g.
        ``"file:/var/lib/vol.img"`` or ``"mem:size=1G"``.

        Raises:
            NexusError: e.g. FileNotFoundError for a missing file or an
                unknown driver; the message names the stage and column.
        """
        ptr = self._acquire()
        try:
            out = c_void_p()
            with self._objects.creating():
                _check(lib().nexus_dev_open(ptr, _enc(pipeline), byref(out)),
                       "nexus_dev_open")
                dev = Device._wrap(self, out.value, owner=None)
            self._children.add(dev)
            return dev
        finally:
            self._release()

    def create_export(self, spec: str) -> "Export":
        """Start an export with no device yet, e.g.
        ``ctx.create_export("nbd:listen=127.0.0.1:10809")``; clients can
        connect at once.  Serve devices with :meth:`Export.add`.

        Raises:
            NexusError: EINVAL (bad spec: the message names the option),
                ENOENT (unknown export driver), EADDRINUSE...
        """
        ptr = self._acquire()
        try:
            out = c_void_p()
            with self._objects.creating():
                _check(lib().nexus_export_create(ptr, _enc(spec),
                                                 byref(out)),
                       "nexus_export_create")
                exp = Export._wrap(self, out.value, spec, owner=None)
            self._children.add(exp)
            return exp
        finally:
            self._release()
    def open_pipeline(self, text: str) -> "Pipeline":
        """Build a pipeline: its device stack and, if the last stage is an
        export (``... | nbd:listen=127.0.0.1:10809``), start the export.
        """
        ptr = self._acquire()
        try:
            out = c_void_p()
            with self._objects.creating():
                _check(lib().nexus_pipeline_open(ptr, _enc(text),
                                                 byref(out)),
                       "nexus_pipeline_open")
                pl = Pipeline._wrap(self, out.value, os.fsdecode(text))
            self._children.add(pl)
            return pl
        finally:
            self._release()

    def _snprintf_call(self, fn, function: str, *args) -> str:
        ptr = self._acquire()
        try:
            size = 4096
            while True:
                buf = ctypes.create_string_buffer(size)
                n = _check(fn(ptr, *args, buf, size), function)
                if n < size:
                    return _dec(buf.value)
                size = n + 1
        finally:
            self._release()

    def check_pipeline(self, text: str) -> str:
        """Parse and validate pipeline text without opening anything.

        Returns:
            A normalised, human-readable description of the stages.
        Raises:
            NexusError: EINVAL with a message naming the stage and column.
        """
        return self._snprintf_call(lib().nexus_pipeline_check,
                                   "nexus_pipeline_check", _enc(text))

    def describe_drivers(self) -> str:
        """Text describing every driver: kind, name, options and help."""
        return self._snprintf_call(lib().nexus_ctx_describe_drivers,
                                   "nexus_ctx_describe_drivers")

    def set_secret(self, name: str, data) -> None:
        """Register a secret (an encryption key, a pre-shared key...; bytes
        or any buffer, 1 to 1024 bytes) under @name, for stages that refer
        to it, e.g. ``crypt:key-name=NAME`` (a raw AES-XTS key: 64 bytes
        for AES-256-XTS, 32 for AES-128-XTS).  The library copies it into
        locked memory and wipes it when removed or when the context
        closes; it never appears in pipeline text or messages.

        Raises:
            NexusError: EINVAL (bad name or length), EEXIST (a secret of
                that name exists: remove it first).
        """
        buf = _Buffer(data, writable=False)
        ptr = self._acquire()
        try:
            _check(lib().nexus_ctx_secret_set(ptr, _enc(name), buf.addr,
                                              buf.nbytes),
                   "nexus_ctx_secret_set")
        finally:
            self._release()
            buf.release()

    def set_secret_hex(self, name: str, hex_digits: str) -> None:
        """Register a secret given as hex digits; as :meth:`set_secret`.

        Raises:
            NexusError: EINVAL also for text that is not hex (the message
                never quotes it).
        """
        ptr = self._acquire()
        try:
            _check(lib().nexus_ctx_secret_set_hex(ptr, _enc(name),
                                                  hex_digits.encode()),
                   "nexus_ctx_secret_set_hex")
        finally:
            self._release()

    def remove_secret(self, name: str) -> None:
        """Wipe and forget a secret (devices already open keep their copy).

        Raises:
            NexusError: ENOENT (FileNotFoundError) if no such secret.
        """
        ptr = self._acquire()
        try:
            _check(lib().nexus_ctx_secret_remove(ptr, _enc(name)),
                   "nexus_ctx_secret_remove")
        finally:
            self._release()

    def load_plugin(self, path: Union[str, os.PathLike]) -> None:
        """Load a driver plugin (a shared object) into the context."""
        ptr = self._acquire()
        try:
            _check(lib().nexus_plugin_load(ptr, _enc(path)),
                   "nexus_plugin_load")
        finally:
            self._release()

    def __repr__(self) -> str:
        return "<nexus.Context %s>" % ("closed" if self.closed else
                                       "at 0x%x" % self._ptr)


def _log_adapter(log) -> Callable[[int, int, bytes], None]:
    if isinstance(log, logging.Logger):
        pylevel = {LogLevel.ERROR: logging.ERROR,
                   LogLevel.WARN: logging.WARNING,
                   LogLevel.INFO: logging.INFO,
                   LogLevel.DEBUG: logging.DEBUG}
        logger = log

        def log(level, msg):  # noqa: F811
            logger.log(pylevel.get(level, logging.ERROR), "%s", msg)

    def callback(_user_data, level, msg):
        try:
            try:
                lvl = LogLevel(level)
            except ValueError:
                lvl = LogLevel.ERROR
            log(lvl, msg.decode("utf-8", "replace") if msg else "")
        except Exception:  # never let an exception unwind into C
            pass
    return callback


class _Buffer:
    """Address and length of a Python buffer for the duration of a call,
    without copying.  Writable objects go through ctypes ``from_buffer``;
    read-only ones (bytes, read-only memoryview or mmap) through the
    interpreter's buffer protocol."""

    __slots__ = ("addr", "nbytes", "_keep", "_mv", "_view")

    def __init__(self, obj, writable: bool) -> None:
        self._keep = self._mv = self._view = None
        if isinstance(obj, bytes) and not writable:
            self.nbytes = len(obj)
            self._keep = obj
            self.addr = ctypes.cast(ctypes.c_char_p(obj), c_void_p).value
            return
        mv = memoryview(obj)
        if not mv.c_contiguous:
            mv.release()
            raise BufferError("buffer must be C-contiguous")
        if mv.readonly and writable:
            mv.release()
            raise TypeError("a writable buffer is required, not %s"
                            % type(obj).__name__)
        self.nbytes = mv.nbytes
        if not mv.readonly:
            mv = mv.cast("B")
            self._mv = mv
            self._keep = (c_char * self.nbytes).from_buffer(mv)
            self.addr = ctypes.addressof(self._keep)
            return
        view = _capi.get_buffer(obj, False)
        if view is not None:
            mv.release()
            self._view = view
            self.addr = view.buf
        else:  # not CPython: a copy is the best we can do
            self._keep = (c_char * self.nbytes).from_buffer_copy(mv)
            mv.release()
            self.addr = ctypes.addressof(self._keep)

    def release(self) -> None:
        self._keep = None
        if self._mv is not None:
            self._mv.release()
            self._mv = None
        if self._view is not None:
            _capi.release_buffer(self._view)
            self._view = None


class Device(_Handle):
    """An open device: a source, or a transform stacked on devices.

    Obtain one from :meth:`Context.open`, :func:`nexus.open` or
    :attr:`Pipeline.device`.  Offsets and lengths must be multiples of
    :attr:`block_size`.  All methods may be called from several threads at
    once (the GIL is released during I/O).
    """

    _what = "device"

    def __init__(self) -> None:
        raise TypeError("use Context.open() or nexus.open() to open a "
                        "device")

    @classmethod
    def _wrap(cls, ctx: Context, ptr: int, owner) -> "Device":
        self = cls.__new__(cls)
        _Handle.__init__(self)
        self._ctx = ctx
        self._owner = owner          # a Pipeline or Device, None if ours
        self._own_ctx = False
        self._exports: List[Export] = []   # from export(): stop with us
        self._served_by: "weakref.WeakSet[Export]" = weakref.WeakSet()
        self._views: "weakref.WeakSet[Device]" = weakref.WeakSet()
        self._ptr = ptr
        info = self.info
        self._max_io = info.max_io_size or (32 << 20)
        self._name = info.name
        ctx._register(ptr, self, replace=owner is None)
        return self

    @property
    def context(self) -> Context:
        """The context the device belongs to."""
        return self._ctx

    def close(self) -> None:
        """Stop the exports started with :meth:`export`, finish I/O in
        flight and close the device.  A device that belongs to a
        :class:`Pipeline` or a stack is closed with it; closing it here
        does nothing.  Closing twice is harmless.

        Raises:
            NexusError: EBUSY while an export (from
                :meth:`Context.create_export`) serves the device; the
                message names the export.  Remove the device from it
                (:meth:`Export.remove`) or close the export first.  The
                device then stays open and usable.
        """
        if getattr(self, "_owner", None) is not None:
            return
        for exp in list(getattr(self, "_exports", ())):
            exp.close()
        if self.closed:
            return
        if len(self._served_by):
            # Served: the library refuses (-EBUSY) and leaves the device
            # untouched, so ask it while the handle stays usable.
            ptr = self._acquire()
            try:
                rc = lib().nexus_dev_close(ptr)
                if rc < 0:
                    raise _error(rc, "nexus_dev_close")
            finally:
                self._release()
            self._forget(ptr)
            return
        detached = self._detach_stack()
        if not detached:
            return
        ptr = detached[0][1]
        rc = lib().nexus_dev_close(ptr)
        if rc < 0:
            err = _error(rc, "nexus_dev_close")
            for handle, p in detached:
                handle._reattach(p)
            raise err
        self._forget(ptr)

    def _forget(self, ptr: int) -> None:
        # After a successful nexus_dev_close(): the handle and its views
        # are invalid now.
        self._detach_stack()
        self._ctx._children.discard(self)
        if self._own_ctx:
            self._ctx.close()

    def _detach_stack(self) -> List[Tuple["_Handle", int]]:
        """Invalidate this handle and the views of devices below it
        (waiting for calls in progress); return the (handle, C pointer)
        pairs detached, this device's first (empty if it was detached
        already)."""
        ptr = self._detach()
        if ptr is None:
            return []
        out: List[Tuple[_Handle, int]] = [(self, ptr)]
        for view in list(self._views):
            out.extend(view._detach_stack())
        return out

    @property
    def children(self) -> List["Device"]:
        """The devices directly below this one in its stack (a transform's
        children; empty for a source), as they are now (see
        :meth:`attach_child`).  They belong to the stack and are closed
        with it; closing them here does nothing (or raises EBUSY for one
        given to :meth:`attach_child`)."""
        ptr = self._acquire()
        try:
            L = lib()
            out = []
            for i in range(L.nexus_dev_child_count(ptr)):
                cptr = L.nexus_dev_child(ptr, i)
                if not cptr:
                    continue
                view = self._ctx._objects.find(cptr)
                if not isinstance(view, Device):  # else: attached by us
                    view = Device._wrap(self._ctx, cptr, owner=self)
                self._views.add(view)
                out.append(view)
            return out
        finally:
            self._release()

    def attach_child(self, child: "Device") -> None:
        """Attach @child, an open device of the same context that nothing
        else holds, as a new (last) child of this running transform, e.g.
        a replica of a mirror; I/O goes on meanwhile.  The child then
        belongs to this device: it is closed with it, and its own
        :meth:`close` raises EBUSY until :meth:`detach_child`.

        Raises:
            NexusError: EOPNOTSUPP (this driver cannot attach while
                open), EBUSY (@child is served by an export or part of a
                stack), ENOSPC (no room for more children), EINVAL
                (another context, a loop, a child the driver refuses).
                @child then stays as it was.
        """
        if not isinstance(child, Device):
            raise TypeError("attach_child() needs a nexus.Device, not %s"
                            % type(child).__name__)
        ptr = self._acquire()
        try:
            cptr = child._acquire()
            try:
                _check(lib().nexus_dev_attach_child(ptr, cptr),
                       "nexus_dev_attach_child")
            finally:
                child._release()
            self._views.add(child)
        finally:
            self._release()

    def detach_child(self, child: "Device") -> None:
        """Detach @child from this running transform: once this returns
        no I/O of this device goes to it, and it is the caller's again
        (close it, or attach it elsewhere).  Works for children from
        :attr:`children` as for those given to :meth:`attach_child`.

        Raises:
            NexusError: ENOENT (not a child of this device), EBUSY (the
                last child, or one the driver cannot spare), EOPNOTSUPP.
        """
        ptr = self._acquire()
        try:
            cptr = child._acquire()
            try:
                _check(lib().nexus_dev_detach_child(ptr, cptr),
                       "nexus_dev_detach_child")
            finally:
                child._release()
            self._views.discard(child)
            if child._owner is self:
                # a view from `children`: the caller's device now
                child._owner = None
                self._ctx._children.add(child)
        finally:
            self._release()

    def control(self, key: str, value) -> None:
        """Change a setting of the device stack at run time, e.g.
        ``dev.control("throttle.iops", 1000)`` or
        ``dev.control("fault.enable", "off")``.  @key is
        ``[DRIVER.]NAME``; @value is text (other values are converted
        with ``str``; booleans become ``"on"``/``"off"``).

        Raises:
            NexusError: EINVAL (bad value), ENOENT (no such stage or
                setting), EOPNOTSUPP (the driver takes no settings).
        """
        if isinstance(value, bool):
            value = "on" if value else "off"
        ptr = self._acquire()
        try:
            _check(lib().nexus_dev_control(ptr, _enc(key),
                                           _enc(str(value))),
                   "nexus_dev_control")
        finally:
            self._release()

    # ---- description

    @property
    def info(self) -> DeviceInfo:
        """A :class:`DeviceInfo` describing the device."""
        ptr = self._acquire()
        try:
            ci = _capi.nexus_dev_info()
            ci.size = sizeof(ci)
            _check(lib().nexus_dev_get_info(ptr, byref(ci)),
                   "nexus_dev_get_info")
            return DeviceInfo(
                size=ci.dev_size,
                logical_block_size=ci.logical_block_size,
                physical_block_size=ci.physical_block_size,
                optimal_io_size=ci.optimal_io_size,
                max_io_size=ci.max_io_size,
                ops=frozenset(op for op in Op if ci.ops & (1 << op)),
                flags=DeviceFlag(ci.flags),
                driver=_dec(ci.driver), name=_dec(ci.name))
        finally:
            self._release()

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self.info.size

    @property
    def block_size(self) -> int:
        """Logical block size: the alignment of offsets and lengths."""
        return self.info.logical_block_size

    @property
    def name(self) -> str:
        """The pipeline text that opened the device."""
        return self._name

    @property
    def state(self) -> Union[DevState, int]:
        """The device's current :class:`DevState` (``ONLINE``, ...)."""
        ptr = self._acquire()
        try:
            return _enum_or_int(DevState, _check(
                lib().nexus_dev_get_state(ptr), "nexus_dev_get_state"))
        finally:
            self._release()

    def mirror_children(self) -> List[MirrorChild]:
        """The children of the mirror in this device's stack (this device
        or one below it), with state, reason and counters.

        Raises:
            NexusError: ENOENT when the stack has no mirror.
        """
        ptr = self._acquire()
        try:
            L = lib()
            out: List[MirrorChild] = []
            n = 1
            i = 0
            while i < n:
                c = _capi.nexus_mirror_child()
                c.size = sizeof(c)
                n = _check(L.nexus_mirror_get_child(ptr, i, byref(c)),
                           "nexus_mirror_get_child")
                ci = _capi.nexus_dev_info()
                ci.size = sizeof(ci)
                name = ""
                if c.dev and L.nexus_dev_get_info(c.dev, byref(ci)) == 0:
                    name = _dec(ci.name)
                out.append(MirrorChild(
                    index=i, name=name,
                    state=_enum_or_int(DevState, c.state),
                    reason=_enum_or_int(Reason, c.reason), error=c.error,
                    partial_ok=bool(c.partial_ok), reads=c.reads,
                    writes=c.writes, errors=c.errors, timeouts=c.timeouts,
                    in_flight=c.in_flight, dirty_bytes=c.dirty_bytes))
                i += 1
            return out
        finally:
            self._release()

    def mirror_rebuild(self) -> MirrorRebuild:
        """The rebuild of the mirror in this device's stack: the running
        one, else the last one.

        Raises:
            NexusError: ENOENT when the stack has no mirror.
        """
        ptr = self._acquire()
        try:
            r = _capi.nexus_mirror_rebuild()
            r.size = sizeof(r)
            r.progress.size = sizeof(r.progress)
            _check(lib().nexus_mirror_get_rebuild(ptr, byref(r)),
                   "nexus_mirror_get_rebuild")
            p = r.progress
            running = r.child >= 0
            return MirrorRebuild(
                child=r.child if running else None, partial=bool(r.partial),
                completed=r.completed, last_result=r.last_result,
                bytes_done=p.bytes_done, bytes_total=p.bytes_total,
                rate=p.rate,
                eta_s=r.eta_ms / 1e3 if running and r.eta_ms != 2**64 - 1
                else None)
        finally:
            self._release()

    def stats(self) -> DeviceStats:
        """A snapshot of the device's counters, with those of every
        operation in :attr:`DeviceStats.per_op`."""
        ptr = self._acquire()
        try:
            L = lib()
            cs = _capi.nexus_dev_stats()
            cs.size = sizeof(cs)
            _check(L.nexus_dev_get_stats(ptr, byref(cs)),
                   "nexus_dev_get_stats")
            per_op = {}
            for op in itertools.count():
                st = self._op_stats(ptr, op)
                if st is None:
                    break
                per_op[_enum_or_int(Op, op)] = st
            return DeviceStats(ops=cs.ops, errors=cs.errors,
                               bytes_read=cs.bytes_read,
                               bytes_written=cs.bytes_written,
                               in_flight=cs.in_flight,
                               latency=tuple(cs.latency), per_op=per_op)
        finally:
            self._release()

    @staticmethod
    def _op_stats(ptr: int, op: int) -> Optional[OpStats]:
        """OpStats of operation @op, None past the last one (-ERANGE)."""
        cs = _capi.nexus_op_stats()
        cs.size = sizeof(cs)
        rc = lib().nexus_dev_get_op_stats(ptr, int(op), byref(cs))
        if rc == -_errno.ERANGE:
            return None
        _check(rc, "nexus_dev_get_op_stats")
        return OpStats(ops=cs.ops, errors=cs.errors, bytes=cs.bytes)

    def op_stats(self, op: Op) -> OpStats:
        """The counters of one operation, e.g. ``dev.op_stats(Op.WRITE)``.

        Raises:
            NexusError: ERANGE for an operation the library does not know.
        """
        ptr = self._acquire()
        try:
            st = self._op_stats(ptr, op)
            if st is None:
                raise error_for(-_errno.ERANGE, "operation %d is not known "
                                "to this libnexus" % int(op),
                                "nexus_dev_get_op_stats")
            return st
        finally:
            self._release()

    # ---- I/O

    def readinto(self, buffer, offset: int = 0) -> int:
        """Read ``len(buffer)`` bytes at @offset straight into @buffer
        (bytearray, writable memoryview, mmap, array...; no copy).

        Requests larger than the device's ``max_io_size`` are split.

        Returns:
            The number of bytes read (the buffer's size in bytes).
        """
        buf = _Buffer(buffer, writable=True)
        ptr = self._acquire()
        try:
            return self._rw(ptr, buf, offset, 0, read=True)
        finally:
            self._release()
            buf.release()

    def pread(self, length: int, offset: int = 0) -> bytes:
        """Read @length bytes at @offset and return them as bytes.

        Use :meth:`readinto` to read into an existing buffer without the
        extra copy.
        """
        out = bytearray(length)
        self.readinto(out, offset)
        return bytes(out)

    def pwrite(self, data, offset: int = 0, *, fua: bool = False) -> int:
        """Write all of @data (bytes or any buffer: bytearray,
        memoryview, mmap...; no copy) at @offset.

        Args:
            fua: the write is durable when this returns.
        Returns:
            The number of bytes written.
        """
        buf = _Buffer(data, writable=False)
        ptr = self._acquire()
        try:
            return self._rw(ptr, buf, offset, _IO_FUA if fua else 0,
                            read=False)
        finally:
            self._release()
            buf.release()

    def _rw(self, ptr: int, buf: _Buffer, offset: int, flags: int,
            read: bool) -> int:
        L = lib()
        done, total = 0, buf.nbytes
        if total == 0:  # like os.pread/pwrite: nothing to do
            return 0
        while True:
            n = min(total - done, self._max_io)
            if read:
                rc = L.nexus_dev_pread(ptr, buf.addr + done, n,
                                       offset + done)
                _check(rc, "nexus_dev_pread")
            else:
                rc = L.nexus_dev_pwrite(ptr, buf.addr + done, n,
                                        offset + done, flags)
                _check(rc, "nexus_dev_pwrite")
            done += n
            if done >= total:
                return done

    def _vec(self, buffers: Sequence, offset: int, flags: int,
             read: bool) -> int:
        bufs = []
        try:
            for b in buffers:
                bufs.append(_Buffer(b, writable=read))
            iov = (_capi.iovec * max(len(bufs), 1))()
            for i, b in enumerate(bufs):
                iov[i].iov_base = b.addr
                iov[i].iov_len = b.nbytes
            ptr = self._acquire()
            try:
                if read:
                    return _check(lib().nexus_dev_preadv(
                        ptr, iov, len(bufs), offset), "nexus_dev_preadv")
                return _check(lib().nexus_dev_pwritev(
                    ptr, iov, len(bufs), offset, flags), "nexus_dev_pwritev")
            finally:
                self._release()
        finally:
            for b in bufs:
                b.release()

    def preadv(self, buffers: Iterable, offset: int = 0) -> int:
        """Scatter read: fill each writable buffer in turn, starting at
        @offset, in one request (at most ``max_io_size`` in total).

        Returns:
            Total bytes read.
        """
        return self._vec(list(buffers), offset, 0, read=True)

    def pwritev(self, buffers: Iterable, offset: int = 0, *,
                fua: bool = False) -> int:
        """Gather write of the buffers, in order, at @offset, in one
        request (at most ``max_io_size`` in total).

        Returns:
            Total bytes written.
        """
        return self._vec(list(buffers), offset, _IO_FUA if fua else 0,
                         read=False)

    def flush(self) -> None:
        """Make completed writes durable."""
        ptr = self._acquire()
        try:
            _check(lib().nexus_dev_flush(ptr), "nexus_dev_flush")
        finally:
            self._release()

    def trim(self, offset: int, length: int) -> None:
        """Discard a range (it reads back as unspecified data unless the
        device has :attr:`DeviceFlag.TRIM_ZEROES`).

        Raises:
            NexusError: EOPNOTSUPP if the device cannot trim.
        """
        ptr = self._acquire()
        try:
            _check(lib().nexus_dev_trim(ptr, offset, length, 0),
                   "nexus_dev_trim")
        finally:
            self._release()

    def write_zeroes(self, offset: int, length: int, *, fua: bool = False,
                     no_unmap: bool = False, fast_zero: bool = False) -> None:
        """Make a range read back as zeroes.

        Args:
            fua: durable when this returns.
            no_unmap: keep the range allocated.
            fast_zero: fail with EOPNOTSUPP rather than write zeroes slowly.
        """
        flags = ((_IO_FUA if fua else 0) | (_IO_NO_UNMAP if no_unmap else 0)
                 | (_IO_FAST_ZERO if fast_zero else 0))
        ptr = self._acquire()
        try:
            _check(lib().nexus_dev_write_zeroes(ptr, offset, length, flags),
                   "nexus_dev_write_zeroes")
        finally:
            self._release()

    def block_status(self, offset: int, length: int,
                     max_extents: int = 256) -> List[Extent]:
        """Allocation status of a range, as contiguous extents starting at
        @offset (they may cover less than @length)."""
        ext = (_capi.nexus_extent * max_extents)()
        ptr = self._acquire()
        try:
            n = _check(lib().nexus_dev_block_status(ptr, offset, length, ext,
                                                    max_extents),
                       "nexus_dev_block_status")
        finally:
            self._release()
        return [Extent(e.offset, e.length, e.flags) for e in ext[:n]]

    # ---- exports

    def export(self, spec: str, **add_args) -> "Export":
        """Serve this device on an export of its own, e.g.
        ``dev.export("nbd:listen=127.0.0.1:10809")``: shorthand for
        :meth:`Context.create_export` and :meth:`Export.add` (keyword
        arguments go to it).  The export runs until :meth:`Export.close`
        or until the device is closed, which stops it first."""
        self._acquire()
        self._release()
        exp = self._ctx.create_export(spec)
        try:
            exp.add(self, **add_args)
        except BaseException:
            exp.close()
            raise
        exp._home = self
        self._exports.append(exp)
        return exp

    start_export = export

    def __repr__(self) -> str:
        return "<nexus.Device %r%s>" % (getattr(self, "_name", "?"),
                                        " closed" if self.closed else "")


class Export(_Handle):
    """A running export: a protocol server (NBD, ...) serving devices.

    Create one with :meth:`Context.create_export` and serve devices with
    :meth:`add`; :meth:`Device.export` does both for one device; a
    pipeline that ends in an export stage has one
    (:attr:`Pipeline.export`).  Use as a context manager or call
    :meth:`close`::

        with ctx.create_export("nbd:listen=127.0.0.1:10809") as exp:
            exp.add(dev, name="vol")     # clients select it as "vol"
            ...
            exp.remove(dev)              # dev can be closed again

    While an export serves a device, :meth:`Device.close` raises EBUSY.
    """

    _what = "export"

    def __init__(self) -> None:
        raise TypeError("use Context.create_export(), Device.export() or "
                        "Context.open_pipeline()")

    @classmethod
    def _wrap(cls, ctx: Context, ptr: int, spec: str, owner) -> "Export":
        self = cls.__new__(cls)
        _Handle.__init__(self)
        self._ctx = ctx
        self._spec = spec
        self._owner = owner          # a Pipeline, or None if ours
        self._home: Optional[Device] = None  # from Device.export()
        self._devices: List[Device] = []
        self._ptr = ptr
        ctx._register(ptr, self)
        return self

    @property
    def context(self) -> Context:
        """The context the export belongs to."""
        return self._ctx

    @property
    def spec(self) -> str:
        """The export stage text."""
        return self._spec

    @property
    def devices(self) -> List[Device]:
        """The devices served through this binding, in the order added."""
        return list(self._devices)

    @property
    def device(self) -> Optional[Device]:
        """The (first) device served, or None."""
        return self._devices[0] if self._devices else None

    def __len__(self) -> int:
        """Number of devices the export serves (the library's count)."""
        ptr = self._acquire()
        try:
            return _check(lib().nexus_export_dev_count(ptr),
                          "nexus_export_dev_count")
        finally:
            self._release()

    def __bool__(self) -> bool:
        return True  # an export with no device yet is still an export

    def __contains__(self, dev) -> bool:
        return any(d is dev for d in self._devices)

    def add(self, dev: Device, *, name: Optional[str] = None, id: int = 0,
            read_only: bool = False) -> None:
        """Serve @dev on this export.  The export holds the device:
        closing it raises EBUSY until :meth:`remove` (or :meth:`close`).

        Args:
            name: the name clients select it by (NBD export name, iSCSI
                LUN name); None: the driver's default (for NBD the spec's
                ``name=``, else ``""``).
            id: its number in the export (NVMe namespace ID, LUN); 0: the
                lowest free one.
            read_only: serve it read-only.
        Raises:
            NexusError: EEXIST (the name or id is taken, or the device is
                served already), EOPNOTSUPP (the driver serves one device
                and has one), EINVAL (device of another context, name too
                long).
        """
        if not isinstance(dev, Device):
            raise TypeError("add() needs a nexus.Device, not %s"
                            % type(dev).__name__)
        opts = _capi.nexus_export_dev_opts()
        opts.size = sizeof(opts)
        opts.name = _enc(name) if name is not None else None
        opts.id = id
        opts.flags = _EXPORT_DEV_READ_ONLY if read_only else 0
        ptr = self._acquire()
        try:
            dptr = dev._acquire()
            try:
                _check(lib().nexus_export_add_dev(ptr, dptr, byref(opts)),
                       "nexus_export_add_dev")
            finally:
                dev._release()
            self._devices.append(dev)
            dev._served_by.add(self)
        finally:
            self._release()

    def remove(self, dev: Device) -> None:
        """Stop serving @dev: its connections are drained and closed, the
        other devices keep being served, and @dev can be closed again.

        Raises:
            NexusError: ENOENT (FileNotFoundError) if the export does not
                serve it.
        """
        ptr = self._acquire()
        try:
            dptr = dev._acquire()
            try:
                _check(lib().nexus_export_remove_dev(ptr, dptr),
                       "nexus_export_remove_dev")
            finally:
                dev._release()
            self._drop(dev)
        finally:
            self._release()

    def _drop(self, dev: Device) -> None:
        self._devices = [d for d in self._devices if d is not dev]
        dev._served_by.discard(self)

    def _release_devices(self) -> None:
        for dev in self._devices:
            dev._served_by.discard(self)
        self._devices = []

    def close(self) -> None:
        """Refuse new clients, finish or fail requests in flight, close
        the connections and release the devices (they stay open).  An
        export that belongs to a :class:`Pipeline` stops with the
        pipeline; closing it here does nothing.  Closing twice is
        harmless."""
        if getattr(self, "_owner", None) is not None:
            return
        ptr = self._detach()
        if ptr is None:
            return
        lib().nexus_export_destroy(ptr)
        self._release_devices()
        self._ctx._children.discard(self)
        home, self._home = self._home, None
        if home is not None:
            try:
                home._exports.remove(self)
            except ValueError:
                pass

    stop = close

    def connections(self) -> List[ConnInfo]:
        """The current client connections and their counters."""
        ptr = self._acquire()
        try:
            cap = 16
            while True:
                arr = (_capi.nexus_conn_info * cap)()
                for c in arr:
                    c.size = sizeof(_capi.nexus_conn_info)
                n = _check(lib().nexus_export_list_conns(ptr, arr, cap),
                           "nexus_export_list_conns")
                if n <= cap:
                    break
                cap = n + 16
        finally:
            self._release()
        return [ConnInfo(peer=_dec(c.peer), export_name=_dec(c.export_name),
                         host_id=_dec(c.host_id), reactor=c.reactor,
                         requests=c.requests, errors=c.errors,
                         bytes_read=c.bytes_read,
                         bytes_written=c.bytes_written) for c in arr[:n]]

    def __del__(self) -> None:
        if getattr(self, "_home", None) is not None:
            return  # kept by its device until it closes
        super().__del__()

    def __repr__(self) -> str:
        return "<nexus.Export %r%s>" % (self._spec,
                                        " closed" if self.closed else "")


class Pipeline(_Handle):
    """A built pipeline (:meth:`Context.open_pipeline`): a device stack
    and, if the text ended with an export stage, a running export.

    The :attr:`device` and :attr:`export` belong to the pipeline: they are
    closed by :meth:`close` (or by leaving a ``with`` block).
    """

    _what = "pipeline"

    def __init__(self) -> None:
        raise TypeError("use Context.open_pipeline()")

    @classmethod
    def _wrap(cls, ctx: Context, ptr: int, text: str) -> "Pipeline":
        self = cls.__new__(cls)
        _Handle.__init__(self)
        self._ctx = ctx
        self._ptr = ptr
        self._text = text
        L = lib()
        self._device = Device._wrap(ctx, L.nexus_pipeline_dev(ptr), owner=self)
        eptr = L.nexus_pipeline_export(ptr)
        spec = text.rsplit("|", 1)[-1].strip()
        self._export = None
        if eptr:
            self._export = Export._wrap(ctx, eptr, spec, owner=self)
            self._export._devices.append(self._device)
        return self

    @property
    def text(self) -> str:
        """The pipeline text."""
        return self._text

    @property
    def device(self) -> Device:
        """The device at the top of the stack."""
        if self.closed:
            raise ValueError("pipeline is closed")
        return self._device

    @property
    def export(self) -> Optional[Export]:
        """The running export, or None if the pipeline has none."""
        if self.closed:
            raise ValueError("pipeline is closed")
        return self._export

    def close(self) -> None:
        """Stop the export(s), close the device stack.  Closing twice is
        harmless."""
        ptr = self._detach()
        if ptr is None:
            return
        self._device._detach_stack()
        if self._export is not None:
            self._export._detach()
        lib().nexus_pipeline_close(ptr)
        if self._export is not None:
            self._export._release_devices()
        self._ctx._children.discard(self)

    def __repr__(self) -> str:
        return "<nexus.Pipeline %r%s>" % (self._text,
                                          " closed" if self.closed else "")


def open(pipeline: str, **context_args) -> Device:  # noqa: A001
    """Open a device in a private :class:`Context` that is closed with it.

    The shortest way in::

        with nexus.open("file:/tmp/disk.img") as dev:
            data = dev.pread(4096, 0)

    Keyword arguments go to :class:`Context`.
    """
    ctx = Context(**context_args)
    try:
        dev = ctx.open(pipeline)
    except BaseException:
        ctx.close()
        raise
    dev._own_ctx = True
    return dev
