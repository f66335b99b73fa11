"""What the studies share: where they live, their stored mappings, and comparing results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parents[2] / "reports"
MAPPINGS_FILE = "mappings.yaml"


def stored_mappings(name: str) -> dict[str, Any] | None:
    """The mappings a study's search found, stored beside its report (None if there are none)."""
    import yaml

    p = REPORTS / name / MAPPINGS_FILE
    if not p.is_file():
        return None
    return yaml.safe_load(p.read_text())


def compare_numbers(a: Any, b: Any, rel: float = 1e-9, path: str = "") -> list[str]:
    """Differences between two JSON trees (numbers within ``rel``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = [f"{path}.{k}: missing" for k in set(a) ^ set(b)]
        for k in sorted(set(a) & set(b)):
            diffs += compare_numbers(a[k], b[k], rel, f"{path}.{k}")
        return diffs
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} entries vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare_numbers(x, y, rel, f"{path}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not math.isclose(a, b, rel_tol=rel, abs_tol=1e-30):
            return [f"{path}: {a} != {b}"]
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
