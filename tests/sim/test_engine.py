"""The engine on ragged partitions (a last chunk shorter than P0): exact work and traffic,
the partial chunk stepped (fast == every tile), and its time bounded by whole chunks."""

from __future__ import annotations

import copy

import pytest
import yaml

from einsum.analysis import op_counts
from mapping.config import load_config
from sim.results import simulate

from sim_helpers import CONFIGS


def _fusemax(tmp_path, m: int, p: int, p0: int = 256):
    doc = yaml.safe_load((CONFIGS / "fusemax.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["mapping"]["groups"][0]["tiles"]["GB"]["M"] = min(m, 1024)
    doc["workload"]["cascade"] = str(CONFIGS / "attention-1pass.yaml")
    doc["workload"]["ranks"] = {"M": m, "P": p, "E": 64, "F": 64, "P0": p0}
    doc["workload"]["batch"] = {"B": 1, "H": 1}
    path = tmp_path / f"fm-{m}-{p}-{p0}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_config(path)


@pytest.mark.parametrize("p", [769, 800, 1000, 1023])
def test_fusemax_partial_last_chunk(tmp_path, p):
    """FuseMax's mapping spreads a 256-key chunk over the 256 columns: a partial last
    chunk (P mod 256 keys) is one more pass of the same length as a whole one. So the
    cycles equal those of ceil(P/256) whole chunks (3442 for 4 chunks, 2890 for 3: 552 a
    chunk), while the work and the traffic are exactly those of P keys."""
    cfg = _fusemax(tmp_path, 1024, p)
    fast, slow = simulate(cfg), simulate(cfg, fast=False)
    assert fast["cycles_exact"] == slow["cycles_exact"]
    assert fast["cycles"] == 3442 == simulate(_fusemax(tmp_path, 1024, 1024))["cycles"]
    assert simulate(_fusemax(tmp_path, 1024, 768))["cycles"] == 2890
    oc = op_counts(cfg.cascade)
    for name, d in fast["einsums"].items():
        assert d["actions"] == {k: v for k, v in oc[name].counts.items() if v}, name
    assert fast["einsums"]["QK"]["actions"]["mac"] == 1024 * p * 64
    assert fast["einsums"]["SLNV"]["actions"]["mac"] == 1024 * p * 64
    dram = fast["traffic"]["DRAM"]["tensors"]
    assert dram["K"]["reads"] == dram["V"]["reads"] == p * 64  # held: loaded once, unpadded
    assert dram["Q"]["reads"] == 1024 * 64


@pytest.mark.parametrize("name,ranks,params", [
    ("halo", {"H": 30, "W": 14, "C": 16, "F": 16}, {"block": 8, "halo": 2}),
    ("retention-chunkwise", {"M": 100, "M0": 32, "E": 16, "F": 16}, {}),
    ("softmax-1pass", {"M": 70, "P": 197, "E": 16, "F": 16, "P0": 64}, {}),
    ("gqa", {"M": 20, "P": 20, "H": 6, "R": 4, "E": 8, "F": 8}, {}),
])
def test_ragged_library_cascades(tmp_path, name, ranks, params):
    """Every action the simulator charges is one the reference counts (no padding), and
    stepping every tile agrees with the fast mode."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"workload": {"cascade": name, "ranks": ranks, "params": params},
                                    "arch": "fusemax"}))
    cfg = load_config(path)
    fast, slow = simulate(cfg), simulate(cfg, fast=False)
    assert fast["cycles_exact"] == slow["cycles_exact"]
    oc = op_counts(cfg.cascade)
    for n, d in fast["einsums"].items():
        if d["actions"]:
            assert d["actions"] == {k: v for k, v in oc[n].counts.items() if v}, n


@pytest.mark.parametrize("name,ranks,params", [
    ("halo", {"H": 11, "W": 7, "C": 4, "F": 4}, {"block": 4, "halo": 1}),
    ("retention-chunkwise", {"M": 37, "M0": 8, "E": 4, "F": 4}, {}),
    ("softmax-1pass", {"M": 13, "P": 29, "E": 4, "F": 4, "P0": 4}, {}),
    ("softmax-1pass-causal", {"M": 29, "P": 29, "E": 4, "F": 4, "P0": 8}, {}),
])
def test_ragged_mapping_runs_functionally(tmp_path, name, ranks, params):
    """The mapped cascade, tile by tile, equals the reference on a partial last chunk, for
    the default unfused mapping and FuseMax's fused one on the 1-pass cascade."""
    from sim.functional import check_functional

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"workload": {"cascade": name, "ranks": ranks, "params": params},
                                    "arch": "fusemax"}))
    res = check_functional(load_config(path))
    assert res.ok and res.max_abs_err <= 1e-12, res


def test_fused_ragged_mapping_runs_functionally(tmp_path):
    from sim.functional import check_functional

    cfg = _fusemax(tmp_path, 40, 70, p0=16)
    res = check_functional(cfg)
    assert res.ok and res.max_abs_err <= 1e-12, res
    assert cfg.cascade.ranks["P1"].size == 5
