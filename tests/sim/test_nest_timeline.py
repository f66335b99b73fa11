"""sim.nest_timeline: the stepped schedule of a mapped hierarchy, against the enumerating oracle
(tests/sim/timeline_oracle.py: every step, explicit point sets, absolute times, no clamping) on
random nests, against sim.nest's counts (the words it moves), and against the closed forms of
single and double buffering."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from fractions import Fraction

import pytest

from mapping.config import load_config
from mapping.hierarchy import Banks
from sim.nest import build_loops, nest_counts, simulate_nest
from sim.nest_timeline import nest_timeline
from tests.sim.test_nest import RANDOM_PROBLEMS, _random_nest, rooted_variants
from tests.sim.timeline_oracle import oracle_timeline

BIG = {  # larger steps counts, so loops repeat and the memo and the clamp are exercised
    "gemm-big": ("{M: 8, K: 12, N: 8}", "{A: [M, K], B: [K, N]}", "O[m, n] = A[m, k] * B[k, n]"),
    "conv1d-big": ('{K: 4, R: 3, P: 24, H: "P + R - 1"}', "{W: [K, R], I: [H]}", "O[k, p] = W[k, r] * I[p + r]"),
    "conv2d-big": ('{K: 4, C: 2, R: 3, S: 2, P: 4, Q: 6, H: "P + R - 1", V: "Q + S - 1"}',
                   "{W: [K, C, R, S], I: [C, H, V]}", "O[k, p, q] = W[k, c, r, s] * I[c, p + r, q + s]"),
}


def _with_bandwidths(cfg, seed: int):
    """``cfg`` with random read/write bandwidths (none, fractional, ample), buffering, block sizes,
    ports and banks (interleaved, or partitioned per tensor) per level."""
    rng = random.Random(seed * 7 + 1)
    names = [o.name for o in cfg.operands]

    def banks():
        k = rng.random()
        if k < 0.5:
            return None
        bw = rng.choice([Fraction(1), Fraction(1, 2), Fraction(3)])
        if k < 0.75:
            return Banks(rng.choice([2, 4]), bw)
        assign = {t: rng.choice([1, 2]) for t in names}
        return Banks(sum(assign.values()), bw, assign)

    levels = tuple(replace(lv, read_bw=rng.choice([None, Fraction(1), Fraction(2), Fraction(3, 2), Fraction(8)]),
                           write_bw=rng.choice([None, Fraction(1), Fraction(2), Fraction(1, 2), Fraction(6)]),
                           double_buffered=rng.random() < 0.5, block_size=rng.choice([1, 1, 2, 4]),
                           ports=rng.choice([None, None, 1, 2, 3]), banks=banks()) for lv in cfg.arch.levels)
    return replace(cfg, arch=replace(cfg.arch, levels=levels))


def _load(problem: str, seed: int, tmp_path, monkeypatch):
    monkeypatch.setitem(RANDOM_PROBLEMS, problem, (RANDOM_PROBLEMS | BIG)[problem])
    p = tmp_path / "c.yaml"
    p.write_text(_random_nest(problem, seed))
    return load_config(p, allow_hierarchy=True)


@pytest.mark.parametrize("problem", sorted(RANDOM_PROBLEMS) + sorted(BIG))
def test_the_closed_form_equals_stepping_every_step(problem, tmp_path, monkeypatch):
    """Cycles, MAC cycles, stalls per level and drain equal the oracle's, on 12 random nests per
    problem (factors, orders, X/Y splits, keep/bypass) with random bandwidths, buffering, block
    sizes, ports and banks."""
    stalled = 0
    for seed in range(12):
        cfg = _with_bandwidths(_load(problem, seed, tmp_path, monkeypatch), seed)
        got, (want, _) = nest_timeline(cfg), oracle_timeline(cfg)
        assert (got.cycles, got.compute, got.stalls, got.drain) == \
            (want.cycles, want.compute, want.stalls, want.drain), seed
        stalled += bool(got.stalls)
    assert stalled >= 6  # the random bandwidths do throttle


@pytest.mark.parametrize("problem", sorted(RANDOM_PROBLEMS))
def test_the_words_it_moves_are_the_exact_counts(problem, tmp_path, monkeypatch):
    """Each level's words taken in over the timeline (inputs' deltas, the output's read-backs of
    words written before) equal sim.nest's fills with extrapolation off: D, and D - P for the
    output (its first write into zero is no fill)."""
    for seed in range(10):
        cfg = replace(_load(problem, seed, tmp_path, monkeypatch), extrapolate=False)
        loops = build_loops(cfg)
        raw = nest_counts(cfg, loops)
        _, words = oracle_timeline(cfg)
        assert words
        for (c, t), w in words.items():
            tile, P, D, U = raw[(c, t)]
            inst = math.prod(lp.factor for lp in loops if lp.spatial and lp.level < c)
            out = next(o for o in cfg.operands if o.name == t).is_output
            assert w * inst == (D - P if out else D), (seed, c, t)


GEMM = """einsum:
  version: 1
  name: gemm
  ranks: {M: 4, K: 8, N: 1}
  inputs: {A: [M, K], B: [K, N]}
  outputs: [O]
  expressions:
    - O[m, n] = A[m, k] * B[k, n]
arch:
  version: 1
  name: two-level
  clock_hz: 1.0e9
  hierarchy:
    - {name: DRAM, energy: {read: 1.0}}
    - {name: Buffer, capacity_words: 64, write_bw: WBW, double_buffered: DB, keeps: [A]}
  compute: {name: MAC, energy: {compute: 1.0}}
