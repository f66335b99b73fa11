"""sim.nest on Timeloop's own example design eyeriss_like (examples/timeloop/designs/), against
its reference outputs (tests/expected/timeloop-designs/eyeriss_like.json, transcribed from
Accelergy-Project/timeloop-accelergy-exercises, workspace/example_designs/example_designs/
eyeriss_like/ref_outputs/default_problem/: map.txt and stats.txt @ 67b75f2, ERT and problem
@ ac42b26): the same mapping, every figure compared.

Every count, tile, partition and energy equals Timeloop's but three groups, which follow from
three counting choices where einarray and Timeloop differ (diagnosed in Timeloop's source,
NVlabs/timeloop @ 4cf6d4c): the global buffer's Inputs reads (einarray reads each distinct word
the PEs' overlapping windows need once per step; Timeloop, here, once per PE), the ifmap
scratchpad's Inputs partition (what one PE holds, against Timeloop's scaled estimate in
``ComputePartitionSizes``) and leakage (all instances, against Timeloop's utilized ones in
``ComputeLeaksPerCycle``). Those are asserted as the closed forms of both sides, and the
reference's total energy follows from ours and the three differences.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mapping.config import load_config
from sim.nest import simulate_nest
from sim.nest_text import map_text

ROOT = Path(__file__).resolve().parents[2]
REF = json.loads((ROOT / "tests" / "expected" / "timeloop-designs" / "eyeriss_like.json").read_text())
HALF_CENT = 0.005 + 1e-9
# (level, tensor, field) where einarray's count differs by design, and both sides' closed forms
PER_FILL = 10752  # one PE's ifmap fills over the run
DIFFER = {("shared_glb", "Inputs", "reads"): (87 * PER_FILL, 126 * PER_FILL),  # 3 channels x 29 windows
          ("shared_glb", "Inputs", "addr_gens"): (87 * PER_FILL + 157296, 126 * PER_FILL + 157296),
          ("ifmap_spad", "Inputs", "partition"): (225 * 8, 151875 * 3 // (3 * 3 * 29))}


@pytest.fixture(scope="module")
def run():
    cfg = load_config(ROOT / "examples" / "timeloop" / "designs" / "eyeriss_like.yaml", allow_hierarchy=True)
    return cfg, simulate_nest(cfg)


def test_counts_per_level_and_tensor(run):
    _, res = run
    assert [lv.name for lv in res.levels] == list(REF["levels"])
    for lv in res.levels:
        want = REF["levels"][lv.name]["tensors"]
        assert list(lv.tensors) == list(want)
        for t, s in lv.tensors.items():
            got = {"reads": s.reads, "fills": s.fills, "updates": s.updates, "partition": s.partition,
                   "tile": s.tile, "utilized": lv.utilized, "addr_gens": s.addr_gens,
                   "temporal_reductions": s.temporal_reductions}
            for k, v in got.items():
                if (lv.name, t, k) in DIFFER:
                    ours, theirs = DIFFER[(lv.name, t, k)]
                    assert (v, want[t][k]) == (ours, theirs), (lv.name, t, k)
                else:
                    assert v == want[t][k], (lv.name, t, k)


def test_cycles_compute_and_mapping(run):
    cfg, res = run
    # Timeloop's cycles are its bound (every transfer overlapped); they are einarray's bound_cycles
    assert (res.bound_cycles, res.computes, res.macs_utilized) == (REF["cycles"], REF["computes"], REF["mac_utilized"])
    assert res.computes / (res.bound_cycles * res.mac_instances) == REF["utilization"]
    assert round(res.ops["total"] / res.bound_cycles * res.clock_hz / 1e9, 2) == REF["gflops"]
    assert abs(res.mac_energy_pj - REF["mac_energy_pj"]) <= HALF_CENT
    assert {k: res.ops[k] for k in ("elementwise", "reduction", "total")} == \
        {k: REF["ops"][k] for k in ("elementwise", "reduction", "total")}
    assert res.required_words == REF["ops"]["memory_accesses_required"]
    # map.txt: Timeloop's two placeholder levels (blank line, name, rule) carry the spatial loops
    # that einarray gives the global buffer
    ref = REF["map_txt"].rstrip("\n").split("\n")
    keep, skip = [], 0
    for line in ref:
        if skip:
            skip -= 1
            continue
        if line.startswith(("inter_PE_column_spatial", "inter_PE_spatial")):
            keep.pop()  # the blank line before it
            skip = 1  # its rule
            continue
        keep.append(line)
    assert map_text(cfg).split("\n") == keep


def test_energy_equal_but_for_the_three_choices(run):
    cfg, res = run
    E = {lv.name: lv.energy for lv in cfg.arch.levels}
    for lv in res.levels:
        want = REF["levels"][lv.name]
        for t, s in lv.tensors.items():
            if lv.name == "shared_glb" and t == "Inputs":  # the reads differ: energy per block read
                reads = math.ceil(s.reads / 8), math.ceil(DIFFER[(lv.name, t, "reads")][1] / 8)
                fills = math.ceil(s.fills / 8) * E[lv.name]["write"]
                assert abs(s.energy_pj - (reads[0] * E[lv.name]["read"] + fills)) < 1e-6
                assert abs(want["tensors"][t]["energy_total_pj"] - (reads[1] * E[lv.name]["read"] + fills)) <= HALF_CENT
            else:
                assert abs(s.energy_pj - want["tensors"][t]["energy_total_pj"]) <= HALF_CENT, (lv.name, t)
        # leakage: every instance over the timeline here, the utilized ones over the bound in Timeloop
        assert abs(lv.leak_pj - E[lv.name]["leak"] * res.cycles * lv.instances) < 1e-6
        assert abs(want["leak_pj"] - E[lv.name]["leak"] * res.bound_cycles * lv.utilized) <= HALF_CENT, lv.name
    # the reference's total follows from ours and the three differences
    glb = next(lv for lv in res.levels if lv.name == "shared_glb")
    d_read = (math.ceil(DIFFER[("shared_glb", "Inputs", "reads")][1] / 8) - math.ceil(
        glb.tensors["Inputs"].reads / 8)) * E["shared_glb"]["read"]
    d_leak = sum(E[lv.name]["leak"] * (res.bound_cycles * lv.utilized - res.cycles * lv.instances)
                 for lv in res.levels)
    theirs = (res.energy_pj + d_read + d_leak) / res.computes * 1e3
    assert abs(theirs - REF["breakdown"]["Total"]) <= HALF_CENT
    assert abs(res.energy_pj / res.computes * 1e3 - 5384.91) <= HALF_CENT  # ours (leak over the timeline), for the record


def test_the_timeline_shows_what_overlap_timeloop_assumes(run):
    """Timeloop's 86,016 cycles take every refill as hidden behind the MACs. Stepped, the single-
    buffered levels stall the MACs: each of the 3,584 ifmap scratchpad refills waits 17 cycles
    for the global buffer to send the union of the 126 PEs' windows at 16 words per cycle
    (60,928), the global buffer's own refills from DRAM at 16 words per cycle add 28,656, and
    the last psums drain in 399: 175,999 cycles. Double buffering the global buffer alone gives
    147,958, the ifmap scratchpads alone 140,799; every level, 87,047: Timeloop's cycles plus
    the first tiles' arrival (615 + 17) and the drain."""
    from dataclasses import replace

    from sim.nest_timeline import nest_timeline

    cfg, res = run
    tl = res.timeline
    assert (res.cycles, tl.cycles, tl.compute, tl.stalls, tl.drain) == \
        (175999, 175999, 86016, {"shared_glb": 28656, "ifmap_spad": 60928}, 399)
    assert 60928 == 3584 * 17
    assert res.bound_by == "the timeline: waits for ifmap_spad (60,928 cycles), drain 399"

    def buffered(*names):
        return replace(cfg, arch=replace(cfg.arch, levels=tuple(
            replace(lv, double_buffered=lv.name in names) for lv in cfg.arch.levels)))

    assert nest_timeline(buffered("shared_glb")).cycles == 147958
    assert nest_timeline(buffered("ifmap_spad")).cycles == 140799
    tl2 = nest_timeline(buffered(*(lv.name for lv in cfg.arch.levels)))
    assert (tl2.cycles, tl2.stalls, tl2.drain) == (87047, {"shared_glb": 615, "ifmap_spad": 17}, 399)
    assert tl2.cycles - sum(tl2.stalls.values()) - tl2.drain == REF["cycles"]
