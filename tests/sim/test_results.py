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
