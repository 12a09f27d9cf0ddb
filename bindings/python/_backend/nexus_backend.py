# SPDX-License-Identifier: MIT
"""A minimal PEP 517 / PEP 660 build backend for the pure-Python `nexus`
package, on the standard library only, so that ``pip install`` works on a
machine without network access or setuptools.

It reads the few metadata keys it needs from pyproject.toml's [project]
table and packs the ``nexus`` directory into a ``py3-none-any`` wheel.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE = "nexus"


def _project():
    """name, version, description, requires-python from pyproject.toml."""
    with open(os.path.join(_HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib  # Python >= 3.11
        return tomllib.loads(text)["project"]
    except ImportError:
        pass
    # Older Pythons: the [project] keys used here are simple strings.
    section = text.split("[project]", 1)[1].split("\n[", 1)[0]
    out = {}
    for key in ("name", "version", "description", "requires-python"):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), section, re.M)
        if m:
            out[key] = m.group(1)
    return out


def _names():
    p = _project()
    return p, p["name"], p["version"]


def _metadata():
    p, name, version = _names()
    lines = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version]
    if p.get("description"):
        lines.append("Summary: " + p["description"])
    if p.get("requires-python"):
        lines.append("Requires-Python: " + p["requires-python"])
    lines.append("License: MIT")
    readme = os.path.join(_HERE, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = "\n" + f.read()
    return ("\n".join(lines) + "\n" + body).encode("utf-8")


_WHEEL = (b"Wheel-Version: 1.0\nGenerator: nexus_backend\n"
          b"Root-Is-Purelib: true\nTag: py3-none-any\n")


def _package_files():
    root = os.path.join(_HERE, _PACKAGE)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".py", ".typed")):
                full = os.path.join(dirpath, fn)
                yield full, os.path.relpath(full, _HERE).replace(os.sep, "/")


def _write_wheel(wheel_directory, files):
    """files: list of (archive name, bytes).  Returns the wheel's name."""
    _, name, version = _names()
    dist = re.sub(r"[-_.]+", "_", name)
    distinfo = "%s-%s.dist-info" % (dist, version)
    files = list(files) + [(distinfo + "/METADATA", _metadata()),
                           (distinfo + "/WHEEL", _WHEEL)]
    record = io.StringIO()
    for arc, data in files:
        digest = base64.urlsafe_b64encode(
            hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write("%s,sha256=%s,%d\n" % (arc, digest, len(data)))
    record.write(distinfo + "/RECORD,,\n")
    files.append((distinfo + "/RECORD", record.getvalue().encode()))
    wheel_name = "%s-%s-py3-none-any.whl" % (dist, version)
    epoch = (1980, 1, 1, 0, 0, 0)  # reproducible
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w",
                         zipfile.ZIP_DEFLATED) as zf:
        for arc, data in files:
            zi = zipfile.ZipInfo(arc, epoch)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return wheel_name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    files = []
    for full, arc in _package_files():
        with open(full, "rb") as f:
            files.append((arc, f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    _, name, _ = _names()
    pth = (_HERE + "\n").encode()
    return _write_wheel(wheel_directory,
                        [("__editable__.%s.pth" % name, pth)])


def build_sdist(sdist_directory, config_settings=None):
    _, name, version = _names()
    base = "%s-%s" % (name, version)
    sdist = base + ".tar.gz"
    members = ["pyproject.toml", "README.md", "_backend/nexus_backend.py"]
    members += [arc for _, arc in _package_files()]
    with tarfile.open(os.path.join(sdist_directory, sdist), "w:gz",
                      format=tarfile.PAX_FORMAT) as tf:
        for arc in members:
            full = os.path.join(_HERE, arc)
            if not os.path.exists(full):
                continue
            ti = tf.gettarinfo(full, base + "/" + arc)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = int(time.time())
            with open(full, "rb") as f:
                tf.addfile(ti, f)
        pkg_info = _metadata()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        ti.mtime = int(time.time())
        tf.addfile(ti, io.BytesIO(pkg_info))
    return sdist
