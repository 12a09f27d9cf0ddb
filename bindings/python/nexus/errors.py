# SPDX-License-Identifier: MIT
"""Exceptions raised by the libnexus bindings.

Every failure of a libnexus call raises :class:`NexusError`, a subclass of
:class:`OSError` carrying the (positive) ``errno`` and, as ``strerror``,
the library's own message from ``nexus_last_error()``.  The exception is
also an instance of the built-in ``OSError`` subclass for its errno, so
both styles work::

    try:
        ctx.open("file:/nonexistent")
    except FileNotFoundError as e:      # or: except nexus.NexusError
        print(e.errno, e.strerror)
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Type

__all__ = ["NexusError", "error_for"]


class NexusError(OSError):
    """A libnexus call failed.

    Attributes:
        errno: the positive errno value (e.g. ``errno.ENOENT``).
        strerror: the library's message naming the problem, or
            ``os.strerror(errno)`` if the library gave none.
        function: the C function that failed, e.g. ``"nexus_dev_open"``.
    """

    function: str = ""

    def __str__(self) -> str:
        return "[Errno %s] %s" % (self.errno, self.strerror)


# errno -> built-in OSError subclass, as OSError(errno, msg) maps them.
def _builtin_class(err: int) -> Type[OSError]:
    return type(OSError(err, ""))


_classes: Dict[int, Type[NexusError]] = {}
_classes_lock = threading.Lock()


def _class_for(err: int) -> Type[NexusError]:
    cls = _classes.get(err)
    if cls is not None:
        return cls
    base = _builtin_class(err)
    with _classes_lock:
        cls = _classes.get(err)
        if cls is None:
            if base is OSError:
                cls = NexusError
            else:
                # e.g. nexus.errors.FileNotFoundError(NexusError,
                #                                     FileNotFoundError)
                cls = type(base.__name__, (NexusError, base),
                           {"__module__": __name__,
                            "__doc__": "NexusError that is also a %s."
                            % base.__name__})
            _classes[err] = cls
    return cls


def error_for(rc: int, message: str = "", function: str = "") -> NexusError:
    """Build the exception for a negative errno @rc returned by libnexus.

    Args:
        rc: the return value (negative errno; its absolute value is used).
        message: the library's message (``nexus_last_error()``).
        function: name of the failed C function, kept as ``.function``.
    """
    err = -rc if rc < 0 else rc
    if not message:
        message = os.strerror(err) if err else "unknown error"
    exc = _class_for(err)(err, message)
    exc.function = function
    return exc

