"""The FuseMax artifact's closed forms (reference sheet, section 2) against the simulator,
and functional checks of the three attention mappings."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from mapping.config import load_config
from sim.functional import check_functional
from sim.results import simulate

from sim_helpers import CONFIGS

CLOCK = 940_000_000
BW = Fraction(400 * 2 ** 30, CLOCK * 2)  # DRAM words per cycle, exactly
MODELS = {"BERT": (12, 64), "XLM": (16, 128)}


def cfg_for(mapping, model, n, extra=()):
    H, E = MODELS[model]
    return load_config(CONFIGS / f"{mapping}.yaml", ranks={"M": n, "P": n, "E": E, "F": E},
                       sets=[f"workload.batch.H={H}", *extra])


@pytest.mark.parametrize("model,n", [("BERT", 1024), ("BERT", 4096), ("XLM", 1024), ("XLM", 4096)])
def test_fusemax_closed_form(model, n):
    H, F = MODELS[model]
    r = simulate(cfg_for("fusemax", model, n))
    S = 64 * H * n * n // 65536
    closed = S * (2 * F + 10) + S * 256 * F // n  # max(QK+LM, RD+RNV+AV) + RM + max(..) + max(..)
    if (model, n) == ("BERT", 1024):
        assert closed == 12288 * 154 and abs(closed / CLOCK - 2.013e-3) < 1e-6
    # ours = the closed form + the last query tile's deferred RD and RNV (an epilogue):
    # 1024 queries on 256 lanes, 1 + F cycles each
    Mt = 1024
    assert r["compute_cycles"] == closed + Mt // 256 * (1 + F)
    # + the first step's loads (Q tile, a K and a V chunk) and the last AV write-back
    first_load = Mt * F + 2 * 256 * F
    want = closed + Mt // 256 * (1 + F) + first_load / BW + Mt * F / BW
    assert abs(r["cycles_exact"] - float(want)) < 1e-6
    # the 2-D array does (E + F + 9) array-cycles of work per 256x256 chunk
    assert abs(r["utilization"]["array2d"]["pe_util"] - S * (2 * F + 9) / r["cycles"]) < 1e-12
    util = (2 * F + 9) / (2 * F + 10 + 256 * F / n)
    assert abs(r["utilization"]["array2d"]["pe_util"] - util) < 1e-3
    if (model, n) == ("BERT", 1024):
        assert abs(util - 0.8896) < 1e-4
    assert r["utilization"]["array1d"]["pe_util"] > 0.999


@pytest.mark.parametrize("model,n", [("BERT", 1024), ("XLM", 1024), ("BERT", 4096)])
def test_flat_closed_form(model, n):
    H, E = MODELS[model]
    r = simulate(cfg_for("flat", model, n))
    S = 64 * H * n * n // 65536
    closed = 1024 * S  # four softmax passes on the 1-D array bound the run
    if (model, n) == ("BERT", 1024):
        assert abs(closed / CLOCK - 13.386e-3) < 1e-6
    # pipeline fill and drain: the first step only runs QK (n/256 folds of E), the last only AV
    fill_drain = n // 256 * E + n // 256 * 256
    assert closed <= r["compute_cycles"] <= closed + fill_drain + 16  # + buffer-port stalls at the ends
    assert abs(r["utilization"]["array2d"]["pe_util"] - 2 * E / 1024) < 1e-4


@pytest.mark.parametrize("model", ["BERT", "XLM"])
def test_unfused_closed_form(model):
    # sum over QK, softmax, AV of max(traffic / BW, compute); Q, K, V read once per head
    H, E = MODELS[model]
    n = 1024
    r = simulate(cfg_for("unfused", model, n))
    S = Fraction(64 * H * n * n, 65536)
    qkv = 64 * H * n * E
    closed = (max(S * E, (2 * qkv + S * 65536) / BW) + max(1024 * S, 2 * S * 65536 / BW)
              + max(S * 256, (S * 65536 + 2 * qkv) / BW))
    if model == "BERT":
        assert abs(float(closed) / CLOCK - 21.824e-3) < 1e-6
    assert closed <= Fraction(r["cycles_exact"]) <= closed * Fraction(1001, 1000)
    # each phase is bound by what the closed form says: DRAM for QK and AV, compute for softmax
    g = r["groups"]
    assert g["softmax"]["cycles"] >= 1024 * S
    assert abs(g["qk"]["cycles"] / float((2 * qkv + S * 65536) / BW) - 1) < 2e-3


@pytest.mark.parametrize("mapping", ["fusemax", "flat", "unfused"])
def test_attention_mappings_are_functionally_exact(mapping):
    # scaled down (4x4 2-D array, 4-wide 1-D array, chunks of 4 keys) so NumPy can step it
    ranks = {"M": 12, "P": 16, "E": 3, "F": 5}
    sets = ["arch.array2d.rows=4", "arch.array2d.cols=4", "arch.array1d.width=4"]
    if mapping == "fusemax":
        ranks["P0"] = 4
        sets += ["mapping.groups.0.tiles.GB.M=4"]
    else:
        sets += ["mapping.groups.0.tiles.GB.M=4"] if mapping == "flat" else []
    cfg = load_config(CONFIGS / f"{mapping}.yaml", ranks=ranks, sets=sets)
    fr = check_functional(cfg, seed=3)
    assert fr.ok, fr
    assert fr.max_abs_err < 1e-12


def test_functional_catches_a_broken_schedule():
    # RD read by SPD before the deferred RD of the previous chunk ran: a wrong mapping
    # that the order check would reject is forced through by hand and must fail
    import dataclasses
    from types import MappingProxyType
    cfg = load_config(CONFIGS / "fusemax.yaml", ranks={"M": 8, "P": 16, "E": 2, "F": 2, "P0": 4},
                      sets=["arch.array2d.rows=4", "arch.array2d.cols=4", "arch.array1d.width=4",
                            "mapping.groups.0.tiles.GB.M=4"])
    g = cfg.mapping.groups[0]
    bad = dataclasses.replace(g, deferred=MappingProxyType({**g.deferred, "RD": 2}))
    cfg2 = dataclasses.replace(cfg, mapping=dataclasses.replace(cfg.mapping, groups=(bad,)))
    assert check_functional(cfg).ok
    assert not check_functional(cfg2).ok


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=8, deadline=None)
@given(m=st.integers(1, 9), mt=st.integers(1, 4), p1=st.integers(1, 4), p0=st.integers(1, 3),
       e=st.integers(1, 3), f=st.integers(1, 3))
def test_fusemax_mapping_functional_any_tiling(m, mt, p1, p0, e, f):
    # partial query tiles, one-key chunks, single chunks: the pipelined schedule is exact
    cfg = load_config(CONFIGS / "fusemax.yaml", ranks={"M": m, "P": p1 * p0, "E": e, "F": f, "P0": p0},
                      sets=["arch.array2d.rows=4", "arch.array2d.cols=4", "arch.array1d.width=4",
                            f"mapping.groups.0.tiles.GB.M={min(mt, m)}"])
    fr = check_functional(cfg, seed=m * 7 + p1)
    assert fr.ok and fr.max_abs_err < 1e-12, fr