mapping:
  version: 1
  nest:
    DRAM: {temporal: {M: 4}}
    Buffer: {temporal: {K: 8}}
"""


@pytest.mark.parametrize("wbw, x", [("0.5", 16), ("2", 4)])
@pytest.mark.parametrize("db", [False, True])
def test_single_and_double_buffering_closed_forms(tmp_path, wbw, x, db):
    """The buffer takes an 8-word row of A per m (x = 8 / write_bw cycles) and the MACs spend
    W = 8 cycles on it, N = 4 times. Single buffered, refill and MACs alternate: N (x + W).
    Double buffered, the next row comes in during the MACs: x + (N - 1) max(x, W) + W."""
    p = tmp_path / "g.yaml"
    p.write_text(GEMM.replace("WBW", wbw).replace("DB", str(db).lower()))
    res = simulate_nest(load_config(p, allow_hierarchy=True))
    N, W = 4, 8
    want = x + (N - 1) * max(x, W) + W if db else N * (x + W)
    assert (res.compute_cycles, res.timeline.compute, res.cycles) == (32, 32, want)
    assert res.timeline.stalls == {"Buffer": want - 32}
    assert res.bound_cycles == max(32, math.ceil(Fraction(32) / Fraction(wbw)))  # Timeloop's: traffic averaged


def test_no_bandwidth_no_stall():
    """Without bandwidths the timeline is the MACs' steps: every shipped Timeloop exercise."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples" / "timeloop"
    for f in sorted(root.glob("0*.yaml")):
        res = simulate_nest(load_config(f, allow_hierarchy=True))
        assert res.cycles == res.bound_cycles == res.compute_cycles == res.timeline.cycles, f.name
        assert res.bound_by == "compute"


@pytest.mark.parametrize("problem", ["conv1d-stride2", "conv2d", "gemm", "skew2", "flip", "conv1d"])
def test_networks_on_the_timeline_equal_the_oracle(problem, tmp_path):
    """With networks on L0, L1 and L2 (random mesh sources or a bus; tests/sim/test_network.py's
    random configs): each transfer's words on every link (explicit XY trees in the oracle), the
    busiest link over link_words plus hop_latency x the deepest destination, and the MACs' per-step
    operands through the networks, equal the oracle's, with random bandwidths and buffering."""
    from tests.sim.test_network import _random_network_config

    slowed = 0
    for seed in range(8):
        p = tmp_path / "c.yaml"
        p.write_text(_random_network_config(problem, seed))
        cfg = _with_bandwidths(load_config(p, allow_hierarchy=True), seed)
        got, (want, _) = nest_timeline(cfg), oracle_timeline(cfg)
        assert (got.cycles, got.compute, got.stalls, got.drain, got.step_cycles[0] > 0) == \
            (want.cycles, want.compute, want.stalls, want.drain, True), seed
        plain = nest_timeline(replace(cfg, arch=replace(cfg.arch, levels=tuple(
            replace(lv, network=None) for lv in cfg.arch.levels))))
        slowed += got.cycles > plain.cycles
    assert slowed >= 4  # the networks do cost time


@pytest.mark.parametrize("config, sets", [
    ("examples/timeloop/designs/eyeriss_like.yaml", []),  # 86,016 steps, bandwidths, 168 PEs
    ("examples/simba/resnet50-conv3.yaml", ["arch.hierarchy.2.double_buffered=true"]),  # two meshes
    ("examples/timeloop/01-conv1d-2level-os.yaml", ["arch.hierarchy.1.banks={count: 2, bandwidth: 0.5}",
                                                     "arch.hierarchy.0.read_bw=0.5"]),
])
def test_every_tile_steps_the_timeline_and_agrees(config, sets, capsys):
    """``einarray simulate --every-tile`` on a hierarchy arch runs the timeline step by step (no
    memo, no multiplied-out cycles, no clamp) and prints the same result as the closed form."""
    from pathlib import Path

    from einarray.cli import main

    root = Path(__file__).resolve().parents[2]
    args = ["simulate", str(root / config), "--json"] + [x for s in sets for x in ("--set", s)]
    outs = []
    for extra in ([], ["--every-tile"]):
        assert main(args + extra) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert outs[0]["timeline"]["stalls"]  # not a trivial timeline


def test_every_tile_refuses_a_nest_too_long_to_step(capsys):
    from pathlib import Path

    from einarray.cli import main

    cfg = Path(__file__).resolve().parents[2] / "reports" / "architectures" / "configs" / "bert-qkv@eyeriss-like.yaml"
    assert main(["simulate", str(cfg), "--every-tile"]) == 2
    err = capsys.readouterr().err
    assert "--every-tile: the nest has 6,291,456 steps, more than 1,000,000" in err


@pytest.mark.parametrize("problem", ["conv1d", "gemm", "conv2d"])
def test_a_chain_kept_on_chip_equals_the_oracle(problem, tmp_path, monkeypatch):
    """A tensor a cascade keeps on chip (mapping.on_chip) has its backing store below the
    outermost level: nothing above it moves it, on the timeline as in the counts. The output, then
    an input, rooted at its first keeper below L0, on random nests with random bandwidths."""
    checked = 0
    for seed in range(6):
        cfg = _with_bandwidths(_load(problem, seed, tmp_path, monkeypatch), seed)
        for t, _, rooted in rooted_variants(cfg):
            got, (want, _) = nest_timeline(rooted), oracle_timeline(rooted)
            assert (got.cycles, got.compute, got.stalls, got.drain) == \
                (want.cycles, want.compute, want.stalls, want.drain), (seed, t)
            checked += 1
    assert checked >= 6
