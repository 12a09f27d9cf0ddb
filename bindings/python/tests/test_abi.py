# SPDX-License-Identifier: MIT
"""The ctypes declarations match the C headers: every struct's size and
every field's offset and size, as the C compiler lays them out, and the
constants this binding copies from nexus.h."""

import ctypes
import os
import pathlib
import re
import shutil
import subprocess

import pytest

import nexus
from nexus import _capi

HERE = pathlib.Path(__file__).resolve().parent
TOP = HERE.parent.parent.parent
HEADER = TOP / "include" / "nexus" / "nexus.h"


def c_layout(tmp_path):
    """{struct: (sizeof, {field: (offsetof, sizeof)})} from the C
    compiler, for every struct of _capi.STRUCTS."""
    cc = os.environ.get("CC", "cc").split()[0]
    if not shutil.which(cc):
        cc = shutil.which("gcc") or shutil.which("cc")
    if not cc or not HEADER.exists():
        pytest.skip("no C compiler or no nexus.h next to the binding")
    lines = ["#include <stdio.h>", "#include <stddef.h>",
             "#include <sys/uio.h>", "#include <nexus/nexus.h>",
             "int main(void) {"]
    for st in _capi.STRUCTS:
        cname = "struct " + st.__name__
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (st.__name__,
                                                             cname))
        for fname, _ in st._fields_:
            lines.append('printf("%s.%s %%zu %%zu\\n", offsetof(%s, %s), '
                         'sizeof(((%s *)0)->%s));'
                         % (st.__name__, fname, cname, fname, cname, fname))
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    cp = subprocess.run([cc, "-std=gnu11", "-I", str(TOP / "include"),
                         "-o", str(exe), str(src)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert cp.returncode == 0, cp.stdout.decode(errors="replace")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    out = subprocess.run([str(exe)], stdout=subprocess.PIPE, env=env,
                         check=True).stdout.decode()
    layout = {}
    for line in out.splitlines():
        name, *nums = line.split()
        if "." in name:
            s, f = name.split(".")
            layout[s][1][f] = tuple(int(n) for n in nums)
        else:
            layout[name] = (int(nums[0]), {})
    return layout


def test_struct_layouts_match_the_c_compiler(tmp_path):
    layout = c_layout(tmp_path)
    for st in _capi.STRUCTS:
        size, fields = layout[st.__name__]
        assert ctypes.sizeof(st) == size, st.__name__
        for fname, _ in st._fields_:
            desc = getattr(st, fname)
            assert (desc.offset, desc.size) == fields[fname], \
                "%s.%s" % (st.__name__, fname)


def test_every_struct_of_the_header_is_checked():
    # A struct added to nexus.h that the binding passes by pointer must
    # be declared (and so checked) here; list the ones it does not need.
    text = HEADER.read_text()
    defined = set(re.findall(r"^struct (nexus_\w+) \{", text, re.M))
    # The copy engine's jobs (nexus_copy_*) and application state
    # stores (nexus_ctx_store_add) have no Python face yet.
    unused = {"nexus_copy_range", "nexus_copy_opts", "nexus_state_store"}
    declared = {st.__name__ for st in _capi.STRUCTS}
    assert defined - unused <= declared, sorted(defined - declared)


def test_constants_match_the_header():
    text = HEADER.read_text()

    def define(name):
        m = re.search(r"^#define %s\s+(\S+)" % name, text, re.M)
        assert m, name
        return int(m.group(1), 0)
    assert _capi.LAT_BUCKETS == define("NEXUS_LAT_BUCKETS")
    assert _capi.ID_MAX == define("NEXUS_ID_MAX")

    def enum(prefix):
        return {m.group(1): int(m.group(2)) for m in re.finditer(
            r"^\s*%s(\w+)\s*=\s*(\d+)," % prefix, text, re.M)}
    assert enum("NEXUS_OP_") == {o.name: o.value for o in nexus.Op}
    assert enum("NEXUS_EVENT_") == {k.name: k.value for k in nexus.EventKind}
    assert enum("NEXUS_DEV_STATE_") == {s.name: s.value
                                        for s in nexus.DevState}
    assert enum("NEXUS_REASON_") == {r.name: r.value for r in nexus.Reason}


def test_names_from_the_library():
    assert nexus.EventKind.CONN_OPENED.label == "conn-opened"
    assert nexus.EventKind.EXPORT_STARTED.label == "export-started"
    assert nexus.DevState.DEGRADED.label == "degraded"
    assert nexus.Reason.PEER_CLOSED.label == "peer-closed"
