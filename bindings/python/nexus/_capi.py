# SPDX-License-Identifier: MIT
"""Low-level ctypes declarations of the libnexus C API (nexus/nexus.h).

Nothing here is public: use the classes of the :mod:`nexus` package.  The
library is loaded lazily, on first use, from (in this order):

1. the path given to :func:`nexus.load_library`;
2. the environment variable ``NEXUS_LIBRARY`` (a file name or path);
3. the system loader: ``libnexus.so.0`` (honours ``LD_LIBRARY_PATH`` and
   the ld.so cache), then :func:`ctypes.util.find_library`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_int,
                    c_size_t, c_ssize_t, c_uint, c_uint32, c_uint64,
                    c_void_p)
from typing import Optional

SONAME = "libnexus.so.0"

# NEXUS_LAT_BUCKETS and NEXUS_ID_MAX.  There is deliberately no operation
# count: nexus_dev_get_op_stats() answers -ERANGE past the last one.
LAT_BUCKETS = 128
ID_MAX = 224

#: typedef void (*nexus_log_fn)(void *user_data, int level, const char *msg)
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class nexus_event_info(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("kind", c_uint32),
        ("reason", c_uint32),
        ("seq", c_uint64),
        ("time_ns", c_uint64),
        ("dev", c_void_p),
        ("child", c_void_p),
        ("exp", c_void_p),
        ("object", c_char_p),
        ("old_state", c_int),
        ("new_state", c_int),
        ("error", c_int),
        ("peer", c_char_p),
        ("message", c_char_p),
        ("count", c_uint64),
    ]


#: void (*event_fn)(void *user_data, const struct nexus_event_info *ev)
EVENT_FN = ctypes.CFUNCTYPE(None, c_void_p, POINTER(nexus_event_info))
#: void (*event_free)(void *user_data)
EVENT_FREE_FN = ctypes.CFUNCTYPE(None, c_void_p)


class nexus_ctx_opts(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("reactors", c_uint),
        ("ring_entries", c_uint),
        ("queue_capacity", c_uint),
        ("log_fn", c_void_p),
        ("log_user_data", c_void_p),
        ("log_level", c_int),
        ("plugin_path", c_char_p),
        ("flags", c_uint64),
        ("event_fn", c_void_p),
        ("event_user_data", c_void_p),
        ("event_free", c_void_p),
        ("poll_us", c_uint),
        ("mem_budget", c_uint64),
    ]


class nexus_dev_info(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("dev_size", c_uint64),
        ("logical_block_size", c_uint32),
        ("physical_block_size", c_uint32),
        ("optimal_io_size", c_uint32),
        ("max_io_size", c_uint32),
        ("ops", c_uint32),
        ("flags", c_uint32),
        ("driver", c_char_p),
        ("name", c_char_p),
    ]


class nexus_dev_stats(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("ops", c_uint64),
        ("errors", c_uint64),
        ("bytes_read", c_uint64),
        ("bytes_written", c_uint64),
        ("in_flight", c_uint64),
        ("latency", c_uint64 * LAT_BUCKETS),
    ]


class nexus_op_stats(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("ops", c_uint64),
        ("errors", c_uint64),
        ("bytes", c_uint64),
    ]


class nexus_conn_info(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("peer", c_char * ID_MAX),
        ("export_name", c_char * ID_MAX),
        ("host_id", c_char * ID_MAX),
        ("reactor", c_uint),
        ("requests", c_uint64),
        ("errors", c_uint64),
        ("bytes_read", c_uint64),
        ("bytes_written", c_uint64),
    ]


class nexus_export_dev_opts(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("name", c_char_p),
        ("id", c_uint32),
        ("flags", c_uint32),
    ]


class nexus_extent(Structure):
    _fields_ = [
        ("offset", c_uint64),
        ("length", c_uint64),
        ("flags", c_uint32),
    ]


class iovec(Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


#: typedef void (*nexus_io_cb)(void *user_data, int result)
IO_CB = ctypes.CFUNCTYPE(None, c_void_p, c_int)


class nexus_io_req(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("op", c_uint32),
        ("flags", c_uint32),
        ("iov", POINTER(iovec)),
        ("iovcnt", c_int),
        ("offset", c_uint64),
        ("length", c_uint64),
        ("cb", c_void_p),
        ("user_data", c_void_p),
        ("extents", POINTER(nexus_extent)),
        ("max_extents", c_uint32),
    ]


class nexus_mirror_child(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("dev", c_void_p),
        ("state", c_int),
        ("reason", c_uint32),
        ("error", c_int),
        ("partial_ok", c_int),
        ("reads", c_uint64),
        ("writes", c_uint64),
        ("errors", c_uint64),
        ("timeouts", c_uint64),
        ("in_flight", c_uint64),
        ("dirty_bytes", c_uint64),
    ]


class nexus_copy_progress(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("phase", c_int),
        ("flags", c_uint32),
        ("bytes_done", c_uint64),
        ("bytes_total", c_uint64),
        ("data_bytes", c_uint64),
        ("zero_bytes", c_uint64),
        ("skipped_bytes", c_uint64),
        ("rate", c_uint64),
        ("elapsed_ns", c_uint64),
        ("in_flight", c_uint),
        ("mismatch_offset", c_uint64),
        ("error", c_int),
    ]


class nexus_mirror_rebuild(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("child", c_int),
        ("partial", c_int),
        ("completed", c_uint64),
        ("last_result", c_int),
        ("progress", nexus_copy_progress),
        ("eta_ms", c_uint64),
    ]


#: Every struct of nexus.h declared here (tests check each against the C
#: compiler's sizeof and offsetof).
STRUCTS = (nexus_ctx_opts, nexus_dev_info, nexus_dev_stats, nexus_op_stats,
           nexus_conn_info, nexus_export_dev_opts, nexus_extent, iovec,
           nexus_io_req, nexus_event_info, nexus_mirror_child,
           nexus_copy_progress, nexus_mirror_rebuild)

_P = c_void_p  # opaque handles are passed as void *

# name: (restype, argtypes)
_PROTOTYPES = {
    "nexus_last_error": (c_char_p, []),
    "nexus_version": (c_char_p, []),
    "nexus_ctx_create": (c_int, [POINTER(nexus_ctx_opts), POINTER(_P)]),
    "nexus_ctx_destroy": (None, [_P]),
    "nexus_ctx_reactor_count": (c_int, [_P]),
    "nexus_ctx_describe_drivers": (c_int, [_P, c_char_p, c_size_t]),
    "nexus_ctx_secret_set": (c_int, [_P, c_char_p, c_void_p, c_size_t]),
    "nexus_ctx_secret_set_hex": (c_int, [_P, c_char_p, c_char_p]),
    "nexus_ctx_secret_remove": (c_int, [_P, c_char_p]),
    "nexus_plugin_load": (c_int, [_P, c_char_p]),
    "nexus_dev_open": (c_int, [_P, c_char_p, POINTER(_P)]),
    "nexus_dev_close": (c_int, [_P]),
    "nexus_dev_get_info": (c_int, [_P, POINTER(nexus_dev_info)]),
    "nexus_dev_get_stats": (c_int, [_P, POINTER(nexus_dev_stats)]),
    "nexus_dev_get_op_stats": (c_int, [_P, c_int, POINTER(nexus_op_stats)]),
    "nexus_dev_get_state": (c_int, [_P]),
    "nexus_mirror_get_child": (c_int, [_P, c_uint,
                                       POINTER(nexus_mirror_child)]),
    "nexus_mirror_get_rebuild": (c_int, [_P, POINTER(nexus_mirror_rebuild)]),
    "nexus_dev_submit": (c_int, [_P, POINTER(nexus_io_req)]),
    "nexus_dev_pread": (c_ssize_t, [_P, c_void_p, c_size_t, c_uint64]),
    "nexus_dev_pwrite": (c_ssize_t, [_P, c_void_p, c_size_t, c_uint64,
                                     c_uint32]),
    "nexus_dev_preadv": (c_ssize_t, [_P, POINTER(iovec), c_int, c_uint64]),
    "nexus_dev_pwritev": (c_ssize_t, [_P, POINTER(iovec), c_int, c_uint64,
                                      c_uint32]),
    "nexus_dev_flush": (c_int, [_P]),
    "nexus_dev_trim": (c_int, [_P, c_uint64, c_uint64, c_uint32]),
    "nexus_dev_write_zeroes": (c_int, [_P, c_uint64, c_uint64, c_uint32]),
    "nexus_dev_block_status": (c_int, [_P, c_uint64, c_uint64,
                                       POINTER(nexus_extent), c_uint]),
    "nexus_dev_attach_child": (c_int, [_P, _P]),
    "nexus_dev_detach_child": (c_int, [_P, _P]),
    "nexus_dev_child_count": (c_uint, [_P]),
    "nexus_dev_child": (_P, [_P, c_uint]),
    "nexus_dev_control": (c_int, [_P, c_char_p, c_char_p]),
    "nexus_lat_bucket_floor": (c_uint64, [c_uint]),
    "nexus_lat_percentile": (c_uint64, [POINTER(c_uint64), c_double]),
    "nexus_event_kind_name": (c_char_p, [c_uint32]),
    "nexus_dev_state_name": (c_char_p, [c_int]),
    "nexus_reason_name": (c_char_p, [c_uint32]),
    "nexus_export_create": (c_int, [_P, c_char_p, POINTER(_P)]),
    "nexus_export_add_dev": (c_int, [_P, _P,
                                     POINTER(nexus_export_dev_opts)]),
    "nexus_export_remove_dev": (c_int, [_P, _P]),
    "nexus_export_dev_count": (c_int, [_P]),
    "nexus_export_destroy": (None, [_P]),
    "nexus_export_list_conns": (c_int, [_P, POINTER(nexus_conn_info), c_uint]),
    "nexus_pipeline_open": (c_int, [_P, c_char_p, POINTER(_P)]),
    "nexus_pipeline_dev": (_P, [_P]),
    "nexus_pipeline_export": (_P, [_P]),
    "nexus_pipeline_close": (None, [_P]),
    "nexus_pipeline_check": (c_int, [_P, c_char_p, c_char_p, c_size_t]),
}

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_explicit_path: Optional[str] = None


def _candidates():
    if _explicit_path:
        yield _explicit_path
        return
    env = os.environ.get("NEXUS_LIBRARY")
    if env:
        yield env
        return
    yield SONAME
    found = ctypes.util.find_library("nexus")
    if found and found != SONAME:
        yield found


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def set_library_path(path: str) -> None:
    """Remember an explicit library path; fails if already loaded
    from elsewhere."""
    global _explicit_path
    with _lock:
        if _lib is not None:
            if getattr(_lib, "_name", None) == path:
                return
            raise RuntimeError("libnexus is already loaded from %r"
                               % (_lib._name,))
        _explicit_path = path


def lib() -> ctypes.CDLL:
    """The loaded library, loading it on first use."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        errors = []
        for name in _candidates():
            try:
                cand = ctypes.CDLL(name)
            except OSError as e:
                errors.append("%s: %s" % (name, e))
                continue
            try:
                _declare(cand)
            except AttributeError as e:
                errors.append("%s: not libnexus 1.x (%s)" % (name, e))
                continue
            _lib = cand
            return _lib
        raise ImportError(
            "cannot load libnexus (set NEXUS_LIBRARY to the path of "
            "libnexus.so.0, or call nexus.load_library(path)): "
            + "; ".join(errors))


