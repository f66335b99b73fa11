"""einarray.report: the roofline and utilization plots, and the rendering of a run's result."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from einarray.flow import load_run, load_run_data, run
from einarray.report import fig_roofline, fig_utilization, roofline_points, unit_colors

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def _separate_channels() -> dict:
    """The 16x16 systolic arch with DRAM reads and writes on separate channels."""
    arch = yaml.safe_load((ROOT / "mapping/arch/systolic-16x16.yaml").read_text())["arch"]
    arch["memory"][0]["shared_rw"] = False
    return arch


CONFIGS = {
    "vit-base-fusemax": lambda: load_run(ROOT / "examples/vit-base-fusemax.yaml"),
    "gemm-16x16": lambda: load_run(DATA / "with-include.yaml"),
    "vit-tiny": lambda: load_run(DATA / "vit-tiny-small.yaml"),
    # a unit that chains element-wise ops (several actions per lane and cycle)
    "softmax-3pass-baseline": lambda: load_run_data(
        {"workload": {"cascade": "softmax-3pass", "ranks": {"M": 64, "P": 256, "E": 64, "F": 64}},
         "arch": "fusemax-baseline"}, "softmax-3pass-baseline", base_dir=ROOT),
    "gemm-separate-channels": lambda: load_run_data(
        {"workload": {"cascade": "gemm", "ranks": {"M": 48, "N": 40, "K": 64}}, "arch": _separate_channels()},
        "gemm-separate", base_dir=ROOT),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def result(request):
    return run(CONFIGS[request.param](), progress=False)


def test_group_dram_bytes_are_the_simulators(result):
    """Per-group DRAM bytes add up, per layer, to the DRAM level's bytes."""
    dram = result["arch"]["levels"][0]
    for name, r in result["layer_results"].items():
        groups = [g for g in result["groups"] if g["layer"] == name]
        assert sum(g["dram_bytes"] for g in groups) <= r["traffic"][dram]["bytes"]
        assert sum(g["dram_bytes"] for g in r["groups"].values()) == r["traffic"][dram]["bytes"]
        for g in groups:
            sg = r["groups"][g["group"]]
            assert g["dram_bytes"] == (sg["dram_reads"] + sg["dram_writes"]) * 2  # 16-bit words


def test_no_roofline_point_above_its_roof(result):
    pts = roofline_points(result)
    assert pts
    bw = result["arch"]["dram_bytes_per_s"]
    for p in pts:
        peak = result["arch"]["peak_ops_per_s"][p["unit"]]
        assert p["ops_per_s"] <= peak * (1 + 1e-9), p
        if p["intensity"] is not None:
            assert p["ops_per_s"] <= p["intensity"] * bw * (1 + 1e-9), p
    # the same on what the figure draws: each unit's points under that unit's roof line
    fig = fig_roofline(result)
    ax = fig.axes[0]
    roofs = {l.get_gid()[5:]: l for l in ax.get_lines() if (l.get_gid() or "").startswith("roof:")}
    assert set(roofs) == set(result["arch"]["units"])
    drawn = 0
    for c in ax.collections:
        gid = c.get_gid() or ""
        if not gid.startswith("points:"):
            continue
        line = roofs[gid[7:]]
        lx, ly = np.log(line.get_xdata()), np.log(line.get_ydata())
        for x, y in c.get_offsets():
            assert lx[0] <= np.log(x) <= lx[-1]
            assert np.log(y) <= np.interp(np.log(x), lx, ly) + 1e-6, (gid, x, y)
            drawn += 1
    assert drawn == len(pts)
    labels = {t.get_text() for t in ax.texts}
    assert {p["label"] for p in pts} <= {s for t in labels for s in t.split(", ")}


def test_roofs_are_per_unit_closed_forms():
    res = run(CONFIGS["vit-base-fusemax"](), progress=False)
    clock = 940e6
    assert res["arch"]["peak_ops_per_s"] == {"array2d": pytest.approx(256 * 256 * clock),
                                             "array1d": pytest.approx(256 * clock)}
    assert res["arch"]["dram_bytes_per_s"] == pytest.approx(429496729600)  # one shared channel
    sep = run(CONFIGS["gemm-separate-channels"](), progress=False)
    assert sep["arch"]["dram_bytes_per_s"] == pytest.approx((16 + 16) * 2 * 1e9)


def test_utilization_legend_has_one_colour_per_unit(result):
    fig = fig_utilization(result)
    ax = fig.axes[0]
    handles = ax.get_legend().legend_handles
    units = list(result["arch"]["units"])
    assert [h.get_label() for h in handles] == units
    colours = [tuple(h.get_facecolor()) for h in handles]
    assert len(set(colours)) == len(units)
    # each legend colour is the colour of that unit's bars
    from matplotlib.colors import to_rgba

    expect = unit_colors(units)
    assert colours == [to_rgba(expect[u]) for u in units]
    es = sorted(result["einsums"], key=lambda e: -e["cycles"])[:25][::-1]
    bars = ax.patches
    assert len(bars) == len(es)
    for bar, e in zip(bars, es):
        assert tuple(bar.get_facecolor()) == to_rgba(expect[e["unit"]])


def test_unit_colors_are_distinct():
    cols = unit_colors([f"u{i}" for i in range(10)])
    assert len(set(cols.values())) == 10
