"""The suite's layout: test modules have unique basenames (pytest's default import mode needs it;
a duplicate makes collection fail for the whole suite)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
