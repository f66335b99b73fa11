"""sim.results: the two utilization denominators (total cycles with memory stalls, and
compute-only cycles as SCALE-Sim counts them)."""

from __future__ import annotations

import math

import pytest

from sim.results import simulate
from sim.systolic import scalesim_gemm

from sim_helpers import config_from, gemm_arch


def gemm(M, N, K, R, df="os", tiles=None, **arch):
    doc = {"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}},
           "arch": gemm_arch(R, R, **arch), "mapping": {"einsums": {"C": {"dataflow": df}}}}
    if tiles:
        doc["mapping"]["groups"] = [{"name": "g", "einsums": ["C"], "tiles": {"GB": tiles},
                                     "loop_order": list(tiles)}]
    return simulate(config_from(doc))


@pytest.mark.parametrize("M,N,K,R,df", [(64, 64, 64, 16, "os"), (64, 64, 64, 32, "ws"), (100, 40, 33, 16, "is")])
def test_compute_only_utilization_is_scalesims(M, N, K, R, df):
    # SCALE-Sim: utilization = MACs / (R * C * compute cycles), compute cycles printed
    # one lower than folds * per_fold (its off-by-one, see sim/systolic.py)
    r = gemm(M, N, K, R, df, fold_overlap=False)
    sc = scalesim_gemm(M, N, K, R, R, df)
    assert r["compute_only_cycles"] == sc["cycles"] + 1
    u = r["utilization"]["array2d"]
    assert u["mac_util_compute"] == pytest.approx(M * N * K / (R * R * (sc["cycles"] + 1)), rel=1e-12)
    assert u["pe_util_compute"] == pytest.approx(u["mac_util_compute"], rel=1e-12)
    assert abs(u["mac_util_compute"] / sc["utilization"] - 1) <= 1 / sc["cycles"]
    if (M, R, df) == (64, 16, "os"):
        assert abs(sc["utilization"] - 0.6813) < 1e-4  # the figure SCALE-Sim prints
    # the total-cycle figure also pays the first load and the last write-back
    assert u["pe_util"] < u["pe_util_compute"]
    assert u["pe_util"] == pytest.approx(u["pe_util_compute"] * r["compute_only_cycles"] / r["cycles"], rel=1e-12)


def test_compute_bound_both_denominators_agree():
    # DRAM and buffer fast enough that only the sub-cycle first load shows
    r = gemm(128, 128, 128, 16, dram_bw=1e9)
    u = r["utilization"]["array2d"]
    assert r["compute_only_cycles"] == r["compute_cycles"] == 8 * 8 * 128 + 30
    assert r["cycles"] - r["compute_only_cycles"] <= 1
    assert u["pe_util_compute"] == pytest.approx(128 ** 3 / (256 * (8 * 8 * 128 + 30)), rel=1e-12)
    assert u["pe_util"] == pytest.approx(u["pe_util_compute"], rel=1e-3)


def test_memory_bound_compute_only_is_higher():
    # 1 word/cycle of DRAM: the tiled GEMM waits for its operands most of the time
    r = gemm(128, 128, 128, 16, tiles={"M": 32, "N": 32}, dram_bw=1)
    u = r["utilization"]["array2d"]
    steps = 4 * 4
    assert r["compute_only_cycles"] == steps * (2 * 2 * 128 + 30)
    assert r["cycles"] > 4 * r["compute_only_cycles"]
    assert u["pe_util_compute"] == pytest.approx(128 ** 3 / (256 * r["compute_only_cycles"]), rel=1e-12)
    assert u["pe_util_compute"] > 4 * u["pe_util"]
    assert u["mac_util"] == pytest.approx(128 ** 3 / (256 * r["cycles"]), rel=1e-12)


def test_buffer_stalls_are_not_compute():
    # a 1 word/cycle buffer port stalls every step: compute_cycles counts the stall,
    # compute_only_cycles does not
    r = gemm(64, 64, 64, 16, gb_bw=1, dram_bw=1e9)
    assert r["compute_only_cycles"] == 16 * 64 + 30
    words = 64 * 64 * 4 + 64 * 64 * 4 + 64 * 64  # A refetched per column fold, B per row fold, C
    assert r["compute_cycles"] == max(words, 16 * 64 + 30)
    u = r["utilization"]["array2d"]
    assert u["pe_util_compute"] == pytest.approx(64 ** 3 / (256 * (16 * 64 + 30)), rel=1e-12)
    assert math.isclose(u["pe_util_compute"] / u["pe_util"], r["cycles"] / r["compute_only_cycles"], rel_tol=1e-12)


