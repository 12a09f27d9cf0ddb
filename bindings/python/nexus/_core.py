# SPDX-License-Identifier: MIT
"""Contexts, devices, pipelines and exports: the Python face of nexus.h."""

from __future__ import annotations

import atexit
import ctypes
import enum
import logging
import os
import threading
import weakref
from ctypes import byref, c_char, c_void_p, sizeof
from dataclasses import dataclass
from typing import (Callable, Iterable, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

from . import _capi
from ._capi import lib
from .errors import error_for

__all__ = [
    "Op", "DeviceFlag", "LogLevel", "Context", "Device", "Pipeline",
    "Export", "DeviceInfo", "DeviceStats", "OpCounts", "Extent", "ConnInfo",
    "version", "load_library", "open",
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


_IO_FUA = 1 << 0
_IO_NO_UNMAP = 1 << 1
_IO_FAST_ZERO = 1 << 2
_EXTENT_HOLE = 1 << 0
_EXTENT_ZERO = 1 << 1
_CTX_BUSY_POLL = 1 << 0

BufferLike = Union[bytes, bytearray, memoryview, "mmap.mmap"]  # noqa: F821


def _enc(text: Union[str, bytes, os.PathLike]) -> bytes:
    return os.fsencode(text)


def _dec(raw: Optional[bytes]) -> str:
    return os.fsdecode(raw) if raw is not None else ""


def _check(rc: int, function: str) -> int:
    """Raise the NexusError for a negative return; call right after the C
    call, on the same thread, so nexus_last_error() is the right one."""
    if rc < 0:
        msg = lib().nexus_last_error()
        raise error_for(rc, msg.decode("utf-8", "replace") if msg else "",
                        function)
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

class OpCounts(NamedTuple):
    """One counter per operation."""
    read: int
    write: int
    flush: int
    trim: int
    write_zeroes: int


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
class DeviceStats:
    """A snapshot of a device's counters (``struct nexus_dev_stats``)."""
    ops: OpCounts
    """Completed operations per kind, failed ones included."""
    errors: OpCounts
    """Failed operations per kind."""
    bytes_read: int
    bytes_written: int
    in_flight: int
    """Operations submitted and not yet completed."""
    latency: Tuple[int, ...]
    """Latency histogram; see :meth:`bucket_floor`."""

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
    export_name: str
    reactor: int
    requests: int
    errors: int
    bytes_read: int
    bytes_written: int


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
    """A libnexus context: reactor threads and the driver registry.

    Use as a context manager; closing it closes every device, pipeline and
    export opened through it::

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
                 busy_poll: bool = False) -> None:
        super().__init__()
        self._children: "weakref.WeakSet[_Handle]" = weakref.WeakSet()
        self._log_cb = None
        opts = _capi.nexus_ctx_opts()
        opts.size = sizeof(opts)
        opts.reactors = reactors
        opts.ring_entries = ring_entries
        opts.queue_capacity = queue_capacity
        opts.plugin_path = _enc(plugin_path) if plugin_path else None
        opts.flags = _CTX_BUSY_POLL if busy_poll else 0
        if log_level is not None:
            opts.log_level = int(log_level)
        if log is not None:
            self._log_cb = _capi.LOG_FN(_log_adapter(log))
            opts.log_fn = ctypes.cast(self._log_cb, c_void_p).value
        out = c_void_p()
        _check(lib().nexus_ctx_create(byref(opts), byref(out)),
               "nexus_ctx_create")
        self._ptr = out.value
        _live_contexts.add(self)

    def close(self) -> None:
        """Close every device, pipeline and export of the context, stop the
        reactors and free it.  Closing twice is harmless."""
        ptr = self._detach()
        if ptr is None:
            return
        for child in list(self._children):
            child.close()
        lib().nexus_ctx_destroy(ptr)
        _live_contexts.discard(self)

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
            _check(lib().nexus_dev_open(ptr, _enc(pipeline), byref(out)),
                   "nexus_dev_open")
            dev = Device._wrap(self, out.value, owner=None)
            self._children.add(dev)
            return dev
        finally:
            self._release()

    def open_pipeline(self, text: str) -> "Pipeline":
        """Build a pipeline: its device stack and, if the last stage is an
        export (``... | nbd:listen=127.0.0.1:10809``), start the export.
        """
        ptr = self._acquire()
        try:
            out = c_void_p()
            _check(lib().nexus_pipeline_open(ptr, _enc(text), byref(out)),
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

    def register_key(self, name: str, key) -> None:
        """Register a raw AES-XTS key (64 bytes for AES-256-XTS, 32 for
        AES-128-XTS; bytes or any buffer) under @name, for pipelines that
        say ``crypt:key-name=NAME``.  The library copies the key into
        locked memory and wipes it when unregistered or when the context
        closes.

        Raises:
            NexusError: EINVAL (bad name or length), EEXIST (registered).
        """
        buf = _Buffer(key, writable=False)
        ptr = self._acquire()
        try:
            _check(lib().nexus_crypt_key_register(ptr, _enc(name), buf.addr,
                                                  buf.nbytes),
                   "nexus_crypt_key_register")
        finally:
            self._release()
            buf.release()

    def register_key_hex(self, name: str, hex_key: str) -> None:
        """Register a key given as 64 or 128 hex digits; as
        :meth:`register_key`."""
        ptr = self._acquire()
        try:
            _check(lib().nexus_crypt_key_register_hex(ptr, _enc(name),
                                                      hex_key.encode()),
                   "nexus_crypt_key_register_hex")
        finally:
            self._release()

    def unregister_key(self, name: str) -> None:
        """Wipe and forget a registered key (devices already open keep
        their copy).

        Raises:
            NexusError: ENOENT (FileNotFoundError) if no such key.
        """
        ptr = self._acquire()
        try:
            _check(lib().nexus_crypt_key_unregister(ptr, _enc(name)),
                   "nexus_crypt_key_unregister")
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
        self._owner = owner          # a Pipeline, or None if we own it
        self._own_ctx = False
        self._exports: List[Export] = []
        self._views: "weakref.WeakSet[Device]" = weakref.WeakSet()
        self._ptr = ptr
        info = self.info
        self._max_io = info.max_io_size or (32 << 20)
        self._name = info.name
        return self

    @property
    def context(self) -> Context:
        """The context the device belongs to."""
        return self._ctx

    def close(self) -> None:
        """Stop exports started with :meth:`export`, finish I/O in flight
        and close the device.  A device that belongs to a
        :class:`Pipeline` is closed with the pipeline; closing it here does
        nothing.  Closing twice is harmless."""
        if getattr(self, "_owner", None) is not None:
            return
        ptr = self._detach_stack()
        if ptr is None:
            return
        lib().nexus_dev_close(ptr)
        self._ctx._children.discard(self)
        if self._own_ctx:
            self._ctx.close()

    def _detach_stack(self) -> Optional[int]:
        """Invalidate this handle and the views of devices below it (waiting
        for calls in progress) and stop exports started on any of them;
        return the C handle, or None if already detached."""
        ptr = self._detach()
        if ptr is None:
            return None
        for view in list(self._views):
            view._detach_stack()
        for exp in list(self._exports):
            exp.stop()
        return ptr

    @property
    def children(self) -> List["Device"]:
        """The devices directly below this one in its stack (a transform's
        children; empty for a source).  They belong to the stack and are
        closed with it; closing them here does nothing."""
        ptr = self._acquire()
        try:
            L = lib()
            out = []
            for i in range(L.nexus_dev_child_count(ptr)):
                cptr = L.nexus_dev_child(ptr, i)
                if cptr:
                    view = Device._wrap(self._ctx, cptr, owner=self)
                    self._views.add(view)
                    out.append(view)
            return out
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
            ci = _capi.nexus_dev_get_info()
            ci.size = sizeof(ci)
            _check(lib().nexus_dev_get_info(ptr, byref(ci)), "nexus_dev_info")
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

    def stats(self) -> DeviceStats:
        """A snapshot of the device's counters."""
        ptr = self._acquire()
        try:
            cs = _capi.nexus_dev_get_stats()
            cs.size = sizeof(cs)
            _check(lib().nexus_dev_get_stats(ptr, byref(cs)), "nexus_dev_stats")
            return DeviceStats(ops=OpCounts(*cs.ops),
                               errors=OpCounts(*cs.errors),
                               bytes_read=cs.bytes_read,
                               bytes_written=cs.bytes_written,
                               in_flight=cs.in_flight,
                               latency=tuple(cs.latency))
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

    def export(self, spec: str) -> "Export":
        """Serve the device over a protocol, e.g.
        ``dev.export("nbd:listen=127.0.0.1:10809")``.  The export runs
        until :meth:`Export.stop` or until the device is closed."""
        ptr = self._acquire()
        try:
            out = c_void_p()
            _check(lib().nexus_export_start(ptr, _enc(spec), byref(out)),
                   "nexus_export_start")
            exp = Export._wrap(self, out.value, spec, owner=None)
            self._exports.append(exp)
            return exp
        finally:
            self._release()

    start_export = export

    def __repr__(self) -> str:
        return "<nexus.Device %r%s>" % (getattr(self, "_name", "?"),
                                        " closed" if self.closed else "")


class Export(_Handle):
    """A running export serving one device (from :meth:`Device.export` or
    :attr:`Pipeline.export`).  Use as a context manager or call
    :meth:`stop`."""

    _what = "export"

    def __init__(self) -> None:
        raise TypeError("use Device.export() or Context.open_pipeline()")

    @classmethod
    def _wrap(cls, dev: Device, ptr: int, spec: str, owner) -> "Export":
        self = cls.__new__(cls)
        _Handle.__init__(self)
        self._device = dev
        self._spec = spec
        self._owner = owner
        self._ptr = ptr
        return self

    @property
    def device(self) -> Device:
        """The device being served."""
        return self._device

    @property
    def spec(self) -> str:
        """The export stage text."""
        return self._spec

    def stop(self) -> None:
        """Refuse new clients, finish or fail requests in flight, close the
        connections.  The device stays open.  An export that belongs to a
        :class:`Pipeline` stops with the pipeline; stopping it here does
        nothing.  Stopping twice is harmless."""
        if self._owner is not None:
            return
        ptr = self._detach()
        if ptr is None:
            return
        lib().nexus_export_stop(ptr)
        try:
            self._device._exports.remove(self)
        except ValueError:
            pass

    close = stop

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
                         reactor=c.reactor, requests=c.requests,
                         errors=c.errors, bytes_read=c.bytes_read,
                         bytes_written=c.bytes_written) for c in arr[:n]]

    def __del__(self) -> None:
        pass  # kept alive by its device until stopped

    def __repr__(self) -> str:
        return "<nexus.Export %r%s>" % (self._spec,
                                        " stopped" if self.closed else "")


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
        self._export = (Export._wrap(self._device, eptr, spec, owner=self)
                        if eptr else None)
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
