# SPDX-License-Identifier: MIT
"""Shared fixtures for the libnexus Python binding tests.

Run against the freshly built library with, from the build directory:

    NEXUS_LIBRARY=$PWD/lib/.libs/libnexus.so.0 \\
    PYTHONPATH=$srcdir/bindings/python /usr/bin/python3 -m pytest \\
        $srcdir/bindings/python/tests
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

import nexus

TIMEOUT = 60


@pytest.fixture
def ctx():
    with nexus.Context(reactors=2) as c:
        yield c


def have_driver(ctx_, name):
    """True if the context knows driver @name (built in or a plugin)."""
    # describe_drivers() starts each driver with a "KIND NAME" line.
    return any(line.split()[1:2] == [name]
               for line in ctx_.describe_drivers().splitlines()
               if line and not line[0].isspace())


def need_tool(tool):
    path = shutil.which(tool)
    if not path:
        pytest.skip("%s is not installed" % tool)
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.closing(socket.socket()) as s:
            s.settimeout(0.5)
            try:
                s.connect(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


def tool_env():
    """The environment for outside tools: without the ASan runtime that
    run-tests.sh preloads for a --enable-sanitizers library (it is for
    this interpreter, not for qemu-img or nbdsh)."""
    env = dict(os.environ)
    for var in ("LD_PRELOAD", "ASAN_OPTIONS"):
        env.pop(var, None)
    return env


def run(*argv, input=None):
    """Run an outside tool with a timeout; return its stdout (bytes)."""
    cp = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=TIMEOUT,
                        env=tool_env())
    if cp.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (
            " ".join(map(str, argv)), cp.returncode,
            cp.stderr.decode(errors="replace")))
    return cp.stdout


def nbdsh_argv():
    """argv that runs nbdsh (libnbd's Python shell).  nbdsh runs
    ``python3 -m nbd`` with the first python3 on PATH, which may lack the
    nbd module (a pyenv one): prefer a python3 that has it."""
    need_tool("nbdsh")
    for py in (sys.executable, "/usr/bin/python3", "python3"):
        if shutil.which(py) and subprocess.run(
                [py, "-c", "import nbd"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=tool_env()).returncode == 0:
            return [py, "-m", "nbd"]
    pytest.skip("no python3 with the nbd module (python3-libnbd)")


def nbdsh(uri, script):
    """Run a Python snippet in nbdsh (handle ``h`` connected to @uri);
    the snippet writes its result to sys.stdout.buffer."""
    return run(*nbdsh_argv(), "-u", uri, "-c", script)


@pytest.fixture
def python():
    return sys.executable


def built_plugin(name):
    """Path of a test plugin built by `make check` (tests/graph/.libs:
    nexus-tee.so, a transform whose children can be attached and
    detached), or skip."""
    d = os.environ.get("NEXUS_TEST_PLUGIN_DIR")
    if not d and os.environ.get("NEXUS_LIBRARY"):
        d = os.path.join(os.path.dirname(os.environ["NEXUS_LIBRARY"]),
                         "..", "..", "tests", "graph", ".libs")
    path = os.path.join(d or ".", name)
    if not os.path.exists(path):
        pytest.skip("the test plugin %s is not built (make check builds "
                    "tests/graph/%s)" % (name, name.replace(".so", ".la")))
    return os.path.abspath(path)
