"""Several cores (sim/multicore.py; the model in sim/engine.py, "Several cores"): the phases
they split the instances in, the fair share of the backing store and the network's cap,
latency and word-hops, each against a closed form."""

from __future__ import annotations

import pytest

from sim.results import simulate


def _gemm(cores, instances=1, dram_bw=8.0, M=16, N=16, K=16):
    """A GEMM on a 16 x 16 array (sim_helpers.gemm_arch) with ``arch.cores`` (None: none)."""
    from sim_helpers import config_from, gemm_arch

    arch = gemm_arch(16, 16, dram_bw=dram_bw)
    if cores is not None:
        arch["cores"] = cores
    return simulate(config_from({"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K},
                                              "instances": instances}, "arch": arch}))


def test_one_core_is_todays_engine():
    a, b = _gemm(None, 3), _gemm(1, 3)
    assert a == b and "cores" not in a


def test_cores_split_the_instances_in_phases_that_share_the_backing_store():
    # a 16^3 GEMM is one step: 512 words in, the systolic closed form C, 256 words out on a
    # shared channel of 8 words per cycle. 6 instances on 4 cores: 4 cores at 2 words per
    # cycle each, then 2 cores at 4: (512 * 4 + 256 * 4) / 8 + C + (512 * 2 + 256 * 2) / 8 + C
    from sim.systolic import systolic_cycles

    C = systolic_cycles(1, 16, 16, 16, "os")
    r = _gemm(4, 6)
    assert r["cycles_exact"] == 384 + 192 + 2 * C
    assert r["cores"]["instances_per_core"] == [2, 2, 1, 1]
    assert [(p["cores"], p["read_bw_each"]) for p in r["cores"]["phases"]] == [(4, 2.0), (2, 4.0)]
    one = _gemm(None, 6)
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
    r = _gemm({"count": 4, "noc": noc}, 6)
    assert r["cycles_exact"] == (1024 + 512 + 2 * 6 + C) + (512 + 256 + 2 * 3 + C)
    assert r["cores"]["noc"]["hops"] == [0, 1, 1, 2]
    assert r["cores"]["noc"]["word_hops"] == 768 * 4 + 768 * 1
    assert r["energy_pj"]["noc"] == 0.25 * 3840
    assert r["energy_pj"]["total"] == pytest.approx(_gemm(None, 6)["energy_pj"]["total"] + 960.0)


def test_idle_cores_are_named(recwarn):
    from einsum.errors import EinarrayWarning

    with pytest.warns(EinarrayWarning, match=r"arch.cores: 4 cores split the instance loop .* which has 2: "
                                             r"2 cores stay idle"):
        r = _gemm(4, 2)
    assert r["cores"]["instances_per_core"] == [1, 1, 0, 0]


def test_one_instance_is_cut_along_a_rank_when_that_is_faster():
    # C[16, 64] = A[16, 256] B[256, 64] on 16 x 16, 64 words per cycle. Cut along N (an output
    # rank no Einsum reduces, and larger than M; K is reduced, so it is never cut): each
    # of 4 cores loads all of A and a quarter of B, 4096 + 4096 words at 16 per cycle, does one
    # fold, writes 256 words. One core: 4096 + 16384 words at 64, four folds, 1024 words.
    from sim.systolic import systolic_cycles

    r, one = _gemm(4, dram_bw=64, N=64, K=256), _gemm(None, dram_bw=64, N=64, K=256)
    assert r["cycles_exact"] == 8192 / 16 + systolic_cycles(1, 256, 16, 16, "os") + 256 / 16
    assert one["cycles_exact"] == 20480 / 64 + systolic_cycles(4, 256, 16, 16, "os") + 1024 / 64
    assert r["cores"]["partition"] == "rank N (64 = 4 x 16)" and r["cores"]["instances_per_core"] == [1] * 4
    assert r["traffic"]["DRAM"]["reads"] == 4 * 8192  # A read by every core
    assert r["einsums"]["C"]["actions"] == one["einsums"]["C"]["actions"]


def test_a_rank_that_four_does_not_divide_is_cut_in_two_phases():
    # N = 66 = 4 x 16 + 2: four cores on 16 columns each (as above: 8192 words at 16 per
    # cycle, one fold, 256 words out), then 2 cores on one column each (all of A and one
    # column of B, 4096 + 256 words at 32 per cycle, one fold, 16 words out). M = 16 is a
    # multiple of 4 and is tried first, but cutting it makes every core read all of B: slower.
    from sim.systolic import systolic_cycles

    S = systolic_cycles(1, 256, 16, 16, "os")
    r, one = _gemm(4, dram_bw=64, N=66, K=256), _gemm(None, dram_bw=64, N=66, K=256)
    assert r["cycles_exact"] == (8192 / 16 + S + 256 / 16) + (4352 / 32 + S + 16 / 32)
    assert one["cycles_exact"] == (4096 + 256 * 66) / 64 + systolic_cycles(5, 256, 16, 16, "os") + 16 * 66 / 64
    assert r["cores"]["partition"] == "rank N (66 = 4 x 16 + 2 x 1, a second phase on 2 of the cores)"
    assert [(p["cores"], p["part"]) for p in r["cores"]["phases"]] == [(4, {"N": 16}), (2, {"N": 1})]
    assert r["traffic"]["DRAM"]["reads"] == 4 * 8192 + 2 * 4352
    assert r["einsums"]["C"]["actions"] == one["einsums"]["C"]["actions"]


