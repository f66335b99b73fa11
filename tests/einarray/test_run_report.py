"""einarray.report: the roofline and utilization plots, and the rendering of a run's result."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from einarray.flow import load_run, load_run_data, run
from einarray.report import (causes_of, fig_energy_levels, fig_latency_layers, fig_roofline,
                             fig_utilization, roofline_points, si, unit_colors)

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


def test_group_dram_bytes_closed_form():
    """Unfused 3-pass attention, every tensor in one tile: each group reads its inputs and
    writes its output once per instance (768 = batch 64 x 12 heads)."""
    res = run(load_run(ROOT / "mapping/configs/unfused.yaml", ranks={"M": 64, "P": 96}), progress=False)
    M, P, E, F, n = 64, 96, 64, 64, 64 * 12
    words = {"qk": (M * E + P * E, M * P), "softmax": (M * P, M * P), "av": (M * P + P * F, M * F)}
    (lay,) = res["layer_results"].values()
    for g in res["groups"]:
        r, w = words[g["group"]]
        assert (lay["groups"][g["group"]]["dram_reads"], lay["groups"][g["group"]]["dram_writes"]) == (r * n, w * n)
        assert g["dram_bytes"] == (r + w) * n * 2


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


# -- rendering of the mapping origin, the binding line and both utilizations ---------------
@pytest.fixture(scope="module")
def gemm_result():
    return run(CONFIGS["gemm-16x16"](), progress=False)


def _with_mapping_fields(res: dict) -> dict:
    """A result with the mapping and utilization fields of report.json (synthetic values)."""
    r = copy.deepcopy(res)
    for l in r["layers"]:
        l["mapping_origin"] = "searched"
        l["utilization_compute"] = {"array2d": 0.75}
        l["mapping"] = {"einsums": {"C": {"unit": "array2d"}}, "groups": [{"name": "C", "einsums": ["C"]}]}
    r["summary"]["binding"] = "gemm: searched | gemm binding: array2d C"
    r["summary"]["utilization"] = {"array2d": 0.25}
    r["summary"]["utilization_compute"] = {"array2d": 0.5}
    return r


def _without_mapping_fields(res: dict) -> dict:
    """The same result as written before report.json had those fields."""
    r = copy.deepcopy(res)
    for l in r["layers"]:
        for k in ("mapping_origin", "mapping_policy", "mapping", "binding", "default_choice", "utilization_compute"):
            l.pop(k, None)
    r["summary"].pop("binding", None)
    r["summary"].pop("utilization_compute", None)
    return r


def test_summary_names_the_binding_and_both_utilizations(gemm_result):
    from einarray.report import summary_rows

    rows = dict(summary_rows(_with_mapping_fields(gemm_result)))
    assert rows["mapping"] == "gemm: searched | gemm binding: array2d C"
    assert rows["utilization array2d (all cycles)"] == "0.250"
    assert rows["utilization array2d (compute cycles)"] == "0.500"
    # a result without the fields renders too, without them
    old = _without_mapping_fields(gemm_result)
    rows = dict(summary_rows(old))
    assert "mapping" not in rows and not any("compute cycles" in k for k in rows)
    assert rows["utilization array2d (all cycles)"] == f"{gemm_result['summary']['utilization']['array2d']:.3f}"


def test_markdown_and_html_show_mapping_origin_and_binding(gemm_result):
    from einarray.report import render_html, render_markdown

    res = _with_mapping_fields(gemm_result)
    md = render_markdown(res, [])
    lines = md.splitlines()
    head = next(l for l in lines if l.startswith("| layer | cascade"))
    assert head.split(" | ")[2] == "mapping"
    row = lines[lines.index(head) + 2]
    assert row.split(" | ")[:3] == ["| gemm", "gemm", "searched"]
    assert head.endswith("| util array2d (all cycles) | util array2d (compute cycles) |")
    assert row.endswith(f"| {res['layers'][0]['utilization']['array2d']:.3f} | 0.750 |")
    # the binding's '|' is escaped in markdown and whole in HTML
    assert "| mapping | gemm: searched \\| gemm binding: array2d C |" in md
    page = render_html(res, {})
    assert "<td>mapping</td><td>gemm: searched | gemm binding: array2d C</td>" in page
    assert "<td>utilization array2d (compute cycles)</td><td>0.500</td>" in page
    assert "<th>mapping</th>" in page and "<td>searched</td>" in page
    # before the fields exist: no mapping column
    md0 = render_markdown(_without_mapping_fields(gemm_result), [])
    assert "| layer | cascade | instances |" in md0 and "searched" not in md0


@pytest.mark.parametrize("x, unit, text", [(0, "J", "0 J"), (2.1056874e8, "B", "210.6 MB"), (999.96, "s", "1 ks"),
                                           (6.6e-6, "s", "6.6 us"), (17567610624, "MAC", "17.57 GMAC"),
                                           (3.2e18, "B", "3200 PB"), (368784, "", "368.8 k")])
def test_si(x, unit, text):
    from einarray.report import si

    assert si(x, unit) == text


def test_cycles_by_cause_sum_to_each_layers_cycles(result):
    for l in result["layers"]:
        c = l["cycles_by_cause"]
        assert sum(c.values()) == l["cycles"], l["name"]
        assert min(c.values()) >= 0
        assert set(c) == set(result["arch"]["units"]) | {"buffer_stall", "dram_stall"}


def test_latency_chart_stacks_the_causes_to_each_layers_latency(result):
    fig = fig_latency_layers(result)
    ax = fig.axes[0]
    keys = causes_of(result)
    assert keys[-2:] == ["buffer_stall", "dram_stall"]
    unit = ax.get_xlabel()[len("latency ("):-1]
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    widths: dict[str, float] = {}
    for bar in ax.patches:
        gid = bar.get_gid() or ""
        assert gid.startswith("cause:") and gid[6:] in keys
    layers = result["layers"][::-1]
    per_cause = len(layers)
    assert len(ax.patches) == per_cause * len(keys)
    for i, l in enumerate(layers):
        total = sum(ax.patches[j * per_cause + i].get_width() for j in range(len(keys)))
        widths[l["name"]] = total
        assert total * scale == pytest.approx(l["cycles"] / result["clock_hz"], rel=1e-9)
    # the value labels are the layers' latencies
    assert [t.get_text() for t in ax.texts] == [si(l["latency_s"], "s") for l in layers]
    assert [h.get_label() for h in ax.get_legend().legend_handles] == [k.replace("_", " ") for k in keys]


def test_memory_energy_by_level_and_role_sums_to_the_memory_energy(result):
    lv = result["energy_pj"]["levels"]
    assert set(lv) <= set(result["arch"]["levels"])
    total = sum(v for d in lv.values() for v in d.values())
    assert total == pytest.approx(result["energy_pj"]["memory"], rel=1e-9)
    # per level: the sum of the simulator's per-tensor split over every layer
    for name, d in lv.items():
        want = sum(t["levels"].get(name, 0.0) for r in result["layer_results"].values()
                   for t in r["energy_pj"]["tensors"].values())
        assert sum(d.values()) == pytest.approx(want, rel=1e-12)
    fig = fig_energy_levels(result)
    ax = fig.axes[0]
    heights = {}
    for bar in ax.patches:
        x = round(bar.get_x(), 6)
        heights[x] = heights.get(x, 0.0) + bar.get_height()
    assert sorted(heights.values()) == pytest.approx(sorted(sum(d.values()) * 1e-12 for d in lv.values()))


def test_efficiency_in_the_summary(result):
    s = result["summary"]
    assert s["tops_per_w"] == pytest.approx(2 * s["macs"] / (result["energy_pj"]["total"] * 1e-12) / 1e12)
    arch = result["arch"]["name"]
    path = ROOT / "mapping/arch" / f"{arch}.yaml"
    area = yaml.safe_load(path.read_text())["arch"].get("area_um2") if path.exists() else None
    if area:
        assert s["area_mm2"] == pytest.approx(sum(area.values()) * 1e-6)
        assert s["tops_per_mm2"] == pytest.approx(2 * s["macs"] / s["latency_s"] / 1e12 / s["area_mm2"])
    else:
        assert "area_mm2" not in s and "tops_per_mm2" not in s


def test_fusemax_summary_has_area_and_tops():
    res = run(CONFIGS["vit-base-fusemax"](), progress=False)
    assert res["summary"]["area_mm2"] == pytest.approx(195.84864)
    from einarray.report import render_markdown, summary_rows

    names = [k for k, _ in summary_rows(res)]
    assert "area" in names and "TOPS/W (achieved, 2 ops per MAC)" in names
    md = render_markdown(res, [])
    assert "## Latency by cause" in md and "## Memory energy by level and tensor" in md
