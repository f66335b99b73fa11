"""Invariants of the simulator (hypothesis): bounds, utilization, energy, conservation,
and the exactness of steady-state multiplication (fast == every tile)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings, strategies as st

from mapping.config import load_config
from sim.results import simulate

from sim_helpers import CONFIGS, config_from, gemm_arch

RANKS = ["M", "N", "K"]


@st.composite
def tiled_gemm(draw):
    M, N, K = (draw(st.integers(1, 40)) for _ in range(3))
    R, C = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    sizes = {"M": M, "N": N, "K": K}
    tiles = {r: draw(st.integers(1, sizes[r])) for r in RANKS}
    order = draw(st.permutations(RANKS))
    df = draw(st.sampled_from(["os", "ws", "is"]))
    arch = gemm_arch(R, C, fold_overlap=draw(st.booleans()), dram_bw=draw(st.sampled_from([0.5, 2, 7.5, 64])),
                     gb_bw=draw(st.sampled_from([4, 16, 1000])), buffers=draw(st.integers(1, 3)),
                     shared=draw(st.booleans()))
    doc = {"workload": {"cascade": "gemm", "ranks": sizes, "instances": draw(st.integers(1, 3))},
           "arch": arch,
           "mapping": {"einsums": {"C": {"dataflow": df}},
                       "groups": [{"name": "g", "einsums": ["C"], "tiles": {"GB": tiles}, "loop_order": order}]}}
    return doc


def hand_energy(res, arch_doc):
    """Sum of action counts x the table, and traffic x per-word energies, computed here."""
    e = arch_doc["energy"]
    total = 0.0
    for name, d in res["einsums"].items():
        for a, n in d["actions"].items():
            total += n * e[d["unit"]][a]
    for lv in arch_doc["memory"]:
        t = res["traffic"][lv["name"]]
        total += t["reads"] * e[lv["name"]]["read"] + t["writes"] * e[lv["name"]]["write"]
    return total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=tiled_gemm())
def test_gemm_invariants(doc):
    cfg = config_from(doc)
    res = simulate(cfg)
    M, N, K = (doc["workload"]["ranks"][r] for r in RANKS)
    inst = doc["workload"]["instances"]
    arch = doc["arch"]
    R, C = arch["array2d"]["rows"], arch["array2d"]["cols"]
    cyc = res["cycles_exact"]
    # the work is all done, once: MACs and output elements
    assert res["einsums"]["C"]["actions"] == {"mac": inst * M * N * K}
    # compute bound and the bandwidth bound of every level
    assert cyc >= inst * M * N * K / (R * C) - 1e-9
    dram, gb = res["traffic"]["DRAM"], res["traffic"]["GB"]
    bw = arch["memory"][0]["read_bw"]
    if arch["memory"][0]["shared_rw"]:
        assert cyc >= (dram["reads"] + dram["writes"]) / bw - 1e-9
    assert cyc >= dram["reads"] / bw - 1e-9 and cyc >= dram["writes"] / bw - 1e-9
    gbw = arch["memory"][1]["read_bw"]
    assert cyc >= gb["reads"] / gbw - 1e-9 and cyc >= gb["writes"] / gbw - 1e-9
    # every input element crosses from DRAM at least once, every output is written
    assert dram["tensors"]["A"]["reads"] >= inst * M * K and dram["tensors"]["B"]["reads"] >= inst * K * N
    assert dram["tensors"]["C"]["writes"] >= inst * M * N
    # conservation between levels: what DRAM sends the buffer receives, and back
    assert gb["fills"] == dram["reads"] and gb["drains"] == dram["writes"]
    for t, d in dram["tensors"].items():
        assert d["reads"] <= gb["tensors"][t]["writes"] and d["writes"] <= gb["tensors"][t]["reads"]
    # utilization
    for u in res["utilization"].values():
        assert 0 <= u["busy"] <= 1 and 0 <= u["pe_util"] <= 1 + 1e-12 and 0 <= u["mac_util"] <= 1 + 1e-12
    assert math.isclose(res["utilization"]["array2d"]["mac_util"], inst * M * N * K / (R * C * res["cycles"]))
    # energy is the table applied to the counts
    assert math.isclose(res["energy_pj"]["total"], hand_energy(res, arch), rel_tol=1e-12)
    assert math.isclose(res["edp"], res["energy_pj"]["total"] * res["latency_s"], rel_tol=1e-12)
    # steady-state multiplication is exact
    slow = simulate(cfg, fast=False)
    for k in ("cycles_exact", "compute_cycles", "traffic", "energy_pj", "einsums", "utilization"):
        assert slow[k] == res[k], k


def test_untiled_gemm_energy_by_hand():
    # 40x24x16 on 8x8 OS, one step: traffic and energy from first principles
    M, N, K, R, C = 40, 24, 16, 8, 8
    arch = gemm_arch(R, C)
    res = simulate(config_from({"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}},
                                "arch": arch}))
    dram_r, dram_w = M * K + K * N, M * N
    # OS: A is re-streamed for each of the ceil(N/C) column folds, B for each ceil(M/R) row fold
    gb_r = M * K * math.ceil(N / C) + K * N * math.ceil(M / R) + dram_w
    gb_w = M * N + dram_r
    assert res["traffic"]["DRAM"]["reads"] == dram_r and res["traffic"]["DRAM"]["writes"] == dram_w
    assert res["traffic"]["GB"]["reads"] == gb_r and res["traffic"]["GB"]["writes"] == gb_w
    want = 1.5 * M * N * K + 100 * dram_r + 120 * dram_w + 3 * gb_r + 4 * gb_w
    assert math.isclose(res["energy_pj"]["total"], want, rel_tol=1e-12)
    # timing: load A and B (1024 words at 8/cycle), 15 folds of 16 + fill/drain 14, write 960/8
    assert res["cycles"] == 1024 / 8 + (15 * 16 + 14) + 960 / 8


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mt=st.integers(1, 3), p1=st.integers(1, 4), inst=st.integers(1, 3), e=st.sampled_from([2, 4]),
       buffers=st.integers(1, 4), dram=st.sampled_from(["0.5", "4", "64"]))
def test_fusemax_mapping_fast_equals_every_tile(mt, p1, inst, e, buffers, dram):
    # the FuseMax mapping scaled down: 4x4 2-D array, 4-wide 1-D array, P0 = 4
    cfg = load_config(CONFIGS / "fusemax.yaml", ranks={"M": 4 * mt + 2, "P": 4 * p1, "E": e, "F": e, "P0": 4},
                      sets=["arch.array2d.rows=4", "arch.array2d.cols=4", "arch.array1d.width=4",
                            f"arch.memory.1.buffers={buffers}", f"arch.memory.1.double_buffer={str(buffers >= 2).lower()}",
                            f"arch.memory.0.bandwidth_bytes_per_s={dram}e9",
                            "mapping.groups.0.tiles.GB.M=4", f"workload.batch.B={inst}", "workload.batch.H=2"])
    fast, slow = simulate(cfg), simulate(cfg, fast=False)
    for k in ("cycles_exact", "compute_cycles", "traffic", "energy_pj", "einsums", "utilization"):
        assert fast[k] == slow[k], k
    assert slow["sim"]["steps_skipped"] == 0


def test_fast_mode_skips_and_stays_exact():
    # big enough that most steps are multiplied, not stepped
    doc = {"workload": {"cascade": "gemm", "ranks": {"M": 48, "N": 40, "K": 36}, "instances": 3},
           "arch": gemm_arch(4, 4, dram_bw=3, gb_bw=20),
           "mapping": {"groups": [{"name": "g", "einsums": ["C"], "tiles": {"GB": {"M": 8, "N": 4, "K": 12}},
                                   "loop_order": ["N", "K", "M"]}]}}
    cfg = config_from(doc)
    fast, slow = simulate(cfg), simulate(cfg, fast=False)
    assert slow["sim"]["steps"] == 3 * 6 * 10 * 3
    assert fast["sim"]["steps"] < slow["sim"]["steps"] / 2 and fast["sim"]["steps_skipped"] > 0
    for k in ("cycles_exact", "compute_cycles", "traffic", "energy_pj", "einsums", "utilization"):
        assert fast[k] == slow[k], k
    cfg = load_config(CONFIGS / "fusemax.yaml", ranks={"M": 24, "P": 32, "E": 4, "F": 4, "P0": 4},
                      sets=["arch.array2d.rows=4", "arch.array2d.cols=4", "arch.array1d.width=4",
                            "mapping.groups.0.tiles.GB.M=4", "workload.batch.B=4", "workload.batch.H=2"])
    fast, slow = simulate(cfg), simulate(cfg, fast=False)
    assert fast["sim"]["steps_skipped"] > slow["sim"]["steps"] / 2
    for k in ("cycles_exact", "compute_cycles", "traffic", "energy_pj", "einsums", "utilization"):
        assert fast[k] == slow[k], k


def test_filtered_cascades_count_the_filtered_work():
    # 'where' filters: energy counts only the points that pass; time spreads them evenly
    from einsum.analysis import op_counts
    from sim.functional import check_functional
    doc = {"workload": {"cascade": "softmax-3pass-causal", "ranks": {"M": 12, "P": 12, "E": 4, "F": 4},
                        "instances": 3},
           "arch": "fusemax",
           "mapping": {"groups": [{"name": "qk", "einsums": ["QK"], "tiles": {"GB": {"M": 4, "P": 8}},
                                   "loop_order": ["M", "P"]}]}}
    cfg = config_from(doc)
    res = simulate(cfg)
    oc = op_counts(cfg.cascade)
    assert any(o.points < math.prod(cfg.cascade.index_size(ix) for ix in cfg.cascade.einsum(n).iter_indices)
               for n, o in oc.items())
    for n, o in oc.items():
        if not cfg.mapping.einsums[n].free:
            assert res["einsums"][n]["actions"] == {a: 3 * v for a, v in o.counts.items() if v}, n
    slow = simulate(cfg, fast=False)
    assert slow["cycles_exact"] == res["cycles_exact"] and slow["energy_pj"] == res["energy_pj"]
    assert check_functional(cfg).ok


def _arch_table(name):
    import yaml
    from sim_helpers import CONFIGS
    doc = yaml.safe_load((CONFIGS.parent / "arch" / f"{name}.yaml").read_text())["arch"]
    words = {lv["name"]: lv.get("word_bits", 16) for lv in doc["memory"]}
    tab = {}
    for comp, t in doc["energy"].items():
        if comp == "leakage_pj_per_cycle":
            continue
        if comp in words:  # pJ per access of access_bits -> per word
            k = words[comp] / t.get("access_bits", words[comp])
            tab[comp] = {"read": t["read"] * k, "write": t["write"] * k}
        else:
            tab[comp] = dict(t)
    return tab


import pytest  # noqa: E402


@pytest.mark.parametrize("name,arch", [("fusemax", "fusemax"), ("flat", "fusemax-baseline"),
                                       ("unfused", "fusemax-baseline")])
def test_attention_configs_bounds_and_energy(name, arch):
    cfg = load_config(CONFIGS / f"{name}.yaml", sets=["workload.batch.B=2"])
    res = simulate(cfg)
    cyc = res["cycles_exact"]
    for lv, t in res["traffic"].items():
        assert cyc >= t["reads"] / t["peak_read_bw"] - 1e-6, lv
        assert cyc >= t["writes"] / t["peak_write_bw"] - 1e-6, lv
    dram = res["traffic"]["DRAM"]
    assert cyc >= (dram["reads"] + dram["writes"]) / dram["peak_read_bw"] - 1e-6  # one shared channel
    assert res["traffic"]["GB"]["fills"] == dram["reads"] and res["traffic"]["GB"]["drains"] == dram["writes"]
    for u in res["utilization"].values():
        assert u["busy"] <= 1 and u["pe_util"] <= 1 + 1e-12 and u["mac_util"] <= 1 + 1e-12
    tab = _arch_table(arch)
    want = sum(n * tab[d["unit"]][a] for d in res["einsums"].values() for a, n in d["actions"].items())
    want += sum(t["reads"] * tab[lv]["read"] + t["writes"] * tab[lv]["write"] for lv, t in res["traffic"].items())
    assert math.isclose(res["energy_pj"]["total"], want, rel_tol=1e-12)
