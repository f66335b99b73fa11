"""The derived default mapping: fused where fusing pays, FuseMax's binding for 1-pass attention,
held to FuseMax's closed form (reference: ../shared/reference README section 2, reproduced in
reports/vit-base/README.md)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from einarray.default_mapping import derive_default, describe, mapping_section
from einarray.flow import default_layer, load_run, run
from einsum.yamlsrc import Source
from mapping.config import load_config
from mapping.loader import mapping_from_data
from sim.results import simulate

ROOT = Path(__file__).resolve().parents[2]
FUSEMAX_CFG = ROOT / "mapping" / "configs" / "fusemax.yaml"
CASCADE_1PASS = ROOT / "mapping" / "configs" / "attention-1pass.yaml"
FREQ = 940e6
DRAM_BPS = 400 * 2**30
WORD_BYTES = 2
FUSEMAX_2D = {"QK", "LM", "SLN", "SLD", "SLNV"}
FUSEMAX_1D = {"RM", "PRM", "SPD", "RD", "SPNV", "RNV", "AV"}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _attention_cfg(tmp_path: Path, cascade: str, n: int, instances: int, p0: int | None = None,
                   arch: str = "fusemax") -> Path:
    ranks = f"M: {n}, P: {n}, E: 64, F: 64" + (f", P0: {p0}" if p0 else "")
    return _write(tmp_path, f"{Path(cascade).stem}-{n}.yaml",
                  f"workload: {{cascade: {cascade}, ranks: {{{ranks}}}, instances: {instances}}}\narch: {arch}\n")


def _units(cfg) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for n, em in cfg.mapping.einsums.items():
        if not em.free:
            out.setdefault(em.unit, set()).add(n)
    return out


def fusemax_closed_form(nq: int, nk: int, instances: int, f: int = 64, *, tiles: bool) -> dict[str, float]:
    """FuseMax's closed form for its 1-pass binding (E = F): compute = S (2F + 10) + AV with
    S = 256x256 score tiles and AV = F cycles per 256 queries per key sweep; latency =
    max(compute, DRAM traffic / bandwidth) with Q, K, V read once and AV written once.
    ``tiles=True`` counts a partial tile as a whole one (the array passes over it all);
    ``tiles=False`` is the paper's S = B H Nq Nk / 65536, a lower bound at ragged sizes."""
    if tiles:
        s = instances * math.ceil(nq / 256) * math.ceil(nk / 256)
        av = instances * math.ceil(nq / 256) * f
    else:
        s = instances * nq * nk / 65536
        av = s * f * 256 / nk
    compute = s * (2 * f + 10) + av
    traffic_bytes = instances * (nq * 64 + 2 * nk * 64 + nq * f) * WORD_BYTES
    traffic = traffic_bytes / DRAM_BPS * FREQ
    return {"compute": compute, "traffic": traffic, "cycles": max(compute, traffic),
            "traffic_bytes": traffic_bytes}


def test_derived_default_is_fusemax_binding_and_reproduces_it(tmp_path):
    """Without a mapping: section the 1-pass cascade gets FuseMax's unit assignment and exactly
    the cycles of mapping/configs/fusemax.yaml (BERT, 1K tokens, batch 64, 12 heads), which is
    FuseMax's closed form 12288 x 154 = 1,892,352 cycles + 0.05%."""
    hand = load_config(FUSEMAX_CFG)
    cfg = load_config(_attention_cfg(tmp_path, str(CASCADE_1PASS), 1024, 64 * 12, p0=256))
    assert cfg.mapping_origin == "default" and hand.mapping_origin == "given"
    derived, choice = derive_default(cfg)
    assert choice is not None and choice.policy == "fused" and choice.placement == "data-following"
    assert _units(derived) == {"array2d": FUSEMAX_2D, "array1d": FUSEMAX_1D}
    got, want = simulate(derived), simulate(hand)
    assert got["cycles"] == want["cycles"] == 1_893_330
    closed = fusemax_closed_form(1024, 1024, 64 * 12, tiles=False)
    assert closed["compute"] == 12288 * 154
    assert got["cycles"] / closed["cycles"] - 1 < 0.001
    assert got["utilization"]["array2d"]["pe_util"] == pytest.approx(137 / 154, abs=0.001)
    assert choice.unfused_cycles > 20 * got["cycles"]


@pytest.fixture(scope="module")
def readme_run():
    spec = load_run(ROOT / "examples" / "vit-base-fusemax.yaml")
    return spec, run(spec, progress=False)


