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


# -- several cores (sim.engine: "Several cores") ------------------------------------------
def _gemm16(cores, instances, dram_bw=8.0):
    from sim_helpers import config_from, gemm_arch

    arch = gemm_arch(16, 16, dram_bw=dram_bw)
    if cores is not None:
        arch["cores"] = cores
    return simulate(config_from({"workload": {"cascade": "gemm", "ranks": {"M": 16, "N": 16, "K": 16},
                                              "instances": instances}, "arch": arch}))


def test_one_core_is_todays_engine():
    a, b = _gemm16(None, 3), _gemm16(1, 3)
    assert a == b and "cores" not in a


def test_cores_split_the_instances_in_phases_that_share_the_backing_store():
    # a 16^3 GEMM is one step: 512 words in, the systolic closed form C, 256 words out on a
    # shared channel of 8 words per cycle. 6 instances on 4 cores: 4 cores at 2 words per
    # cycle each, then 2 cores at 4: (512 * 4 + 256 * 4) / 8 + C + (512 * 2 + 256 * 2) / 8 + C
    from sim.systolic import systolic_cycles

    C = systolic_cycles(1, 16, 16, 16, "os")
    r = _gemm16(4, 6)
    assert r["cycles_exact"] == 384 + 192 + 2 * C
    assert r["cores"]["instances_per_core"] == [2, 2, 1, 1]
    assert [(p["cores"], p["read_bw_each"]) for p in r["cores"]["phases"]] == [(4, 2.0), (2, 4.0)]
    one = _gemm16(None, 6)
    # the same work and traffic as on one core, over 4 cores' lanes
    words = {lv: (t["reads"], t["writes"], t["tensors"]) for lv, t in r["traffic"].items()}
    assert words == {lv: (t["reads"], t["writes"], t["tensors"]) for lv, t in one["traffic"].items()}
    assert r["energy_pj"]["compute"] == one["energy_pj"]["compute"]
    assert r["utilization"]["array2d"]["mac_util"] == pytest.approx(6 * 16 ** 3 / (4 * 256 * r["cycles"]))
    assert sum(r["cycles_by_cause"].values()) == r["cycles"]


def test_the_network_caps_the_shared_bandwidth_delays_the_data_and_costs_word_hops():
    # 2 x 2 mesh from the corner, 1 word per cycle per link, 3 cycles per hop, 0.25 pJ per
    # word-hop. Four cores: the busiest link carries 2 of 4 cores' words, so the network
    # carries 2 words per cycle, 0.5 per core: 512 / 0.5 + 256 / 0.5 cycles, and the farthest
    # core (2 hops) waits 6 cycles for its data and 6 for its write-back to arrive. Then 2
    # cores (0 and 1): 1 word per cycle each, 1 hop. Word-hops: 768 words per core x
    # (0 + 1 + 1 + 2), then x (0 + 1).
    from sim.systolic import systolic_cycles

    C = systolic_cycles(1, 16, 16, 16, "os")
    noc = {"topology": "mesh", "dims": [2, 2], "link_bw": 1, "hop_latency": 3, "energy_per_word_hop": 0.25}
    r = _gemm16({"count": 4, "noc": noc}, 6)
    assert r["cycles_exact"] == (1024 + 512 + 2 * 6 + C) + (512 + 256 + 2 * 3 + C)
    assert r["cores"]["noc"]["hops"] == [0, 1, 1, 2]
    assert r["cores"]["noc"]["word_hops"] == 768 * 4 + 768 * 1
    assert r["energy_pj"]["noc"] == 0.25 * 3840
    assert r["energy_pj"]["total"] == pytest.approx(_gemm16(None, 6)["energy_pj"]["total"] + 960.0)


def test_idle_cores_are_named(recwarn):
    from einsum.errors import EinarrayWarning

    with pytest.warns(EinarrayWarning, match=r"arch.cores: 4 cores split the instance loop .* which has 2: "
                                             r"2 cores stay idle"):
        r = _gemm16(4, 2)
    assert r["cores"]["instances_per_core"] == [1, 1, 0, 0]
