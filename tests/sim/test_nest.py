"""sim.nest against Timeloop's published reference outputs of its tutorial exercises.

Each ``examples/timeloop/<exercise>.yaml`` is loaded through the normal config loader, run, and
every number of ``tests/expected/timeloop/<exercise>.json`` (transcribed from
``/work/shared/reference/timeloop/<exercise>.md``, which cites the upstream files) is checked:
per level and tensor the reads, fills and updates per instance, the partition size, the tile
(utilized capacity), the utilized instances, address generations, temporal reductions and the
energy (total, per instance, per scalar access); each level's leakage, scalar accesses and ops
per byte; the cycles, utilization, GFLOPs, EDP, the MAC count, energy and area, the operation
counts; the per-level energy breakdown (fJ per compute, or pJ per MAC for the 2020 outputs) and
the map.txt loop nest, all to the precision Timeloop printed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from einarray.cli import main
from mapping.config import load_config
from sim.nest import simulate_nest
from sim.nest_text import map_text

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = ROOT / "tests" / "expected" / "timeloop"
EXERCISES = sorted(p.stem for p in EXPECTED.glob("*.json"))
HALF_CENT = 0.005 + 1e-9  # Timeloop prints 2 decimals


def test_every_reference_has_an_example():
    assert len(EXERCISES) == 11
    assert sorted(p.stem for p in (ROOT / "examples" / "timeloop").glob("*.yaml")) == EXERCISES


@pytest.fixture(scope="module", params=EXERCISES)
def case(request):
    ref = json.loads((EXPECTED / f"{request.param}.json").read_text())
    cfg = load_config(ROOT / "examples" / "timeloop" / f"{request.param}.yaml", allow_hierarchy=True)
    return request.param, ref, cfg, simulate_nest(cfg)


def test_counts_per_level_and_tensor(case):
    name, ref, _, res = case
    assert [lv.name for lv in res.levels] == list(ref["levels"]), name
    for lv in res.levels:
        want = ref["levels"][lv.name]["tensors"]
        assert list(lv.tensors) == list(want), (name, lv.name)
        for t, s in lv.tensors.items():
            w = want[t]
            got = {"reads": s.reads, "fills": s.fills, "updates": s.updates, "partition": s.partition,
                   "tile": s.tile, "utilized": lv.utilized, "addr_gens": s.addr_gens,
                   "temporal_reductions": s.temporal_reductions}
            assert got == {k: w[k] for k in got}, (name, lv.name, t)


def test_cycles_and_compute(case):
    name, ref, _, res = case
    assert res.cycles == ref["cycles"] and res.compute_cycles == ref["cycles"]
    assert res.computes == ref["computes"]
    assert res.macs_utilized == ref["mac_utilized"]
    assert abs(res.mac_energy_pj - ref["mac_energy_pj"]) <= HALF_CENT


def test_energy_per_tensor_and_leakage(case):
    name, ref, _, res = case
    for lv in res.levels:
        want = ref["levels"][lv.name]
        for t, s in lv.tensors.items():
            w = want["tensors"][t]
            assert abs(s.energy_pj - w["energy_total_pj"]) <= HALF_CENT, (name, lv.name, t)
            per_instance = s.energy_pj / lv.utilized
            assert abs(per_instance - w["energy_per_instance_pj"]) <= HALF_CENT, (name, lv.name, t)
            assert abs(per_instance / float(s.accesses) - w["energy_per_access_pj"]) <= HALF_CENT
        if "leak_pj" in want:
            assert abs(lv.leak_pj - want["leak_pj"]) <= HALF_CENT, (name, lv.name)


def test_summary_and_operational_intensity(case):
    """GFLOPs, utilization, EDP, MAC area, operation counts and ops per byte as Timeloop prints them."""
    name, ref, _, res = case
    assert res.utilization == ref["utilization"]
    assert res.mac_area_um2 == ref["mac_area_um2"]
    if "gflops" in ref:
        assert abs(res.gflops - ref["gflops"]) <= HALF_CENT
    if "edp_j_cycle" in ref:
        assert f"{res.edp_j_cycle:.2e}" == ref["edp_j_cycle"]
    if "ops" in ref:
        ops = ref["ops"]
        assert res.ops == {k: ops[k] for k in ("elementwise", "reduction", "total")}
        assert res.required_words == ops["memory_accesses_required"]
        assert abs(res.ops["total"] / res.required_words - ops["optimal_op_per_byte"]) <= HALF_CENT
    for lv in res.levels:
        want = ref["levels"][lv.name]
        if "scalar_accesses" in want:
            assert lv.scalar_accesses == want["scalar_accesses"], (name, lv.name)
            assert abs(res.op_per_byte(lv) - want["op_per_byte"]) <= HALF_CENT, (name, lv.name)


def test_energy_breakdown(case):
    """Timeloop's breakdown per level (fJ/compute to 2 decimals; 2020: pJ/MAC to 2 decimals)."""
    name, ref, cfg, res = case
    scale = 1e3 if ref["breakdown_unit"] == "fJ/compute" else 1.0
    got = {lv.name: lv.energy_pj for lv in res.levels}
    got[cfg.arch.compute.name] = res.mac_energy_pj
    got["Total"] = res.energy_pj
    assert set(got) == set(ref["breakdown"])
    for k, v in ref["breakdown"].items():
        assert abs(got[k] / res.computes * scale - v) <= HALF_CENT, (name, k)
    if "total_energy_pj" in ref:  # 2020: Total topology energy, pJ
        assert abs(res.energy_pj - ref["total_energy_pj"]) <= HALF_CENT


