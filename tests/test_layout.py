"""The suite's layout: test modules have unique basenames (pytest's default import mode needs it;
a duplicate makes collection fail for the whole suite); and no module names something it never
defines or imports (pyflakes), which a test that does not run that line would miss."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []


def test_no_module_uses_an_undefined_name():
    import subprocess
    import sys

    root = TESTS.parent
    files = [str(p) for d in ("einsum", "mapping", "sim", "hw", "models", "einarray", "benchmarks", "tests")
             for p in sorted((root / d).rglob("*.py"))]
    out = subprocess.run([sys.executable, "-m", "pyflakes", *files], capture_output=True, text=True).stdout
    assert [ln for ln in out.splitlines() if "undefined name" in ln] == []
