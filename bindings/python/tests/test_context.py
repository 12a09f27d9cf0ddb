# SPDX-License-Identifier: MIT
"""Contexts, logging, pipelines, library loading, packaging."""

import ast
import logging
import os
import pathlib
import subprocess
import sys

import pytest

import nexus

HERE = pathlib.Path(__file__).resolve().parent
PKG = HERE.parent


def test_reactor_count():
    with nexus.Context(reactors=3) as ctx:
        assert ctx.reactor_count == 3


def test_log_callable():
    seen = []
    with nexus.Context(reactors=1, log=lambda lvl, msg: seen.append(
            (lvl, msg)), log_level=nexus.LogLevel.DEBUG) as ctx:
        ctx.open("mem:size=1M").close()
    assert seen and all(isinstance(l, nexus.LogLevel) for l, _ in seen)
    assert any("mem:size=1M" in m for _, m in seen)


def test_log_logger(caplog):
    logger = logging.getLogger("nexus.test")
    with caplog.at_level(logging.DEBUG, logger="nexus.test"):
        with nexus.Context(reactors=1, log=logger,
                           log_level=nexus.LogLevel.INFO) as ctx:
            ctx.open("mem:size=2M").close()
    assert any("mem:size=2M" in r.getMessage() for r in caplog.records)


def test_pipeline_without_export(ctx):
    with ctx.open_pipeline("mem:size=1M") as pl:
        assert pl.export is None
        dev = pl.device
        dev.pwrite(b"p" * 512, 0)
        dev.close()  # belongs to the pipeline: no effect
        assert dev.pread(512, 0) == b"p" * 512
    assert pl.closed and dev.closed
    with pytest.raises(ValueError):
        pl.device


def test_module_open():
    with nexus.open("mem:size=1M", reactors=1) as dev:
        dev.pwrite(b"o" * 512, 0)
        assert dev.pread(512, 0) == b"o" * 512
        ctx = dev.context
    assert ctx.closed


def test_describe_drivers(ctx):
    text = ctx.describe_drivers()
    assert "mem" in text and "file" in text


def test_load_library_explicit_path():
    # A fresh interpreter, the library given only by explicit path.
    lib = os.environ.get("NEXUS_LIBRARY")
    if not lib or not os.path.isabs(lib):
        pytest.skip("NEXUS_LIBRARY is not an absolute path")
    env = dict(os.environ)
    del env["NEXUS_LIBRARY"]
    env["LD_LIBRARY_PATH"] = ""
    code = ("import nexus, sys; nexus.load_library(sys.argv[1]); "
            "print(nexus.version())")
    out = subprocess.run([sys.executable, "-c", code, lib], env=env,
                         stdout=subprocess.PIPE, timeout=60, check=True)
    assert out.stdout.strip() == nexus.version().encode()


def test_missing_library_message():
    env = dict(os.environ, NEXUS_LIBRARY="/nonexistent/libnexus.so.0")
    code = "import nexus; nexus.version()"
    cp = subprocess.run([sys.executable, "-c", code], env=env,
                        stderr=subprocess.PIPE, timeout=60)
    assert cp.returncode != 0
    assert b"NEXUS_LIBRARY" in cp.stderr


def test_sources_parse_as_python38():
    for f in list((PKG / "nexus").glob("*.py")) + \
            list((PKG / "examples").glob("*.py")) + \
            [PKG / "_backend" / "nexus_backend.py"]:
        ast.parse(f.read_text(), str(f), feature_version=(3, 8))


def test_pip_install_offline(tmp_path):
    """`pip install ./bindings/python` works without network access."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode:
        pytest.skip("pip is not installed")
    target = tmp_path / "site"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_CACHE_DIR="1")
    env.pop("PYTHONPATH", None)
    # Build from a copy: the source tree may be read-only (distcheck).
    import shutil
    src = tmp_path / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
        "__pycache__", "tests", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "--target", str(target), str(src)], env=env,
                   timeout=300, check=True)
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c",
                          "import nexus; print(nexus.__file__); "
                          "print(nexus.version())"],
                         env=env, stdout=subprocess.PIPE, timeout=60,
                         check=True).stdout.decode().split()
    assert out[0].startswith(str(target))
    assert out[1] == nexus.version()


def test_gc_in_log_callback_on_reactor_thread():
    """A cyclic-garbage collection that runs inside a log callback, on a
    reactor thread, must not close handles from there (the library would
    refuse); the context closes them later."""
    import gc
    import threading
    where = []

    def log(level, msg):
        where.append(isinstance(threading.current_thread(),
                                threading._DummyThread))
        gc.collect()

    ctx = nexus.Context(reactors=1, log=log, log_level=nexus.LogLevel.DEBUG)
    pl = ctx.open_pipeline("mem:size=1M")
    pl.device.pwrite(b"z" * 512, 0)
    del pl          # cyclic garbage now (pipeline <-> its device)
    d = ctx.open("mem:size=1M")
    d.pread(512, 0)
    ctx.close()     # frees whatever the collection left
    assert d.closed
