"""The committed studies in reports/ are up to date: recompute their JSON and compare numbers."""

from __future__ import annotations

import json

import pytest

from einarray import studies
from einarray.report import dumps


@pytest.mark.parametrize("name", list(studies.STUDIES))
def test_committed_study_matches_a_fresh_run(name):
    committed = json.loads((studies.REPORTS / name / "results.json").read_text())
    raw = studies.STUDIES[name][0](progress=False)
    for k in [k for k in raw if k.startswith("_")]:  # files written beside the results
        raw.pop(k)
    fresh = json.loads(dumps(raw))
    diffs = studies.compare_numbers(fresh, committed)
    assert not diffs, f"reports/{name} is stale; run `python -m einarray.studies {name}`: {diffs[:5]}"


def test_compare_numbers_reports_differences():
    assert studies.compare_numbers({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 + 1e-12]}) == []
    assert studies.compare_numbers({"a": [1.0, 2.0]}, {"a": [1.0, 2.1]}) == [".a[1]: 2.0 != 2.1"]
    assert studies.compare_numbers({"a": 1}, {"b": 1})


def test_attention_variant_study_shapes():
    data = json.loads((studies.REPORTS / "attention-variants" / "results.json").read_text())
    rows = data["rows"]
    assert len(rows) == len(studies.VARIANTS) * len(studies.SIZES) * len(studies.ARCHS)
    by = {(r["image_px"], r["arch"], r["variant"]): r for r in rows}
    for arch in studies.ARCHS:
        assert by[(224, arch, "softmax-3pass")]["passes"] == 3
        assert by[(224, arch, "softmax-2pass")]["passes"] == 2
        assert by[(224, arch, "softmax-1pass")]["passes"] == 1
        # a 2-pass softmax over a window or a masked key rank is 2 passes over those keys
        assert by[(224, arch, "gmm-mask")]["passes"] == 2
        assert by[(224, arch, "halo")]["passes"] == 2
        # the quadratic core has 12 blocks x 12 heads x 2 x T^2 x 64 MACs
        T = by[(1024, arch, "softmax-3pass")]["tokens"]
        assert T == 4096
        assert by[(1024, arch, "softmax-3pass")]["attention_core_macs"] == 144 * 2 * T * T * 64


def test_every_option_has_help():
    for a in studies.build_parser()._actions:
        assert a.help and a.help.strip(), a.option_strings or a.dest


@pytest.mark.parametrize("name", ["fusemax", *studies.STUDIES])
def test_committed_results_carry_no_times(name):
    """Regenerating a report with unchanged numbers changes nothing: no wall time or date."""
    import re

    text = (studies.REPORTS / name / "results.json").read_text()
    keys = set(re.findall(r'"([A-Za-z_]+)":', text))
    assert not [k for k in keys if re.search(r"(^|_)(wall|time|times|date|elapsed)(_|$)", k)]  # not "updates"
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    readme = (studies.REPORTS / name / "README.md").read_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}|simulations in [\d.]+ s", readme)


def test_attention_variant_study_moe_rows():
    """M^3ViT's six MoE layers: the gate GEMM (T D X), the experts 2 T K D H with top-k
    dispatch against 2 T X D H plus the T X D score-weighted sum dense-masked."""
    data = json.loads((studies.REPORTS / "attention-variants" / "results.json").read_text())
    T, D, X, H, K = 129, 192, 16, 384, 2
    want = {"moe": 6 * (T * D * X + 2 * T * X * D * H + T * X * D),
            "moe-topk": 6 * (T * D * X + 2 * T * K * D * H)}
    rows = data["moe_rows"]
    assert len(rows) == len(studies.MOE_VARIANTS) * len(studies.ARCHS)
    for r in rows:
        assert r["moe_macs"] == want[r["cascade"]]
        assert 0 < r["moe_latency_s"] < r["latency_s"]
    for arch in studies.ARCHS:
        by = {r["variant"]: r for r in rows if r["arch"] == arch}
        assert by["moe-topk-edge-moe"]["gating"] == "edge-moe" and by["moe-dense"]["cascade"] == "moe"