# Buffer access without copies for read-only objects (bytes, read-only
# memoryview or mmap): PyObject_GetBuffer from the running interpreter.
class Py_buffer(Structure):
    _fields_ = [
        ("buf", c_void_p),
        ("obj", ctypes.py_object),
        ("len", c_ssize_t),
        ("itemsize", c_ssize_t),
        ("readonly", c_int),
        ("ndim", c_int),
        ("format", c_char_p),
        ("shape", POINTER(c_ssize_t)),
        ("strides", POINTER(c_ssize_t)),
        ("suboffsets", POINTER(c_ssize_t)),
        ("internal", c_void_p),
    ]


PyBUF_SIMPLE = 0
PyBUF_WRITABLE = 1

try:
    _GetBuffer = ctypes.pythonapi.PyObject_GetBuffer
    _GetBuffer.argtypes = [ctypes.py_object, POINTER(Py_buffer), c_int]
    _GetBuffer.restype = c_int
    _ReleaseBuffer = ctypes.pythonapi.PyBuffer_Release
    _ReleaseBuffer.argtypes = [POINTER(Py_buffer)]
    _ReleaseBuffer.restype = None
except (AttributeError, ValueError):  # not CPython
    _GetBuffer = _ReleaseBuffer = None


def get_buffer(obj, writable: bool):
    """Export @obj's contiguous buffer; returns a Py_buffer to pass to
    release_buffer(), or None if the interpreter cannot do this."""
    if _GetBuffer is None:
        return None
    view = Py_buffer()
    # Raises BufferError/TypeError through ctypes.pythonapi on failure.
    _GetBuffer(obj, ctypes.byref(view),
               PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
    return view


def release_buffer(view) -> None:
    _ReleaseBuffer(ctypes.byref(view))