def test_map_txt(case):
    """The loop nest as Timeloop's map.txt. Exercise 04's 2024 nest carries its fan-out in a
    placeholder level (``inter_PE_spatial [ ]``, keeping nothing) that einarray does not need:
    the spatial loop is MainMemory's; compared without the placeholder's two lines and the
    MainMemory rule they displace."""
    name, ref, cfg, _ = case
    if "map_txt" not in ref:
        pytest.skip("the 2020 map.txt format (no utilized capacities, factor-1 loops) is not produced")
    got, want = map_text(cfg).splitlines(), ref["map_txt"].splitlines()
    if want[1].startswith("inter_PE_spatial [ ]"):
        want = [want[0]] + want[3:]
        assert got[1] == "-" * len(want[0].rstrip())
        got = [got[0]] + got[2:]
    assert got == want


@pytest.mark.parametrize("name", ["01-conv1d-2level-ws", "04-conv1d+oc+ic-3levelspatial-kp"])
def test_cli_table_json_and_nest(name, capsys):
    cfg = str(ROOT / "examples" / "timeloop" / f"{name}.yaml")
    assert main(["simulate", cfg, "--json", "--show-mapping"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = json.loads((EXPECTED / f"{name}.json").read_text())
    assert out["cycles"] == ref["cycles"]
    for lname, lv in ref["levels"].items():
        for t, w in lv["tensors"].items():
            got = out["levels"][lname]["tensors"][t]
            assert (got["reads"], got["fills"], got["updates"]) == (w["reads"], w["fills"], w["updates"])
    assert out["loop_nest"] == map_text(load_config(cfg, allow_hierarchy=True))
    assert out["loop_nest"].splitlines()[-1].lstrip("| ") == "<< Compute >>"
    assert main(["simulate", cfg, "--show-mapping"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(out["loop_nest"] + "\n")
    assert f"{ref['cycles']:,} cycles" in text


def test_cli_rejects_array_only_options(capsys):
    cfg = str(ROOT / "examples" / "timeloop" / "00-conv1d-1level.yaml")
    assert main(["simulate", cfg, "--functional"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["einarray simulate: error: --functional applies to array configs, not to a memory-hierarchy arch"]


# ------------------------------------------------------------------------------------
# The delta rule on its own, against hand counts (independent of the reference files)
def _cfg(tmp_path, nest: str, problem: str = "conv1d", arch: str = "2level") -> object:
    p = tmp_path / "c.yaml"
    ex = ROOT / "examples" / "timeloop"
    p.write_text(f"einsum: {ex / 'problems' / problem}.yaml\narch: {ex / 'arch' / arch}.yaml\n"
                 f"mapping:\n  version: 1\n  nest:\n{nest}")
    return load_config(p, allow_hierarchy=True)


def test_sliding_window_that_turns_back_is_refetched(tmp_path):
    """Buffer tile = Inputs[r+8*p2 .. r+8*p2+7] under ``for P2 / for R``: the window slides +1,
    +1, then jumps +6 when P2 steps, a change of stride, so Timeloop refetches it whole:
    (8 + 1 + 1) per P2 iteration = 20, where the plain set difference would give 18."""
    cfg = _cfg(tmp_path, "    MainMemory: {temporal: {P: 2, R: 3}}\n    Buffer: {temporal: {P: 8}}\n")
    res = simulate_nest(cfg)
    buf = res.levels[1].tensors["Inputs"]
    assert buf.tile == 8 and buf.fills == 2 * (8 + 1 + 1)
    assert res.levels[0].tensors["Inputs"].reads == buf.fills  # the parent serves every fill


def test_output_reads_are_updates_minus_first_writes(tmp_path):
    """Outputs in the register file under ``for R / for P``: 48 updates (one per MAC); the first
    of each of the 16 elements is a write, so 32 reads; it drains 16 x 3 times to main memory,
    which reads back the 32 partial sums it refills (fills 48 - 16 = 32)."""
    cfg = _cfg(tmp_path, "    MainMemory: {temporal: {R: 3, P: 16}}\n    Buffer: {}\n")
    res = simulate_nest(cfg)
    mm, buf = res.levels[0].tensors["Outputs"], res.levels[1].tensors["Outputs"]
    assert (buf.updates, buf.reads, buf.fills) == (48, 32, 32)
    assert (mm.updates, mm.reads) == (48, 32)


def test_bandwidth_bound_cycles_through_set(capsys):
    """A register file that reads half a word per cycle. Timeloop's bound: its 48 + 48 + 32 =
    128 reads take 256 cycles, more than the 48 MACs. The timeline (closed form): each of the 16
    output positions (P at MainMemory, R = 3 inside) takes 2 words / 0.5 = 4 cycles at r = 0
    (the output's first write reads nothing) and 3 / 0.5 = 6 at r = 1, 2: 16 x 16 = 256; each
    of the 15 later output moves writes one word back, read at 0.5 (2 cycles, the single buffer
    waits); the last output word drains in max(1 / 0.5, 1 / 1) = 2. So 256 + 30 + 2 = 288, and
    the run leaks for 288."""
    cfg = str(ROOT / "examples" / "timeloop" / "01-conv1d-2level-os.yaml")
    assert main(["simulate", cfg, "--json", "--set", "arch.hierarchy.1.read_bw=0.5",
                 "--set", "arch.hierarchy.0.write_bw=1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["compute_cycles"], out["bound_cycles"], out["cycles"]) == (48, 256, 288)
    assert out["timeline"] == {"cycles": 288, "steps": 48, "step_cycles": [4, 6], "compute": 256,
                               "stalls": {"Buffer": 30}, "drain": 2, "buffering": {"Buffer": "single"}}
    assert out["levels"]["Buffer"]["cycles"] == 256
    assert out["levels"]["MainMemory"]["cycles"] == 16  # 16 output updates at 1 word per cycle
    assert out["levels"]["Buffer"]["leak_pj"] == pytest.approx(0.000861 * 288)
    assert out["utilization"] == pytest.approx(48 / 288)
    assert main(["simulate", cfg, "--set", "arch.hierarchy.1.read_bw=0.5"]) == 0
    text = capsys.readouterr().out
    assert "288 cycles (bound by the timeline: waits for Buffer (30 cycles), drain 2, MAC steps of 4-6 cycles" in text
    assert ("timeline: 288 cycles = 256 MAC steps (48 steps at 4 cycles before the output's first write, "
            "6 after) + 30 waiting for Buffer + 2 drain; buffering: Buffer single (double_buffered); "
            "Timeloop's bound: 256 cycles") in text


@pytest.mark.parametrize("extrapolate", [True, False])
def test_a_25m_mac_nest_counts_in_closed_form(tmp_path, extrapolate):
    """P = 2**23, R = 3, every loop in main memory (25M MACs; the point-set walk refused it):
    the global buffer and register file hold 1-word tiles that move at every MAC, except
    Outputs[p], which stays put across R. Hand counts with N = 2**23, in both counting modes:
    Weights and Inputs take 3N fills at each level and 3N reads at the parent; the register
    file's Outputs take 3N updates (one per MAC), 2N reads (the first update of each of the N
    elements is a write) and no fills (each p is drained once, never refetched); the buffer's
    Outputs take N updates, main memory's N. Counted in closed form: well under a second."""
    import time

    N = 2 ** 23
    p = tmp_path / "big.yaml"
    ex = ROOT / "examples" / "timeloop"
    p.write_text(f"einsum: {ex / 'problems' / 'conv1d'}.yaml\narch: {ex / 'arch' / '3level'}.yaml\n"
                 f"mapping:\n  version: 1\n  nest:\n    MainMemory: {{temporal: {{P: {N}, R: 3}}}}\n"
                 f"  counting: {{extrapolate: {str(extrapolate).lower()}}}\n")
    t0 = time.perf_counter()
    res = simulate_nest(load_config(p, allow_hierarchy=True, ranks={"P": N}))
    assert time.perf_counter() - t0 < 10  # a regression to enumeration takes minutes
    mm, gb, rf = ({t: (s.reads, s.fills, s.updates) for t, s in lv.tensors.items()} for lv in res.levels)
    assert mm == {"Weights": (3 * N, 0, 0), "Inputs": (3 * N, 0, 0), "Outputs": (0, 0, N)}
    assert gb == {"Weights": (3 * N, 3 * N, 0), "Inputs": (3 * N, 3 * N, 0), "Outputs": (0, 0, N)}
    assert rf == {"Weights": (3 * N, 3 * N, 0), "Inputs": (3 * N, 3 * N, 0), "Outputs": (2 * N, 0, 3 * N)}
    assert res.cycles == 3 * N


def test_exact_walk_agrees_on_every_exercise():
    """Timeloop's temporal extrapolation (the default) and the walk over every iteration
    (``counting.extrapolate: false``, TIMELOOP_DISABLE_TEMPORAL_EXTRAPOLATION) give the same
    counts on all eleven reference nests."""
    import dataclasses

    for name in EXERCISES:
        cfg = load_config(ROOT / "examples" / "timeloop" / f"{name}.yaml", allow_hierarchy=True)
        a, b = simulate_nest(cfg), simulate_nest(dataclasses.replace(cfg, extrapolate=False))
        assert a.as_dict() == b.as_dict(), name


def test_extrapolation_differs_where_a_window_crosses_an_outer_step(tmp_path):
    """p = 8 p2 + p8 with P2 in main memory, P8 in the global buffer and R in the register file:
    the 3-word Inputs window slides by +1 across all 16 positions. Walking every iteration,
    the P2 step is one more +1 slide: 3 + 15 = 18 fills. Timeloop's extrapolation runs p8 = 0
    and p8 = 1 (x 7) only, so the next P2 iteration jumps +7 from p8 = 1, a change of stride,
    and refetches the window: (3 + 7) x 2 = 20, what Timeloop reports."""
    nest = ("    MainMemory: {temporal: {P: 2}}\n    GlobalBuffer: {temporal: {P: 8}}\n"
            "    RegisterFile: {temporal: {R: 3}}\n")
    ext = simulate_nest(_cfg(tmp_path, nest, arch="3level"))
    exact = simulate_nest(_cfg(tmp_path, nest + "  counting: {extrapolate: false}\n", arch="3level"))
    for res, fills in ((ext, 20), (exact, 18)):
        rf, gb = res.levels[2].tensors["Inputs"], res.levels[1].tensors["Inputs"]
        assert (rf.tile, rf.fills, gb.reads) == (3, fills, fills)
        assert rf.partition == 18 and gb.fills == 18  # the global buffer holds the whole row


# ------------------------------------------------------------------------------------
# The closed-form counts against the enumerating oracle (tests/sim/nest_oracle.py, the point-set
# walk that reproduced the reference outputs before the closed form) on random small nests
RANDOM_ARCH = """arch:
  version: 1
  name: random-4level
  clock_hz: 1.0e9
  hierarchy:
    - {name: L0, energy: {read: 1.0}}
    - {name: L1, capacity_words: 1000000, mesh: [3, 1]}
    - {name: L2, capacity_words: 1000000, mesh: [3, 2]}
    - {name: L3, capacity_words: 1000000, mesh: [6, 4]}
  compute: {name: MAC, mesh: [6, 4], energy: {compute: 1.0}}
"""
FANOUT = {"L0": (3, 1), "L1": (1, 2), "L2": (2, 2), "L3": (1, 1)}
# (ranks, inputs, expression): sliding and strided windows, a plain GEMM, a subscript over two
# ranks in two dims (one component of two dims), a negative coefficient
RANDOM_PROBLEMS = {
    "conv1d-stride2": ('{C: 2, K: 3, R: 3, P: 6, H: "2*P + R - 1"}', "{W: [C, K, R], I: [C, H]}",
                       "O[k, p] = W[c, k, r] * I[c, 2*p + r]"),
    "conv2d": ('{K: 2, C: 2, R: 3, S: 2, P: 4, Q: 3, H: "P + R - 1", V: "Q + S - 1"}',
               "{W: [K, C, R, S], I: [C, H, V]}", "O[k, p, q] = W[k, c, r, s] * I[c, p + r, q + s]"),
    "conv1d": ('{K: 2, R: 3, P: 12, H: "P + R - 1"}', "{W: [K, R], I: [H]}", "O[k, p] = W[k, r] * I[p + r]"),
    "gemm": ("{M: 4, K: 6, N: 4}", "{A: [M, K], B: [K, N]}", "O[m, n] = A[m, k] * B[k, n]"),
    "skew": ('{I: 6, J: 4, S: "I + J - 1"}', "{A: [S, I], B: [J]}", "O[i, j] = A[i + j, i] * B[j]"),
    "skew2": ('{I: 4, J: 3, K: 4, S: "I + J - 1", T: "J + K - 1"}', "{A: [S, T], B: [J]}",
              "O[i, k] = A[i + j, j + k] * B[j]"),
    "flip": ('{P: 8, R: 3, S: "P + R - 1"}', "{A: [S], B: [R]}", "O[p] = A[p - r + 2] * B[r]"),
}


def _primes(n: int) -> list[int]:
    out, d = [], 2
    while n > 1:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    return out


def _random_nest(problem: str, seed: int) -> str:
    """A random mapping: each prime factor of each rank on a random level, temporal or spatial
    (within the fan-out), a random loop order per level, random keep/bypass below L0."""
    import random

    rng = random.Random(seed)
    ranks_src, ins, expr = RANDOM_PROBLEMS[problem]
    sizes = {k.strip(): int(v) for k, v in (kv.split(":") for kv in ranks_src.strip("{}").split(","))
             if v.strip().isdigit()}
    temporal = {lv: {} for lv in FANOUT}
    spatial = {lv: {"X": {}, "Y": {}} for lv in FANOUT}
    for r, n in sizes.items():
        for f in _primes(n):
            lv = rng.choice(list(FANOUT))
            dim = rng.choice(["T", "X", "Y"])
            if dim != "T":
                used = math.prod(spatial[lv][dim].values())
                if used * f <= FANOUT[lv][dim == "Y"]:
                    spatial[lv][dim][r] = spatial[lv][dim].get(r, 1) * f
                    continue
            temporal[lv][r] = temporal[lv].get(r, 1) * f
    tensors = [t.split(":")[0].strip() for t in ins.strip("{}").split("],")] + ["O"]
    lines = []
    for lv in FANOUT:
        order = list(temporal[lv])
        rng.shuffle(order)
        parts = ["temporal: {" + ", ".join(f"{r}: {temporal[lv][r]}" for r in order) + "}"]
        sp = {d: v for d, v in spatial[lv].items() if v}
        if sp:
            parts.append("spatial: {" + ", ".join(f"{d}: {{" + ", ".join(f"{r}: {f}" for r, f in v.items()) + "}"
                                                  for d, v in sp.items()) + "}")
        if lv != "L0":
            parts.append("keep: [" + ", ".join(t for t in tensors if rng.random() < 0.6) + "]")
        lines.append(f"    {lv}: {{{', '.join(parts)}}}")
    ext = "true" if rng.random() < 0.5 else "false"
    return (f"einsum:\n  version: 1\n  name: {problem}\n  ranks: {ranks_src}\n  inputs: {ins}\n"
            f"  outputs: [O]\n  expressions:\n    - {expr}\n{RANDOM_ARCH}"
            f"mapping:\n  version: 1\n  nest:\n" + "\n".join(lines) + f"\n  counting: {{extrapolate: {ext}}}\n")


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("problem", sorted(RANDOM_PROBLEMS))
def test_closed_form_counts_equal_the_enumerating_oracle(problem, seed, tmp_path):
    """Tile, partition, fills and served words of every (level, kept tensor) equal the point-set
    walk's, on random factors, loop orders, spatial splits over X and Y, keep/bypass, with and
    without extrapolation."""
    from sim.nest import nest_counts
    from tests.sim.nest_oracle import oracle_counts

    p = tmp_path / "c.yaml"
    p.write_text(_random_nest(problem, seed))
    cfg = load_config(p, allow_hierarchy=True)
    assert nest_counts(cfg) == oracle_counts(cfg), p.read_text()


# ------------------------------------------------------------------------------------
# The shipped Eyeriss-like arch and its row-stationary conv example (examples/eyeriss/)
EYERISS = ROOT / "examples" / "eyeriss" / "alexnet-conv3.yaml"
EYERISS_FULL = dict(Kd=6, Cd=2, Cg=32, P=13, R=3, Ky=4, Q=13, Cs=4, S=3, Ks=16)  # the example's factors
EYERISS_SMALL = dict(Kd=2, Cd=2, Cg=2, P=5, R=3, Ky=4, Q=5, Cs=2, S=3, Ks=2)  # the same nest, 28,800 MACs


def _eyeriss_nest(f: dict) -> str:
    return (f"einsum: {ROOT / 'examples' / 'eyeriss' / 'conv2d.yaml'}\narch: eyeriss-like\n"
            f"mapping:\n  version: 1\n  nest:\n"
            f"    DRAM: {{temporal: {{K: {f['Kd']}, C: {f['Cd']}}}}}\n"
            f"    GlobalBuffer: {{temporal: {{C: {f['Cg']}}}, spatial: {{X: {{P: {f['P']}}}, "
            f"Y: {{R: {f['R']}, K: {f['Ky']}}}}}}}\n"
            f"    WeightsSpad: {{temporal: {{Q: {f['Q']}}}}}\n"
            f"    IfmapSpad: {{temporal: {{C: {f['Cs']}, S: {f['S']}, K: {f['Ks']}}}}}\n")


def _eyeriss_closed_forms(f: dict) -> dict:
    """(reads, fills, updates) per level and tensor (per PE for the scratchpads) of the
    row-stationary nest ``DRAM K_d C_d / GLB C_g, X: P, Y: R K_y / WeightsSpad Q / IfmapSpad
    C_s S K_s``, by hand. A PE (one p, r and K-group) makes T = K_d C_d C_g passes; per pass:
    its filter row (C_s S K_s words) is fetched once and used for all Q columns; its ifmap
    window (C_s x S, one row h = p + r) is fetched whole, then slides Q - 1 times, C_s new words
    each; its K_s psums are fetched (or started) at each of the Q columns. The global buffer
    holds one C_g C_s channel slice of the ifmap (H x W per channel) per (K_d, C_d) and the
    outputs of one K-block (K_y K_s channels) across C_d, so it drains each output once."""
    T = f["Kd"] * f["Cd"] * f["Cg"]
    K, C = f["Kd"] * f["Ky"] * f["Ks"], f["Cd"] * f["Cg"] * f["Cs"]
    H, W = f["P"] + f["R"] - 1, f["Q"] + f["S"] - 1
    per_pe = f["Q"] * f["Cs"] * f["S"] * f["Ks"] * T  # MACs per PE
    outs = K * f["P"] * f["Q"]
    psum_part = f["Kd"] * f["Q"] * f["Ks"]  # the distinct psums a PE ever holds
    glb_upd = T * f["P"] * f["Ky"] * f["Ks"] * f["Q"]  # the R rows' psums reduce: one update per P x K-group
    return {
        "DRAM": {"Weights": (K * C * f["R"] * f["S"], 0, 0),  # each weight once, multicast to the P columns
                 "Inputs": (f["Kd"] * C * H * W, 0, 0),  # the ifmap once per K-block
                 "Outputs": (0, 0, outs)},
        "GlobalBuffer": {"Inputs": (T * f["Cs"] * H * W, f["Kd"] * C * H * W, 0),  # the 15 rows x (S + Q - 1) columns
                         "Outputs": (glb_upd - outs, 0, glb_upd)},
        "WeightsSpad": {"Weights": (per_pe, T * f["Cs"] * f["S"] * f["Ks"], 0)},
        "PsumSpad": {"Outputs": (per_pe - psum_part, T * f["Q"] * f["Ks"] - psum_part, per_pe)},
        "IfmapSpad": {"Inputs": (per_pe, T * f["Cs"] * (f["S"] + f["Q"] - 1), 0)},
    }


def _eyeriss_counts(res) -> dict:
    return {lv.name: {t: (s.reads, s.fills, s.updates) for t, s in lv.tensors.items()} for lv in res.levels}


def test_eyeriss_example_counts_are_the_closed_forms():
    """AlexNet CONV3 (149.5M MACs) on 156 of the 168 PEs, every count by the closed forms above,
    the cycles MACs / 156 and the energy in MAC-equivalents the sum of counts x the ISCA 2016
    costs (DRAM 200, buffer 6, scratchpad 1, MAC 1)."""
    cfg = load_config(EYERISS, allow_hierarchy=True)
    res = simulate_nest(cfg)
    want = _eyeriss_closed_forms(EYERISS_FULL)
    assert _eyeriss_counts(res) == want
    assert (res.computes, res.macs_utilized, res.cycles) == (149_520_384, 156, 149_520_384 // 156)
    cost = {"DRAM": 200, "GlobalBuffer": 6, "WeightsSpad": 1, "PsumSpad": 1, "IfmapSpad": 1}
    inst = {"DRAM": 1, "GlobalBuffer": 1, "WeightsSpad": 156, "PsumSpad": 156, "IfmapSpad": 156}
    energy = sum(cost[lv] * inst[lv] * sum(map(sum, t.values())) for lv, t in want.items()) + res.computes
    assert res.energy_pj == energy
    assert [res.levels[i].tensors[t].tile for i, t in ((1, "Inputs"), (1, "Outputs"), (2, "Weights"),
                                                        (3, "Outputs"), (4, "Inputs"))] == [28800, 10816, 192, 16, 12]


def test_eyeriss_energies_carry_their_unit_not_pj():
    """The arch's energies are ISCA 2016's costs relative to one MAC (energy_unit): the text
    and the JSON say so, and no TOPS/W is computed from them."""
    from sim.nest_text import table_text

    res = simulate_nest(load_config(EYERISS, allow_hierarchy=True))
    d = res.as_dict()
    assert d["energy_unit"] == "MAC-equivalent" and d["tops_per_w"] is None
    text = table_text(res)
    first = text.splitlines()[0]
    assert "MAC-equivalent/MAC" in first and " pJ" not in text and "TOPS/W" not in text


def test_eyeriss_closed_forms_hold_against_the_oracle(tmp_path):
    """The same nest at 28,800 MACs: the closed forms of the test above, and the enumerating
    oracle's raw counts, equal sim.nest's."""
    from sim.nest import nest_counts
    from tests.sim.nest_oracle import oracle_counts

    f = EYERISS_SMALL
    p = tmp_path / "eyeriss-small.yaml"
    p.write_text(_eyeriss_nest(f))
    ranks = {"K": f["Kd"] * f["Ky"] * f["Ks"], "C": f["Cd"] * f["Cg"] * f["Cs"], "P": f["P"], "Q": f["Q"]}
    cfg = load_config(p, allow_hierarchy=True, ranks=ranks)
    assert nest_counts(cfg) == oracle_counts(cfg)
    assert _eyeriss_counts(simulate_nest(cfg)) == _eyeriss_closed_forms(f)


def test_eyeriss_example_is_the_nest_the_closed_forms_describe():
    """The shipped example's mapping is _eyeriss_nest of its factors (so the oracle test above
    checks this nest, only smaller)."""
    import yaml

    got = yaml.safe_load(EYERISS.read_text())["mapping"]
    assert got == yaml.safe_load(_eyeriss_nest(EYERISS_FULL))["mapping"]


def rooted_variants(cfg):
    """``cfg`` with the output, then the first input, kept on chip as a cascade would keep it
    (mapping.on_chip): rooted at its first keeper below L0 and taken out of the levels above it;
    yields (tensor, its level, the config) for each that has such a keeper."""
    from dataclasses import replace

    for t in ("O", cfg.operands[0].name):
        below = [i for i, lm in enumerate(cfg.levels) if i and t in lm.keep]
        if not below:
            continue
        root = below[0]
        levels = tuple(replace(lm, keep=tuple(x for x in lm.keep if x != t)) if i < root else lm
                       for i, lm in enumerate(cfg.levels))
        yield t, root, replace(cfg, levels=levels, roots={t: root})


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("problem", ["conv1d", "gemm", "conv2d"])
def test_a_chain_that_starts_below_the_outermost_level_equals_the_oracle(problem, seed, tmp_path):
    """A tensor a cascade keeps on chip (mapping.on_chip) is absent from the levels above its
    own (sim.nest: its chain of keepers starts there): the closed-form counts of such chains
    equal the point-set walk's, on the random nests above with the output, then an input,
    taken out of L0 (and the levels above its first keeper below L0)."""
    from sim.nest import nest_counts
    from tests.sim.nest_oracle import oracle_counts

    p = tmp_path / "c.yaml"
    p.write_text(_random_nest(problem, seed))
    cfg = load_config(p, allow_hierarchy=True)
    for t, root, rooted in rooted_variants(cfg):
        assert nest_counts(rooted) == oracle_counts(rooted), (t, root, p.read_text())
        r = simulate_nest(rooted)
        assert t not in r.levels[0].tensors and r.levels[root].tensors[t].fills == 0
