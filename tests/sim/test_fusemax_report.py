"""The FuseMax report generator writes its files with the documented record keys."""

from __future__ import annotations

import json

from sim import fusemax_report


def test_report_subset(tmp_path):
    assert fusemax_report.main(["--out", str(tmp_path), "--models", "BERT", "--lengths", "1024,4096"]) == 0
    recs = json.loads((tmp_path / "results.json").read_text())
    assert len(recs) == 2 * 3
    for r in recs:
        assert {"model", "seq_len", "mapping", "latency_s", "energy_pj", "util_2d", "util_1d"} <= set(r)
        assert r["mapping"] in ("unfused", "flat", "fusemax")
        assert abs(r["latency_s"] / r["closed_form_latency_s"] - 1) < 0.02
    fm = next(r for r in recs if r["mapping"] == "fusemax" and r["seq_len"] == 1024)
    assert abs(fm["closed_form_latency_s"] - 12288 * 154 / 940e6) < 1e-12
    assert abs(fm["util_2d"] - 0.8896) < 1e-3
    md = (tmp_path / "README.md").read_text()
    assert "| BERT | 1K |" in md and "Where and why we differ" in md
    for png in ("utilization.png", "speedup.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_committed_report_is_current(tmp_path):
    """Regenerate all 72 points and compare every number with reports/fusemax/results.json."""
    from pathlib import Path

    from einarray.studies import compare_numbers

    assert fusemax_report.main(["--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / "results.json").read_text())
    committed = json.loads((Path(__file__).parents[2] / "reports" / "fusemax" / "results.json").read_text())
    strip = lambda rs: [{k: v for k, v in r.items() if k != "sim_wall_s"} for r in rs]  # noqa: E731
    diffs = compare_numbers(strip(fresh), strip(committed))
    assert not diffs, f"reports/fusemax is stale; run python -m sim.fusemax_report: {diffs[:5]}"