@pytest.mark.parametrize("N,phase2", [(64, 0), (66, 256 / 32 + 4096 / 64 + 16 / 32)])
def test_multicast_reads_the_shared_operand_once(N, phase2):
    # as the two tests above, with cores: {multicast: true}: A (4096 words) is in every part,
    # so one read feeds the phase's cores: it costs each core 4096 / 64 cycles (the store's
    # whole bandwidth), its own quarter of B 4096 / 16; then 2 cores on a column each: 256
    # words of B at 32 per cycle, A at 64. DRAM reads: A once per phase, B once in all.
    from sim.systolic import systolic_cycles

    S = systolic_cycles(1, 256, 16, 16, "os")
    r = _gemm({"count": 4, "multicast": True}, dram_bw=64, N=N, K=256)
    assert r["cycles_exact"] == 4096 / 16 + 4096 / 64 + S + 256 / 16 + (phase2 + S if phase2 else 0)
    assert r["cores"]["multicast"] == ["A"]
    assert r["traffic"]["DRAM"]["reads"] == 4096 * (2 if phase2 else 1) + 256 * N
    plain = _gemm({"count": 4}, dram_bw=64, N=N, K=256)
    assert plain["cores"]["multicast"] == [] and plain["cycles_exact"] > r["cycles_exact"]


@pytest.mark.parametrize("cores,msg", [
    ({"count": 4, "multicast": "yes"}, "arch.cores.multicast: expected true or false"),
    ({"count": 4, "multicast": True, "noc": {"topology": "bus", "link_bw": 4}},
     "arch.cores.multicast: multicast over a noc: is not modelled"),
])
def test_multicast_errors_are_located(cores, msg):
    from einsum.errors import ConfigError

    with pytest.raises(ConfigError, match=msg):
        _gemm(cores)


def test_a_cut_that_would_be_slower_is_not_taken():
    # K = 16: one fold per quarter and four in all, but every core reading A costs more
    # than the folds save: one core runs it, the other three idle (and the choice says so)
    r, one = _gemm(4, N=64), _gemm(None, N=64)
    assert r["cycles_exact"] == one["cycles_exact"] and r["cores"]["partition"] == "instances"
    assert r["cores"]["instances_per_core"] == [1, 0, 0, 0]


def test_a_cut_that_cannot_be_made_is_named():
    # the cascade was given as data ("t.yaml" is no file): no part can be reloaded, so one
    # core runs it, and a warning says why
    from pathlib import Path

    from einsum.errors import EinarrayWarning
    from einsum.yamlsrc import loads
    from mapping.config import config_from_sections, load_section
    from sim_helpers import gemm_arch
    import yaml

    txt = yaml.safe_dump({"einsum": {"version": 1, "name": "mm", "ranks": {"M": 16, "N": 64, "K": 256},
                                     "inputs": {"A": ["M", "K"], "B": ["K", "N"]}, "outputs": ["C"],
                                     "expressions": ["C[m,n] = A[m,k] * B[k,n]"]},
                          "arch": {**gemm_arch(16, 16, dram_bw=64), "cores": 4}}, sort_keys=False)
    data, src = loads(txt, "t.yaml")
    secs = {k: load_section(data, src, k, Path(".")) for k in ("einsum", "arch")}
    cfg = config_from_sections(secs, src, Path("."))
    with pytest.warns(EinarrayWarning, match="mm: its rank N could be cut across 4 cores, but the cascade "
                                             "has no file to reload at the part's size: one core runs it") as w:
        r = simulate(cfg)
    assert len([x for x in w if issubclass(x.category, EinarrayWarning)]) == 1  # once, not per rank
    assert r["cores"]["partition"] == "instances" and r["cores"]["instances_per_core"] == [1, 0, 0, 0]


def test_multicast_fast_mode_equals_every_tile():
    """Many steps (64 x 198 x 96 in 16 x 16 tiles, cut along M): the steady-state
    multiplication agrees with stepping every tile, with and without multicast."""
    from sim_helpers import config_from, gemm_arch

    for cores in ({"count": 4, "multicast": True}, 4):
        arch = {**gemm_arch(16, 16, dram_bw=8), "cores": cores}
        cfg = config_from({"workload": {"cascade": "gemm", "ranks": {"M": 64, "N": 198, "K": 96}}, "arch": arch,
                           "mapping": {"version": 1, "groups": [{"name": "g", "einsums": ["C"],
                                                                 "tiles": {"GB": {"M": 16, "N": 16}}}]}})
        fast, every = simulate(cfg), simulate(cfg, fast=False)
        assert fast["cycles_exact"] == every["cycles_exact"] and fast["traffic"] == every["traffic"]
        assert fast["cores"]["partition"] == "rank M (64 = 4 x 16)"
        # B (96 x 198) is read whole by every core's part, once with multicast
        assert fast["cores"]["multicast"] == (["B"] if isinstance(cores, dict) else [])