def test_readme_example_attention_within_2pct_of_closed_form(readme_run):
    """The README example's attention layer (ViT-Base, 197 tokens, 12 blocks x 12 heads) with the
    default mapping is within 2% of FuseMax's closed form at 197 tokens (both ways of counting
    tiles: the layer is bound by DRAM traffic either way), and says which binding ran."""
    spec, res = readme_run
    lay = next(l for l in res["layers"] if l["name"] == "attention.softmax-1pass")
    inst = lay["instances"]
    assert inst == 144
    for tiles in (True, False):
        cf = fusemax_closed_form(197, 197, inst, tiles=tiles)
        assert cf["traffic"] > cf["compute"]
        assert abs(lay["cycles"] / cf["cycles"] - 1) < 0.02, (lay["cycles"], cf)
    assert lay["utilization"]["array2d"] > 0.35  # was 0.029 with one group per Einsum
    assert lay["mapping_origin"] == "default"
    assert "data-following" in lay["mapping_policy"] and "fused" in lay["mapping_policy"]
    assert set(lay["binding"]["array2d"]) == FUSEMAX_2D and set(lay["binding"]["array1d"]) == FUSEMAX_1D
    assert "attention.softmax-1pass" in res["summary"]["binding"]
    assert "array2d AV" not in res["summary"]["binding"]


def test_reports_state_the_closed_form_numbers(readme_run):
    """reports/vit-base/README.md states the formula and the numbers; they must be today's."""
    _, res = readme_run
    text = (ROOT / "reports" / "vit-base" / "README.md").read_text()
    lay = next(l for l in res["layers"] if l["name"] == "attention.softmax-1pass")
    cf = fusemax_closed_form(197, 197, 144, tiles=True)
    lb = fusemax_closed_form(197, 197, 144, tiles=False)
    for number in (f"{lay['cycles']:,}", f"{round(cf['traffic']):,}", f"{round(cf['compute']):,}",
                   f"{round(lb['compute']):,}", f"{cf['traffic_bytes']:,}"):
        assert number in text, number
    m = re.search(r"array2d utilization[^|]*\|\s*([0-9.]+)\s*\|\s*([0-9.]+)", text)
    assert m and float(m.group(2)) == pytest.approx(lay["utilization"]["array2d"], abs=0.0005)


@pytest.mark.parametrize("n", [1024, 4096])
def test_one_pass_is_not_ranked_behind_two_pass(tmp_path, n):
    """Under the default mapping the 1-pass cascade no longer loses to the 2-pass one (it was
    1.6x slower with one group per Einsum): at 4K tokens the 2-pass cascade's scores fold
    over P and cannot stay in the PEs while its max is reduced, the 1-pass cascade's can."""
    one = load_config(_attention_cfg(tmp_path, "softmax-1pass", n, 12, p0=256))
    two = load_config(_attention_cfg(tmp_path, "softmax-2pass", n, 12))
    c1 = simulate(derive_default(one)[0])["cycles"]
    c2 = simulate(derive_default(two)[0])["cycles"]
    assert c1 < c2


def test_given_mapping_is_kept_and_labelled(tmp_path):
    cfg = load_config(FUSEMAX_CFG)
    same, choice = derive_default(cfg)
    assert same is cfg and choice is None


def test_single_einsum_needs_no_derivation(tmp_path):
    p = _write(tmp_path, "g.yaml", "workload: {cascade: gemm, ranks: {M: 64, N: 64, K: 64}}\narch: systolic-16x16\n")
    cfg = load_config(p)
    same, choice = derive_default(cfg)
    assert same is cfg and choice is None


def test_default_is_never_slower_than_unfused_and_deterministic(tmp_path):
    for casc, extra in (("layernorm", "T: 197, D: 768"), ("mlp", "T: 64, D: 128, H: 512"),
                        ("softmax-3pass", "M: 128, P: 128, E: 64, F: 64")):
        p = _write(tmp_path, f"{casc}.yaml", f"workload: {{cascade: {casc}, ranks: {{{extra}}}}}\narch: fusemax\n")
        cfg = load_config(p)
        a, ca = derive_default(cfg)
        b, cb = derive_default(load_config(p))
        assert ca == cb and mapping_section(a) == mapping_section(b)
        assert simulate(a)["cycles"] <= simulate(cfg)["cycles"] == ca.unfused_cycles
        assert describe(ca.as_dict())


