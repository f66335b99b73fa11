"""The suite's layout: test modules have unique basenames (pytest's default import mode needs it;
a duplicate makes collection fail for the whole suite); no module names something it never
defines or imports (pyflakes), which a test that does not run that line would miss; and the
mapping search imports no simulator (its callers pass it the evaluator)."""

from __future__ import annotations

import ast
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


def test_the_mapping_search_imports_no_simulator():
    """No module of einarray/search/ imports sim (at any depth, lazily included) or another module
    of the app package (which may): the simulator's calls come in as an Evaluator
    (einarray/search_eval.py), as mapping/nest_search.py takes its evaluate."""
    pkg = TESTS.parent / "einarray" / "search"
    bad = []
    for p in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." * node.level + (node.module or "")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "sim" or (top == "einarray" and not name.startswith("einarray.search")) \
                        or name.startswith(".."):
                    bad.append(f"{p.relative_to(TESTS.parent)}:{node.lineno}: {name}")
    assert list(pkg.glob("*.py"))
    assert bad == []