# -- where the cycles go, and the energy per tensor ------------------------------------
def test_cycles_by_cause_compute_bound_is_the_systolic_closed_form():
    r = gemm(128, 128, 128, 16, dram_bw=1e9)
    cb = r["cycles_by_cause"]
    assert cb["array2d"] == 8 * 8 * 128 + 30  # folds x K + fill/drain, as above
    assert cb["buffer_stall"] == 0
    assert cb["dram_stall"] == r["cycles"] - (8 * 8 * 128 + 30)
    assert sum(cb.values()) == r["cycles"]


def test_cycles_by_cause_memory_bound_is_mostly_dram():
    r = gemm(128, 128, 128, 16, tiles={"M": 32, "N": 32}, dram_bw=1)
    cb = r["cycles_by_cause"]
    assert cb["array2d"] == 4 * 4 * (2 * 2 * 128 + 30)
    assert cb["buffer_stall"] == 0
    assert cb["dram_stall"] == r["cycles"] - cb["array2d"] > 3 * cb["array2d"]
    assert sum(cb.values()) == r["cycles"]


def test_cycles_by_cause_buffer_stall_is_compute_cycles_minus_compute_only():
    r = gemm(64, 64, 64, 16, gb_bw=1, dram_bw=1e9)
    cb = r["cycles_by_cause"]
    assert cb["array2d"] == r["compute_only_cycles"] == 16 * 64 + 30
    assert abs(cb["buffer_stall"] - (r["compute_cycles"] - r["compute_only_cycles"])) < 1
    assert sum(cb.values()) == r["cycles"]


@pytest.mark.parametrize("fast", [True, False])
def test_cycles_by_cause_sums_on_a_fused_two_unit_cascade(fast):
    from mapping.config import load_config
    from sim.results import simulate as sim

    from sim_helpers import CONFIGS

    r = sim(load_config(CONFIGS / "fusemax.yaml", ranks={"P": 2048}), fast=fast)
    cb = r["cycles_by_cause"]
    assert set(cb) == set(r["utilization"]) | {"buffer_stall", "dram_stall"}
    assert sum(cb.values()) == r["cycles"]
    assert all(x >= 0 for x in cb.values())
    # the units' shares are whole-cycle roundings of the exact compute-only time
    assert abs(sum(cb[u] for u in r["utilization"]) - r["compute_only_cycles"]) < len(cb)


def test_energy_per_tensor_closed_form_and_sum():
    # one tile: A (M x K) and B (K x N) read once from DRAM, C (M x N) written once
    M, N, K = 32, 24, 16
    doc = {"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}},
           "arch": gemm_arch(8, 8), "mapping": {"einsums": {"C": {"dataflow": "os"}}}}
    doc["arch"]["memory"].append({"name": "RF", "capacity_bytes": 4096, "word_bits": 16,
                                  "read_bw": 1e6, "write_bw": 1e6})
    doc["arch"]["energy"]["RF"] = {"read": 0.5, "write": 0.25}
    r = simulate(config_from(doc))
    t = r["energy_pj"]["tensors"]
    assert {k: v["role"] for k, v in t.items()} == {"A": "input", "B": "input", "C": "output"}
    assert t["A"]["levels"]["DRAM"] == M * K * 100.0
    assert t["B"]["levels"]["DRAM"] == K * N * 100.0
    assert t["C"]["levels"]["DRAM"] == M * N * 120.0
    # the registers: one operand read per MAC for A and B, one result write per MAC for C
    assert t["A"]["levels"]["RF"] - r["traffic"]["RF"]["tensors"]["A"]["reads"] * 0.5 \
        - r["traffic"]["RF"]["tensors"]["A"]["writes"] * 0.25 == M * N * K * 0.5
    assert t["C"]["levels"]["RF"] - r["traffic"]["RF"]["tensors"]["C"]["reads"] * 0.5 \
        - r["traffic"]["RF"]["tensors"]["C"]["writes"] * 0.25 == M * N * K * 0.25
    for lvl in ("DRAM", "GB", "RF"):
        comp = r["energy_pj"]["components"][lvl]
        assert sum(v["levels"].get(lvl, 0.0) for v in t.values()) == pytest.approx(
            comp["read"] + comp["write"], rel=1e-12)
    assert sum(x for v in t.values() for x in v["levels"].values()) == pytest.approx(
        r["energy_pj"]["memory"], rel=1e-12)
