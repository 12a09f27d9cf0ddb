# SPDX-License-Identifier: MIT
"""Python bindings for libnexus, the composable storage data path.

libnexus composes storage like a Unix pipeline::

    file:/var/lib/vol.img | crypt:key-file=k | nbd:listen=127.0.0.1:10809

Quick start::

    import nexus

    with nexus.Context() as ctx:
        with ctx.open("mem:size=64M") as dev:
            dev.pwrite(b"hello".ljust(4096, b"\\0"), 0)
            print(dev.pread(4096, 0)[:5], dev.op_stats(nexus.Op.WRITE).ops)

        with ctx.open_pipeline("file:/tmp/a.img | nbd:listen=127.0.0.1:10809"):
            ...  # served over NBD until the block ends

    # Events: a callback on the context's event thread, or a queue.
    with nexus.Context(events=True) as ctx:
        ...
        for ev in ctx.events(timeout=1):
            print(ev)               # "#3 conn-opened nbd:... peer 127.0.0.1:5"

The shared library is found through :func:`load_library`, the
``NEXUS_LIBRARY`` environment variable, or the system loader
(``libnexus.so.0``).  Failures raise :class:`NexusError`, which is an
:class:`OSError` (and e.g. a :class:`FileNotFoundError` for ENOENT) whose
``strerror`` is the library's message.
"""

from ._core import (ConnInfo, Context, Device, DeviceFlag, DeviceInfo,
                    DeviceStats, DevState, Event, EventKind, Export, Extent,
                    LogLevel, MirrorChild, MirrorRebuild, Op, OpStats,
                    Pipeline, Reason, load_library, open, version)
from .errors import NexusError

__version__ = "1.0.0"

__all__ = [
    "Context", "Device", "Pipeline", "Export", "NexusError",
    "DeviceInfo", "DeviceStats", "OpStats", "Extent", "ConnInfo", "Event",
    "MirrorChild", "MirrorRebuild",
    "Op", "DeviceFlag", "LogLevel", "EventKind", "DevState", "Reason",
    "version", "load_library", "open",
]