def test_report_json_mapping_reproduces_every_layer(readme_run, tmp_path):
    """Each layer's stored mapping, loaded as a given mapping, gives the same cycles and energy."""
    spec, res = readme_run
    stored = json.loads(json.dumps(res["layers"]))
    for lay_spec, rec in zip(spec.layers, stored):
        cfg = lay_spec.config
        m = mapping_from_data(rec["mapping"], Source("report.json"), ("mapping",), cfg.cascade, cfg.arch,
                              cfg.counts)
        again = simulate(replace(cfg, mapping=m, mapping_origin="given"))
        assert again["cycles"] == rec["cycles"], rec["name"]
        assert again["energy_pj"]["total"] == pytest.approx(rec["energy_pj"], rel=1e-12)


def test_origins_default_searched_given(tmp_path):
    base = ("workload: {cascade: softmax-3pass, ranks: {M: 64, P: 64, E: 16, F: 16}}\n"
            "arch: fusemax\n")
    d = run(load_run(_write(tmp_path, "d.yaml", base)), progress=False)
    s = run(load_run(_write(tmp_path, "s.yaml", base + "search: {budget: 30, objective: latency}\n")),
            progress=False)
    g = run(load_run(_write(tmp_path, "g.yaml", base + "mapping: {einsums: {QK: {unit: array2d}}}\n")),
            progress=False)
    assert [l["mapping_origin"] for l in (d["layers"][0], s["layers"][0], g["layers"][0])] == \
        ["default", "searched", "given"]
    assert "default" in d["summary"]["binding"] and "searched" in s["summary"]["binding"]
    # the search is seeded with the derived default: it can only do better
    assert 0 < s["layers"][0]["cycles"] <= d["layers"][0]["cycles"]


def test_simulate_cli_derives_and_says_so(tmp_path, capsys):
    from einarray.cli import main

    p = _attention_cfg(tmp_path, "softmax-1pass", 197, 144, p0=197)
    assert main(["simulate", str(p), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mapping_origin"] == "default" and "data-following" in res["mapping_policy"]
    assert res["cycles"] == 31_841
    assert main(["simulate", str(FUSEMAX_CFG)]) == 0
    assert "mapping: given" in capsys.readouterr().out


def test_default_layer_keeps_given_mappings():
    spec = load_run(ROOT / "examples" / "vit-base-fusemax.yaml")
    lay = spec.layers[3]
    given = replace(lay, config=replace(lay.config, mapping_origin="given"))
    assert default_layer(given) is given


# cascades too large at their default ranks for the tile-by-tile check, at odd smaller shapes
SMALL_RANKS = {
    "moe-topk": {"T": 13, "D": 6, "X": 5, "K": 2, "H": 7},
    "longformer": {"M": 37, "R": 3, "G": 2, "E": 8, "F": 8},
    "reformer": {"M": 37, "N": 2, "B2": 3, "C": 5, "E": 8, "F": 8},
}


def _library_cases():
    from einsum.load import library_names, load_cascade

    out = []
    for name in library_names():
        c = load_cascade(name, ranks=SMALL_RANKS.get(name))
        pts = sum(math.prod(c.index_size(ix) for ix in e.iter_indices) for e in c.einsums)
        if pts <= 5_000_000:  # the tile-by-tile NumPy check stays quick
            out.append(name)
    return out


def test_every_small_ranks_entry_is_checked():
    assert set(SMALL_RANKS) <= set(_library_cases())


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", _library_cases())
def test_derived_default_of_every_library_cascade_computes_the_cascade(tmp_path, name):
    """The derived default is legal, computes exactly what the reference computes (the mapped
    cascade run tile by tile in NumPy: gathers, sorts and scatters too), and is never slower
    than one group per Einsum."""
    import yaml

    from sim.functional import check_functional

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"workload": {"cascade": name, **({"ranks": SMALL_RANKS[name]}
                                                                  if name in SMALL_RANKS else {})},
                                 "arch": "fusemax"}))
    cfg = load_config(p)
    derived, choice = derive_default(cfg)
    fr = check_functional(derived)
    assert fr.ok, (name, fr.worst_tensor, fr.max_abs_err)
    if choice is not None:
        assert choice.cycles == simulate(derived)["cycles"] <= choice.unfused_cycles


