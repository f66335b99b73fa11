"""A compiler wrapper that caches the Verilator runtime objects shared by every build.

Verilator's makefiles run each C++ compile as ``$(OBJCACHE) $(CXX) ...``; the cocotb
runner (``tests/hw/cocotb_runner.py``) sets ``OBJCACHE`` to this script, so every
Verilator build of the test suite compiles ``verilated.cpp``, ``verilated_vpi.cpp``,
``verilated_dpi.cpp`` and ``verilated_threads.cpp`` (about 15 s of the ~20 s a small design
takes to build) once, not once per design.

Only compiles of a source file outside the build directory whose dependencies (the
compiler's ``-MMD`` file) all lie outside it are cached: their result cannot depend on
the design. The key is the compiler (its resolved path, size and modification time), its
command line (the object's name, not its directory) and the source's SHA-256; a hit is
reused only while every dependency still has the size and modification time recorded when
it was compiled. Anything else -- design files,
cocotb's ``verilator.cpp`` (which includes ``Vtop.h``) -- is compiled as usual.

Usage: ``OBJCACHE_DIR=<dir> python objcache.py <compiler> <args...>`` (run from the build
directory, as make does).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _option(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == flag:
            return argv[i + 1]
    return None


def _deps(dfile: Path) -> list[str]:
    """Prerequisites listed in a make dependency file written by ``-MMD``."""
    text = dfile.read_text().replace("\\\n", " ")
    first = text.split("\n", 1)[0]
    _target, _, prereqs = first.partition(":")
    return prereqs.split()


def _cacheable(src: Path, deps: list[str], cwd: Path) -> bool:
    if cwd in src.resolve().parents:
        return False
    return all(Path(d).is_absolute() and cwd not in Path(d).resolve().parents for d in deps)


def _stat(paths: list[str]) -> dict[str, list[int]]:
    out = {}
    for p in paths:
        st = os.stat(p)
        out[p] = [st.st_size, st.st_mtime_ns]
    return out


def _store(entry: Path, obj: Path, dfile: Path, deps: list[str]) -> None:
    """Write the cache entry atomically (concurrent builds may store the same key)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    shutil.copy2(obj, tmp / "obj.o")
    shutil.copy2(dfile, tmp / "obj.d")
    (tmp / "deps.json").write_text(json.dumps(_stat(deps)))
    try:
        os.replace(tmp, entry)
    except OSError:  # another build stored it first (non-empty target directory)
        shutil.rmtree(tmp, ignore_errors=True)


def _hit(entry: Path) -> bool:
    try:
        recorded = json.loads((entry / "deps.json").read_text())
        return all(_stat([p])[p] == v for p, v in recorded.items())
    except (OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    cache = os.environ.get("OBJCACHE_DIR")
    obj_name = _option(argv, "-o")
    srcs = [a for a in argv if a.endswith((".cpp", ".cc", ".c"))]
    if not cache or obj_name is None or len(srcs) != 1 or "-c" not in argv:
        return subprocess.call(argv)
    cwd = Path.cwd().resolve()
    src = Path(srcs[0])
    obj = Path(obj_name)
    dfile = obj.with_suffix(".d")
    h = hashlib.sha256()
    compiler = os.path.realpath(shutil.which(argv[0]) or argv[0])
    st = os.stat(compiler)  # another compiler build at the same path: another key
    h.update(json.dumps([compiler, st.st_size, st.st_mtime_ns, argv[1:], obj.name]).encode())
    h.update(src.read_bytes())
    entry = Path(cache) / h.hexdigest()[:32]
    if _hit(entry):
        shutil.copyfile(entry / "obj.o", obj)
        shutil.copyfile(entry / "obj.d", dfile)
        return 0
    rc = subprocess.call(argv)
    if rc == 0 and dfile.exists():
        deps = _deps(dfile)
        if _cacheable(src, deps, cwd):
            _store(entry, obj, dfile, deps)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
