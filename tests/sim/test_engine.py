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


# -- the integer time base (sim.engine: "Exact integer time") ---------------------------
def test_time_base_counts_exact_ticks_and_refuses_what_does_not_fit():
    from fractions import Fraction

    from sim.engine import TimeBase, _Rescale

    tb = TimeBase(6)
    assert (tb.ticks(Fraction(5, 3)), tb.ticks(4), tb.ticks(Fraction(1, 2))) == (10, 24, 3)
    assert (tb.cycles(10), tb.cycles(24)) == (Fraction(5, 3), 4)
    assert type(tb.cycles(24)) is int
    with pytest.raises(_Rescale) as ei:
        tb.ticks(Fraction(1, 4))
    assert ei.value.den == 4


def test_a_run_refines_its_time_base_and_a_finer_one_changes_nothing():
    # DRAM at 5/2 words per cycle (a word is 2/5 cycle: D starts at 5); the buffer at 7/10
    # word per cycle makes the steps' stall floors multiples of 1/7 cycle, so the run
    # restarts with D = 35. Forcing a much finer D (x 33) gives the same result to the bit.
    from sim import engine
    from sim.engine import Sim
    from sim_helpers import config_from, gemm_arch

    doc = {"workload": {"cascade": "gemm", "ranks": {"M": 40, "N": 30, "K": 20}},
           "arch": gemm_arch(8, 8, dram_bw=2.5, gb_bw=0.7),
           "mapping": {"groups": [{"name": "g", "einsums": ["C"], "tiles": {"GB": {"M": 16, "N": 10}},
                                   "loop_order": ["M", "N"]}]}}
    cfg = config_from(doc)
    engine._D_HINT.clear()
    sim = Sim(cfg)
    assert sim.tb.d == 5
    sim.run()
    assert sim.tb.d == 35 and 35 % sim.end_time.denominator == 0
    first = simulate(cfg)
    key = next(iter(engine._D_HINT))
    engine._D_HINT[key] = 35 * 33
    finer = Sim(cfg)
    assert finer.tb.d == 35 * 33
    assert simulate(cfg) == first
    stepped = simulate(cfg, fast=False)  # every tile stepped: the same figures
    assert stepped["cycles_exact"] == first["cycles_exact"]
