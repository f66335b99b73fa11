"""einarray.compare: per-inference rows like ``einarray run``, the plot in the table's units,
and the self-contained HTML report beside compare.md and compare.json."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

from einarray.compare import COLUMNS, compare, fig_compare, table
from einarray.flow import load_run, run

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def batch2(tmp_path_factory) -> Path:
    """The tiny ViT at batch 2 (energy per batch is twice the energy per inference)."""
    d = yaml.safe_load((DATA / "vit-tiny-small.yaml").read_text())
    d["workload"]["batch"] = 2
    p = tmp_path_factory.mktemp("cfg") / "vit-tiny-batch2.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.fixture(scope="module")
def compared(batch2, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "c"
    rows = compare([DATA / "with-include.yaml", batch2], out, progress=False)
    return rows, out


def test_rows_are_per_inference_like_run(compared, batch2):
    rows, _ = compared
    res = run(load_run(batch2), progress=False)
    r = rows[1]
    assert r["batch"] == 2
    assert r["energy_per_inference_pj"] == pytest.approx(res["energy_pj"]["total"] / 2, rel=1e-12)
    assert r["energy_per_inference_pj"] == res["summary"]["energy_per_inference_pj"]
    assert r["throughput_inf_per_s"] == pytest.approx(2 / res["latency_s"], rel=1e-12)
    assert r["dram_bytes_per_inference"] == pytest.approx(res["summary"]["dram_bytes"] / 2)
    assert "energy_pj" not in r  # no per-batch figure beside the per-inference ones


def test_markdown_json_and_html(compared):
    rows, out = compared
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "compare.html", "compare.json", "compare.md", "compare.png"]
    data = json.loads((out / "compare.json").read_text())
    assert data["rows"][1]["energy_per_inference_pj"] == rows[1]["energy_per_inference_pj"]
    md = (out / "compare.md").read_text()
    head, cells = table(rows, None)
    assert "| " + " | ".join(head) + " |" in md
    assert "throughput (inferences/s)" in head and "energy per inference (mJ)" in head
    for c in cells:
        assert "| " + " | ".join(c) + " |" in md
    # the energy cell is the per-inference energy in mJ
    assert cells[1][head.index("energy per inference (mJ)")] == f"{rows[1]['energy_per_inference_pj'] * 1e-9:.4g}"
    page = (out / "compare.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    for h in head:
        assert f"<th>{h}</th>" in page
    for c in cells:
        assert "".join(f"<td>{x}</td>" for x in c) in page
    # self-contained: the one image is inlined, byte for byte the PNG beside it
    srcs = re.findall(r'src="([^"]+)"', page)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == (out / "compare.png").read_bytes()
    assert "compare.png](compare.png)" in md


@pytest.mark.parametrize("sweep", [None, ("M", [16, 64])])
def test_plot_uses_the_tables_units(compared, sweep, tmp_path):
    rows = compared[0] if sweep is None else compare([DATA / "with-include.yaml"], tmp_path / "s", sweep=sweep,
                                                      progress=False)
    fig = fig_compare(rows, sweep)
    head, cells = table(rows, sweep)
    for ax, (key, label, scale) in zip(fig.axes, COLUMNS[:3]):
        assert ax.get_ylabel() == label
        col = head.index(label)
        if sweep:
            ys = [y for line in ax.get_lines() for y in line.get_ydata()]
        else:
            ys = [p.get_height() for p in ax.patches]
        assert [f"{y:.4g}" for y in ys] == [c[col] for c in cells]
        assert ys == pytest.approx([r[key] * scale for r in rows])
        # every bar or point carries its value
        assert [t.get_text() for t in ax.texts] == [f"{r[key] * scale:.3g}" for r in rows]
    assert fig.axes[3].get_ylabel() == "utilization (all cycles)"