def test_utilization_both_denominators(readme_run):
    """Aggregated utilization over all cycles and over compute-only cycles: the second is the
    first scaled by total / compute-only cycles, per unit, and the report says which is which."""
    _, res = readme_run
    s = res["summary"]
    total = res["cycles"]
    compute_only = sum(l["compute_only_cycles"] for l in res["layers"])
    assert compute_only <= total
    for u, v in s["utilization"].items():
        assert s["utilization_compute"][u] == pytest.approx(v * total / compute_only, rel=1e-9)
        assert s["utilization_compute"][u] >= v
    assert "memory stalls included" in s["utilization_denominator"]["utilization"]
    assert "SCALE-Sim" in s["utilization_denominator"]["utilization_compute"]


def test_run_mapping_from_report_reproduces_the_run(tmp_path, capsys):
    """einarray run --mapping-from report.json: every layer runs its stored mapping (given), and
    the figures are identical to the run that wrote the report."""
    from einarray.cli import main

    cfg = ROOT / "tests" / "einarray" / "data" / "vit-tiny-small.yaml"
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(cfg), "-o", str(a), "--no-plots", "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["run", str(cfg), "-o", str(b), "--no-plots", "--no-progress", "--json",
                 "--mapping-from", str(a / "report.json")]) == 0
    ra = json.loads((a / "report.json").read_text())
    rb = json.loads((b / "report.json").read_text())
    assert rb["cycles"] == ra["cycles"] and rb["energy_pj"]["total"] == ra["energy_pj"]["total"]
    assert [l["mapping"] for l in rb["layers"]] == [l["mapping"] for l in ra["layers"]]
    assert {l["mapping_origin"] for l in rb["layers"]} == {"given"}
    assert "default" in {l["mapping_origin"] for l in ra["layers"]}


def test_mapping_from_a_report_of_another_model_is_a_located_error(tmp_path, capsys):
    from einarray.cli import main

    rep = _write(tmp_path, "report.json", json.dumps({"layers": [{"name": "other", "mapping": {}}]}))
    cfg = ROOT / "tests" / "einarray" / "data" / "vit-tiny-small.yaml"
    assert main(["run", str(cfg), "-o", str(tmp_path / "o"), "--no-plots", "--no-progress",
                 "--mapping-from", str(rep)]) == 2
    # (a warning line may precede the error: LayerNorm's VAR runs on the 1-D array, the
    # 2-D array has no divide)
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ": warning: " not in ln]
    assert len(err) == 1 and f"{rep}" in err[0] and "has no layer 'patch-embed'" in err[0]


def test_simulate_show_mapping_prints_the_loop_nest(tmp_path, capsys):
    from einarray.cli import main

    assert main(["simulate", str(FUSEMAX_CFG), "--show-mapping"]) == 0
    out = capsys.readouterr().out
    assert "mapping: given" in out and "for instance in [0:768)" in out
    assert "for P1 in [0:4) tile 1" in out and "held: K across M, V across M" in out
    assert "array2d  QK      os  spatial-Y m:256 x4 folds  spatial-X p0:256  temporal e:64" in out
    assert "array1d  AV      deferred 1 step" in out


def test_report_has_each_layers_loop_nest(readme_run, tmp_path):
    from einarray.report import render_html, render_markdown

    _, res = readme_run
    md = render_markdown(res, [])
    assert "## Mappings" in md and md.count("```") == 2 * len(res["layers"])
    assert "layer attention.softmax-1pass: softmax-1pass on fusemax (mapping: default, fused" in md
    page = render_html(res, {})
    assert "<pre>layer attention.softmax-1pass" in page and "```" not in page


def test_an_identical_layer_reuses_its_derivation(tmp_path):
    """derive_default is kept per layer digest (einarray.search_cache.layer_key): the same
    layer again gets the same mapping and choice without simulating; another shape does not."""
    from einarray import default_mapping

    p = tmp_path / "a.yaml"
    p.write_text("workload: {cascade: softmax-1pass, ranks: {M: 24, P: 40, E: 8, F: 8}}\narch: fusemax\n")
    default_mapping._DERIVED.clear()
    a_cfg, a = derive_default(load_config(p))
    calls = []
    real = default_mapping._derive
    default_mapping._derive = lambda cfg: calls.append(cfg) or real(cfg)
    try:
        b_cfg, b = derive_default(load_config(p))
        assert calls == [] and b == a and b_cfg.mapping == a_cfg.mapping
        p.write_text(p.read_text().replace("P: 40", "P: 48"))
        _, c = derive_default(load_config(p))
        assert len(calls) == 1 and c.unfused_cycles != a.unfused_cycles
    finally:
        default_mapping._derive = real
