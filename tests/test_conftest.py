"""tests/conftest.py: under CI=true a skipped RTL test is a failure; elsewhere skips stay."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

SKIPS = '''
import pytest

def test_skip_call():
    pytest.skip("simulator missing")

@pytest.mark.skipif(True, reason="marked")
def test_skipif_mark():
    pass

def test_importorskip():
    pytest.importorskip("no_such_module_anywhere")

@pytest.mark.xfail(reason="known", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
'''


def _run(tmp: Path, ci: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                          "-p", "no:xdist", "-o", "addopts=", str(tmp)],
                         cwd=tmp, env=env, capture_output=True, text=True)
    return res.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(CONFTEST, root / "conftest.py")
    for d in ("hw", "einarray", "sim"):
        (root / d).mkdir()
    (root / "hw" / "test_rtl_skips.py").write_text(SKIPS)
    (root / "einarray" / "test_sim_rtl.py").write_text(SKIPS)
    (root / "sim" / "test_other_skips.py").write_text(SKIPS)
    return root


@pytest.mark.parametrize("ci", ["true"])
def test_rtl_skips_fail_in_ci(tree, ci):
    out = _run(tree, ci)
    for f in ("hw/test_rtl_skips.py", "einarray/test_sim_rtl.py"):
        for t in ("test_skip_call", "test_skipif_mark", "test_importorskip"):
            # a skip in the call is a failure, one in setup (skipif) an error
            assert f"FAILED {f}::{t} - " in out or f"ERROR {f}::{t} - " in out, out
        assert f"XFAIL {f}::test_xfail" in out and f"PASSED {f}::test_passes" in out
    assert "must run in CI" in out and "(simulator missing)" in out
    assert out.count("SKIPPED") == 3  # sim/: skips stay skips
    assert "4 failed, 3 passed, 3 skipped, 3 xfailed, 2 errors" in out


@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_stay_skips_outside_ci(tree, ci):
    out = _run(tree, ci)
    assert "FAILED" not in out and "3 passed, 9 skipped, 3 xfailed" in out, out
