"""examples/simba/resnet50-conv3.yaml on mapping/arch/simba-like.yaml, against hand closed forms.

The layer: K = C = 128, P = Q = 28, R = S = 3 (115,605,504 MACs). Four chiplets in 2 x 2 take a
quarter of K each (k_c = 32); a chiplet's 16 PEs are 4 K-groups (mesh X) by 4 C-groups (mesh Y);
a PE's 64 MACs are 8 C lanes by 8 K units. Per PE: 8 K x 32 C x 9 = 2,304 weights, a 32 x 3 x 3
input window, 8 outputs. The closed forms below are derived in each assertion's comment.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mapping.config import load_config
from sim.nest import simulate_nest

ROOT = Path(__file__).resolve().parents[2]
K = C = 128
P = Q = 28
R = S = 3
MACS = K * C * P * Q * R * S
CHIPLETS, PES, LANES = 4, 16, 64


@pytest.fixture(scope="module")
def res():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 3 KB accumulation buffer is below the SRAM table's points
        cfg = load_config(ROOT / "examples" / "simba" / "resnet50-conv3.yaml", allow_hierarchy=True)
    return simulate_nest(cfg)


def test_counts_per_level(res):
    lv = {x.name: x for x in res.levels}
    w_pe = 8 * 32 * R * S  # a PE's weights
    # the input window slides along q: per output row 288 words, then 27 columns of 32 x 3 new
    # words; 4 x 7 = 28 output rows per PE (DRAM's P blocks x the WeightBuffer's P loop)
    in_pe = 28 * (32 * 3 * 3 + (Q - 1) * 32 * 3)
    assert in_pe == 80_640
    want = {
        # each weight once; the input read once (its 9-row blocks overlap by 2 rows, kept); each
        # output written once (the 4 chiplets' quarters)
        ("DRAM", "Weights"): (K * C * R * S, 0, 0), ("DRAM", "Inputs"): (C * (P + 2) * (Q + 2), 0, 0),
        ("DRAM", "Outputs"): (0, 0, K * P * Q),
        # a chiplet's buffer: fills the whole input (30 rows in blocks of 9 sliding by 7); serves
        # each of its 4 C-groups the PEs' input fills once (a row of 4 PEs shares them: multicast);
        # its 32 K x 784 outputs arrive once each, reduced over the 4 C-groups
        ("GlobalBuffer", "Inputs"): (4 * in_pe, C * (P + 2) * (Q + 2), 0),
        ("GlobalBuffer", "Outputs"): (0, 0, 32 * P * Q),
        # a weight per MAC lane per step (28,224 steps x 64 lanes), filled once
        ("WeightBuffer", "Weights"): (MACS // (CHIPLETS * PES), w_pe, 0),
        # an input word per C lane per step, shared by the 8 K units: 28,224 x 8
        ("InputBuffer", "Inputs"): (MACS // (CHIPLETS * PES * 8), in_pe, 0),
        # per PE 8 outputs x 784 positions, each updated once per step of the PE's 4 C x 9 taps
        # (the 8 C lanes reduce spatially into one update): 36 updates, the first a write
        ("AccumulationBuffer", "Outputs"): (8 * 784 * 35, 0, 8 * 784 * 36),
    }
    for (name, t), (r, f, u) in want.items():
        s = lv[name].tensors[t]
        assert (s.reads, s.fills, s.updates) == (r, f, u), (name, t)
    assert res.compute_cycles == MACS // (CHIPLETS * PES * LANES) == 28_224


def test_package_network(res):
    """The 2 x 2 package mesh from the DRAM at chiplet (0, 0). Weights: each chiplet its own
    36,864 (unicasts at 0, 1, 1 and 2 hops: 4 hops per word of a quarter); Inputs: all 115,200
    to all four (a broadcast: 3 links each); Outputs: each chiplet's 25,088 up (4 hops per word
    of a quarter). Busiest (0,0)->(1,0): every input + the weights of the two x = 1 chiplets."""
    nw = {n.level: n for n in res.networks}["DRAM"]
    quarter_w, inputs, quarter_o = K * C * R * S // 4, C * (P + 2) * (Q + 2), K * P * Q // 4
    t = nw.tensors
    assert (t["Weights"].hops_out, t["Inputs"].hops_out, t["Outputs"].hops_in) == \
        (4 * quarter_w, 3 * inputs, 4 * quarter_o)
    assert (nw.busiest, nw.busiest_words) == ("(0,0)->(1,0)", inputs + 2 * quarter_w)
    assert nw.cycles == -(-(inputs + 2 * quarter_w) // 8)  # 8 words per cycle per link
    assert nw.energy_pj == pytest.approx(6.56 * (4 * quarter_w + 3 * inputs + 4 * quarter_o))
    assert nw.latency == 2 + 2  # (1, 1) is 2 hops away, down and up


def test_chiplet_network(res):
    """A chiplet's 4 x 4 mesh from the global buffer at PE (0, 0), x = K-group, y = C-group.
    Inputs of C-group y go to the 4 PEs of row y: 3 links along row 0, then y up each of the 4
    columns: 3 + 4y, summed over y = 36 per input word a PE takes (80,640). Weights: unicasts,
    sum of x + y over the mesh = 48 per PE's word (2,304). Outputs: per (p, q) the 8 outputs of
    K-group x reduce up column x and along row 0: x + 3 links, 8 x (6 + 12) = 144 per step, 784
    steps. Busiest (0,0)->(1,0): every input (4 x 80,640) + the weights of columns 1-3."""
    nw = {n.level: n for n in res.networks}["GlobalBuffer"]
    in_pe, w_pe = 80_640, 8 * 32 * R * S
    t = nw.tensors
    assert (t["Inputs"].hops_out, t["Weights"].hops_out, t["Outputs"].hops_in) == \
        (36 * in_pe, 48 * w_pe, 144 * P * Q)
    assert (t["Inputs"].words_out, t["Outputs"].words_in, t["Outputs"].words_out) == (4 * in_pe, 32 * P * Q, 0)
    assert (nw.busiest, nw.busiest_words) == ("(0,0)->(1,0)", 4 * in_pe + 12 * w_pe)
    assert nw.cycles == -(-(4 * in_pe + 12 * w_pe) // 16) == 21_888
    assert nw.utilized == 4 and nw.latency == 6 + 6


def test_cycles_and_energy_add_up(res):
    """Both networks' links keep up (23,616 and 21,888 < 28,224 compute cycles): compute-bound,
    plus the two networks' latencies once (4 + 12); the energy is the levels', the MACs' and
    the networks'. That is Timeloop's figure (the bound). On the timeline the single-buffered
    levels wait for their refills through the two meshes (each transfer: its busiest link's words,
    plus the hops): 73,892 cycles, of which 9,218 are the first weights' arrival, which double
    buffering cannot hide (45,257 with every level double buffered); without the networks (these
    levels have no bandwidth limits) the timeline is the 28,224 MAC steps."""
    from dataclasses import replace

    from sim.nest_timeline import nest_timeline

    assert res.bound_cycles == 28_224 + 16
    tl = res.timeline
    assert (res.cycles, tl.stalls, tl.drain) == \
        (73_892, {"GlobalBuffer": 10_086, "WeightBuffer": 9_218, "InputBuffer": 24_786}, 1_578)
    assert res.bound_by == "the timeline: waits for InputBuffer (24,786 cycles), drain 1,578"
    cfg = load_config(ROOT / "examples" / "simba" / "resnet50-conv3.yaml", allow_hierarchy=True)

    def arch(**kw):
        return replace(cfg, arch=replace(cfg.arch, levels=tuple(replace(lv, **kw) for lv in cfg.arch.levels)))

    db = nest_timeline(arch(double_buffered=True))
    assert (db.cycles, db.stalls["WeightBuffer"]) == (45_257, 9_218)
    assert nest_timeline(arch(network=None)).cycles == 28_224
    parts = sum(lv.energy_pj for lv in res.levels) + res.mac_energy_pj + sum(n.energy_pj for n in res.networks)
    assert res.energy_pj == pytest.approx(parts)