def test_the_softmax_on_the_assumed_vector_unit_closed_forms():
    """BERT-Base's softmax on simba-like's assumed vector unit (4 chiplets x 16 lanes): each of the
    four Einsums has 12 x 512 x 512 = 3,145,728 points. The exponentials take 1 + 6 lane-cycles a
    point: 3,145,728 x 7 / 64 = 344,064 cycles. The others are bound by the package mesh: each
    chiplet takes a quarter of a tensor from the DRAM at (0, 0), so link (0,0)->(1,0) carries two
    quarters at 8 words a cycle: S (GM) or SN (SD) 1,572,864 / 8 = 196,608; A reads SN and SD
    (6,144 words): (1,572,864 + 3,072) / 8 = 196,992."""
    sm = json.loads((studies.REPORTS / "architectures" / "results.json").read_text())["softmax"]
    n = 12 * 512 * 512
    e = sm["einsums"]
    assert sm["order"] == ["GM", "SN", "SD", "A"]
    assert {k: v["ops"] for k, v in e.items()} == {"GM": {"max": n}, "SN": {"add": n, "exp": n}, "SD": {"add": n},
                                                  "A": {"div": n}}
    assert (e["SN"]["cycles"], e["SN"]["bound_by"]) == (n * 7 // 64, "the vector unit")
    for k, words in (("GM", n), ("SD", n), ("A", n + 12 * 512)):
        assert e[k]["cycles"] == words // 2 // 8, k
        assert e[k]["bound_by"] == "DRAM's network (busiest link (0,0)->(1,0))"
    assert sm["cycles"] == sum(v["cycles"] for v in e.values())


def test_fused_attention_on_eyeriss_like_saves_exactly_the_intermediates_dram_traffic():
    """The same nests fused and unfused (eyeriss-like, DRAM 200 MAC-equivalents a word): fused, the
    S Einsum no longer writes S (12 x 512 x 512 words) to DRAM and A V no longer reads A; the
    softmax's four Einsums touch DRAM not at all; the cycles are the same."""
    fa = json.loads((studies.REPORTS / "architectures" / "results.json").read_text())["fused_attention"]
    f, u = fa["fused"]["einsums"], fa["unfused"]["einsums"]
    n = 12 * 512 * 512
    assert fa["fused"]["order"] == ["S", "GM", "SN", "SD", "A", "O"]
    for k in ("S", "O"):
        assert u[k]["dram_energy"] - f[k]["dram_energy"] == pytest.approx(n * 200.0)
    for k in ("GM", "SN", "SD", "A"):
        assert f[k]["dram_energy"] == 0 and u[k]["dram_energy"] > 0
    assert fa["fused"]["cycles"] == fa["unfused"]["cycles"]
    assert fa["fused"]["energy"] < 0.7 * fa["unfused"]["energy"]


def test_architecture_study_against_closed_forms():
    """reports/architectures: MACs are the layers' closed forms, no row beats the MAC-count
    bound, the hand rows are `einarray simulate` of the shipped examples, and the head-split
    scores on Simba-like are bound by the package link into the DRAM's chiplet exactly."""
    import warnings

    from einarray.studies.architectures import ARCHS, LAYERS, REPO
    from mapping.config import load_config
    from sim.nest import simulate_nest

    rows = json.loads((studies.REPORTS / "architectures" / "results.json").read_text())["rows"]
    macs = {"alexnet-conv3": 384 * 256 * 13 * 13 * 9, "resnet50-conv3": 128 * 128 * 28 * 28 * 9,
            "bert-qkv": 512 * 768 * 2304, "bert-qk": 12 * 512 * 512 * 64, "bert-av": 12 * 512 * 64 * 512,
            "bert-out": 512 * 768 * 768, "vit-qk": 12 * 200 * 200 * 64, "vit-av": 12 * 200 * 64 * 200}
    peak = {"eyeriss-like": 168, "simba-like": 4 * 16 * 64}
    assert {(r["layer"], r["arch"]) for r in rows if r["mapping"] == "searched"} == \
        {(lay, a) for lay in LAYERS for a in ARCHS}
    for r in rows:
        assert r["macs"] == macs[r["layer"]]
        assert r["cycles"] >= r["macs"] / peak[r["arch"]]
        out, size = {"alexnet-conv3": ("Outputs", 384 * 13 * 13), "resnet50-conv3": ("Outputs", 128 * 28 * 28),
                     "bert-qkv": ("C", 512 * 2304), "bert-qk": ("S", 12 * 512 * 512),
                     "bert-av": ("O", 12 * 512 * 64), "bert-out": ("C", 512 * 768),
                     "vit-qk": ("S", 12 * 200 * 200), "vit-av": ("O", 12 * 200 * 64)}[r["layer"]]
        assert r["levels"]["DRAM"]["tensors"][out]["updates"] >= size  # every output reaches DRAM
        # padded (197 -> 200 tokens): the Einsum's own MACs, and utilization over them
        useful = 12 * 197 * 197 * 64 if r["layer"].startswith("vit") else r["macs"]
        assert r["useful_macs"] == useful
        assert r["useful_utilization"] == pytest.approx(r["utilization"] * useful / r["macs"], rel=1e-12)
        if r["mapping"] == "hand":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = simulate_nest(load_config(REPO / LAYERS[r["layer"]]["hand"][r["arch"]], allow_hierarchy=True))
            assert (r["cycles"], r["energy"]) == (ref.cycles, ref.energy_pj)
    qk = next(r for r in rows if r["case"] == "bert-qk@simba-like-hand")
    # chiplets (1, 0) and (1, 1) return 3 heads' scores each over the link (1,0)->(0,0) (a write-back
    # retraces the XY read route), 8 words a cycle; + 4 cycles of package and 12 of chiplet hops
    assert qk["bound_cycles"] == 2 * 3 * 512 * 512 // 8 + 4 + 12
    assert qk["cycles"] == qk["timeline"]["cycles"] >= qk["bound_cycles"]
    assert qk["networks"]["DRAM"]["busiest_words"] == 2 * 3 * 512 * 512
