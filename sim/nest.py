"""Access counts, cycles and energy of a mapped memory hierarchy, with Timeloop's conventions.

The model (a :class:`mapping.hierarchy.NestConfig`: one sum-of-products Einsum, storage levels
L_0 (outermost) .. L_{n-1}, compute L_n, and per level temporal loops then spatial loops):

* **Loops and tiles.** The nest is the levels' loops in order, outermost first; a rank's index
  is ``sum(loop index * stride)`` with the stride the product of the factors of that rank's
  loops further in. The *tile* of tensor t at level i is the set of t's coordinates (its affine
  subscripts) over the loops of levels >= i: a fixed set M (the mold) translated by the
  coordinates of the outer loops' offset. An *instance* of level i is a value of the spatial
  loops of levels < i; its *time* is the sequence of values of the temporal loops of levels
  < i, in lexicographic order. The compute level's tile is one point (one MAC).
* **Deltas (what a level takes from its parent).** Per instance, the tile sequence S_1, S_2, ...
  gives deltas with Timeloop's reset-on-stride-change rule (``OperationSpace::
  SaveAndSubtractIfSameStride``, ``loop-analysis/nest-analysis.cpp``): with T the translation
  S_{k-1} -> S_k and T' the remembered one, delta_1 = S_1; if T' is unset, delta_k = S_k - S_{k-1}
  and T' := T; if T = T', delta_k = S_k - S_{k-1}; otherwise delta_k = S_k and T' is unset.
  So a tile that stays put costs nothing, a sliding window that keeps sliding the same way
  costs only its new edge, and a tile that jumps (an inner loop restarting) is refetched whole:
  RegisterFile Inputs in exercise 04 takes 16 + 1 + 1 = 18 words per (c, k), 1152 in all,
  not the 284 an ideal cache would. The compute level takes its point at every MAC (no reuse).
* **Counts per level i and tensor t kept there.** D = sum of |delta| over the instances
  (its own fills from the parent, counting the first tile), P = sum over the instances of the
  union of its tiles over the run (the partition size). The *child* of (i, t) is the next inner
  level keeping t, or the compute level: U = the sum, over parent instances and child time steps,
  of |union of the deltas of the children under that parent instance at that step|, so a
  multicast is read once and a spatial reduction is one update. Then, per instance (divided by
  the utilized instances, the product of the spatial factors above i): an input's reads are U
  and its fills D (0 at L_0); the output's updates are U, its reads U - P (the first update of an
  element is a write into zero, not a read-modify-write) and its fills D - P (Timeloop 2024: a
  first, zero-initialised residency is no fill) or D (``counting.output_first_fill``, Timeloop
  2020), 0 at L_0. A bypassed tensor is absent from the level and its child reads the next
  outer level that keeps it.
* **Why these equal Timeloop's counts.** Timeloop's NestAnalysis keeps one ``last_point_set``
  and translation per loop level and spatial instance and accumulates the deltas returned by a
  storage boundary's loop, times ``num_epochs``, as that level's accesses; at a spatial level
  ``ComputeAccurateMulticastedAccesses`` counts each distinct delta element once per parent.
  :func:`_traverse` is that recursion: the tile events of each level in Timeloop's time order,
  with its temporal extrapolation (default, ``counting.extrapolate: true``): a temporal loop of
  n > 2 iterations runs iteration 0, then iteration 1 standing for n - 1 (epochs x (n - 1)), so
  the tile after a loop is the one at its iteration 1, and the next outer step is judged from
  there. ``extrapolate: false`` visits every iteration (``TIMELOOP_DISABLE_TEMPORAL_
  EXTRAPOLATION``); the two agree on all eleven reference nests and differ where a window slides
  on across an outer step (``tests/sim/test_nest.py``: 20 fills extrapolated, 18 exact). Spatial
  loops run every element (Timeloop extrapolates them by translation, the same sets for these
  uniform nests). The partition P is the footprint over every loop but the spatial ones above
  the level (what an instance ever holds). The buffer model then derives reads/fills/updates as
  the rules above state (``/work/shared/reference/timeloop/conventions.md`` points 2-7), and
  ``tests/sim/test_nest.py`` checks every count of the eleven reference outputs there.
* **Cycles.** ``computes / utilized MACs``, or more if a level's bandwidth cannot keep up:
  per instance, ``sum of reads / read_bw`` and ``sum of (fills + updates) / write_bw``.
* **Energy.** Per tensor and level ``(ceil(r/B) E_read + ceil(f/B) E_write + ceil(u/B) E_update)
  x utilized instances`` with r, f, u per instance and B the block size; leakage ``E_leak x
  cycles x instances`` per level; compute ``computes x E_compute``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from einsum.errors import EinarrayError
from mapping.hierarchy import NestConfig, Operand


@dataclass(frozen=True)
class Loop:
    rank: str
    factor: int
    level: int  # index of the storage level that owns the loop
    spatial: str  # "" (temporal), "X" or "Y"
    stride: int = 1


@dataclass(frozen=True)
class TensorStats:
    tile: int  # words of one tile (per instance)
    partition: Fraction  # distinct words an instance holds over the run
    reads: Fraction  # per instance
    fills: Fraction
    updates: Fraction
    energy_pj: float  # all utilized instances
    is_output: bool = False

    @property
    def accesses(self) -> Fraction:
        return self.reads + self.fills + self.updates

    @property
    def addr_gens(self) -> Fraction:
        """Address generations: reads + fills, or updates + fills for the output (Timeloop's)."""
        return self.fills + (self.updates if self.is_output else self.reads)

    @property
    def temporal_reductions(self) -> Fraction:
        return self.reads if self.is_output else Fraction(0)


@dataclass(frozen=True)
class LevelStats:
    name: str
    instances: int
    utilized: int
    tensors: dict[str, TensorStats]
    leak_pj: float
    cycles: int  # the level's own bound (bandwidth), <= the run's cycles when not throttling
    energy_pj: float
    word_bits: int = 8

    @property
    def scalar_accesses(self) -> Fraction:
        """Reads + fills + updates of every tensor, over the utilized instances."""
        return sum((s.accesses for s in self.tensors.values()), Fraction(0)) * self.utilized


@dataclass(frozen=True)
class NestResult:
    workload: str
    arch: str
    computes: int
    macs_utilized: int
    compute_cycles: int
    cycles: int
    mac_energy_pj: float
    levels: tuple[LevelStats, ...]  # outermost first
    energy_pj: float
    loops: tuple[Loop, ...] = field(repr=False, default=())
    clock_hz: float = 1e9
    output_words: int = 0  # distinct output elements
    required_words: int = 0  # every tensor's footprint once (the minimum traffic)
    mac_instances: int = 1
    mac_area_um2: float | None = None  # all compute instances

    @property
    def ops(self) -> dict[str, int]:
        """Timeloop's operation counts: a MAC is one element-wise op, and every MAC but the
        first into each output element is one reduction op."""
        red = self.computes - self.output_words
        return {"elementwise": self.computes, "reduction": red, "total": self.computes + red}

    @property
    def gflops(self) -> float:
        return self.ops["total"] / self.cycles * self.clock_hz / 1e9

    @property
    def utilization(self) -> float:
        return self.computes / (self.cycles * self.mac_instances)

    @property
    def edp_j_cycle(self) -> float:
        return self.energy_pj * 1e-12 * self.cycles

    def op_per_byte(self, lv: LevelStats) -> float:
        return self.ops["total"] / float(lv.scalar_accesses * lv.word_bits / 8)

    def as_dict(self) -> dict[str, Any]:
        def num(x: Fraction) -> int | float:
            return int(x) if x.denominator == 1 else float(x)

        return {
            "workload": self.workload, "arch": self.arch, "computes": self.computes,
            "macs_utilized": self.macs_utilized, "compute_cycles": self.compute_cycles, "cycles": self.cycles,
            "ops": self.ops, "gflops": self.gflops, "utilization": self.utilization,
            "edp_j_cycle": self.edp_j_cycle, "mac_area_um2": self.mac_area_um2,
            "memory_accesses_required": self.required_words,
            "energy_pj": {"total": self.energy_pj, "compute": self.mac_energy_pj,
                          "levels": {lv.name: lv.energy_pj for lv in self.levels}},
            "fj_per_compute": {**{lv.name: lv.energy_pj / self.computes * 1e3 for lv in self.levels},
                               "compute": self.mac_energy_pj / self.computes * 1e3,
                               "total": self.energy_pj / self.computes * 1e3},
            "levels": {lv.name: {"instances": lv.instances, "utilized": lv.utilized, "leak_pj": lv.leak_pj,
                                 "cycles": lv.cycles, "energy_pj": lv.energy_pj,
                                 "scalar_accesses": num(lv.scalar_accesses),
                                 "tensors": {t: {"tile": s.tile, "partition": num(s.partition),
                                                 "reads": num(s.reads), "fills": num(s.fills),
                                                 "updates": num(s.updates), "energy_pj": s.energy_pj}
                                             for t, s in lv.tensors.items()}}
                       for lv in self.levels},
        }


def build_loops(cfg: NestConfig) -> tuple[Loop, ...]:
    """The whole nest, outermost first (factor-1 loops dropped), with each loop's stride."""
    raw = []
    for i, lm in enumerate(cfg.levels):
        raw += [(r, f, i, "") for r, f in lm.temporal]
        raw += [(r, f, i, "X") for r, f in lm.spatial_x]
        raw += [(r, f, i, "Y") for r, f in lm.spatial_y]
    raw = [x for x in raw if x[1] > 1]
    out = []
    for j, (r, f, i, sp) in enumerate(raw):
        stride = math.prod(x[1] for x in raw[j + 1:] if x[0] == r)
        out.append(Loop(r, f, i, sp, stride))
    return tuple(out)


def _mold(op: Operand, loops: tuple[Loop, ...]) -> frozenset[tuple[int, ...]]:
    """``op``'s coordinates over the iteration box of ``loops`` (at offset 0)."""
    n = math.prod(lp.factor for lp in loops)
    grid = np.indices([lp.factor for lp in loops]).reshape(len(loops), -1) if loops else np.zeros((0, 1), int)
    cols = []
    for terms, k in zip(op.terms, op.consts):
        coef = dict(terms)
        cols.append(sum((coef.get(lp.rank, 0) * lp.stride * grid[j] for j, lp in enumerate(loops)),
                        np.full(n, k, dtype=np.int64)))
    rows = np.unique(np.stack(cols, axis=1), axis=0) if cols else np.zeros((1, 0), int)
    return frozenset(map(tuple, rows.tolist()))


class _Walk:
    """The per-instance delta walk of one (level, tensor), feeding the parent's unions."""

    def __init__(self, op: Operand, level: int, parent: int | None, loops: tuple[Loop, ...], is_compute: bool):
        self.op, self.level, self.parent, self.is_compute = op, level, parent, is_compute
        self.outer = tuple(lp for lp in loops if lp.level < level)
        self.mold = _mold(op, tuple(lp for lp in loops if lp.level >= level))
        # what an instance holds over the whole run: every loop but the spatial ones above it
        self.P = math.prod(lp.factor for lp in self.outer if lp.spatial) * \
            len(_mold(op, tuple(lp for lp in loops if lp.level >= level or not lp.spatial)))
        self.D = 0
        self.unions: dict[tuple, set] = {}
        self.weights: dict[tuple, int] = {}
        self.U = 0
        self.state: dict[tuple, list] = {}  # instance -> [prev set, its translation, remembered stride]
        coef = [dict(terms) for terms in op.terms]
        self.step = [tuple(c.get(lp.rank, 0) * lp.stride for c in coef) for lp in self.outer]
        self.spatial = [j for j, lp in enumerate(self.outer) if lp.spatial]
        top = self.parent if self.parent is not None else 0
        self.above = [j for j in self.spatial if self.outer[j].level < top]
        self.temporal = [j for j, lp in enumerate(self.outer) if not lp.spatial]

    def event(self, vals: tuple[int, ...], epochs: int) -> None:
        """A new tile at outer loop values ``vals``, standing for ``epochs`` identical steps."""
        trans = tuple(sum(v * st[d] for v, st in zip(vals, self.step)) for d in range(len(self.op.terms)))
        S = {tuple(a + b for a, b in zip(m, trans)) for m in self.mold}
        inst = tuple(vals[j] for j in self.spatial)
        st = self.state.get(inst)
        if st is None:
            delta = S
            self.state[inst] = [S, trans, None]
        else:
            prev, ptrans, stride = st
            t = tuple(a - b for a, b in zip(trans, ptrans))
            if stride is None or t == stride:
                delta = S - prev
                st[2] = t
            else:  # the stride changed: Timeloop discards the residual tile
                delta = S
                st[2] = None
            st[0], st[1] = S, trans
        self.D += len(delta) * epochs
        if self.parent is not None and delta:
            key = (tuple(vals[j] for j in self.above), tuple(vals[j] for j in self.temporal))
            self.unions.setdefault(key, set()).update(delta)
            self.weights[key] = epochs

    def _run_compute(self) -> None:
        """The compute level takes its operand point at every MAC: D is the MAC count and the
        parent's union per (parent instance, step) is counted with NumPy over all MACs."""
        outer = self.outer
        self.D = math.prod(lp.factor for lp in outer)
        if self.parent is None:
            return
        grid = np.indices([lp.factor for lp in outer]).reshape(len(outer), -1) if outer else \
            np.zeros((0, 1), dtype=np.int64)
        cols = [grid[j] for j, lp in enumerate(outer)
                if not lp.spatial or lp.level < self.parent]  # the parent instance and the step
        for terms, k in zip(self.op.terms, self.op.consts):
            coef = dict(terms)
            cols.append(sum((coef.get(lp.rank, 0) * lp.stride * grid[j] for j, lp in enumerate(outer)),
                            np.full(grid.shape[1], k, dtype=np.int64)))
        rows = np.stack(cols, axis=1)
        self.unions = {(): set()}
        self.U = int(len(np.unique(rows, axis=0)))

    def parent_accesses(self) -> int:
        if self.is_compute:
            return self.U
        return sum(len(u) * self.weights[k] for k, u in self.unions.items())


def _traverse(loops: tuple[Loop, ...], walks: list[_Walk], extrapolate: bool) -> None:
    """Step the nest outermost first, firing each storage level's tile events in time order.

    With ``extrapolate`` (Timeloop's default), a temporal loop of n > 2 iterations runs
    iteration 0, then iteration 1 standing for n - 1 iterations (``num_epochs``), as
    NestAnalysis::ComputeTemporalWorkingSet does; spatial loops run every element."""
    at: dict[int, list[_Walk]] = {}
    for w in walks:
        depth = next((j for j, lp in enumerate(loops) if lp.level >= w.level), len(loops))
        at.setdefault(depth, []).append(w)
    L = len(loops)

    def rec(j: int, vals: tuple[int, ...], epochs: int) -> None:
        for w in at.get(j, ()):
            w.event(vals[:len(w.outer)], epochs)
        if j == L or not any(d > j for d in at):
            return
        lp = loops[j]
        if extrapolate and not lp.spatial and lp.factor > 2:
            rec(j + 1, vals + (0,), epochs)
            rec(j + 1, vals + (1,), epochs * (lp.factor - 1))
        else:
            for v in range(lp.factor):
                rec(j + 1, vals + (v,), epochs)

    rec(0, (), 1)


def _frac(n: int, d: int) -> Fraction:
    return Fraction(n, d)


MAX_WALK = 20_000_000  # tile points the delta walk may visit (Python sets; seconds per million)
MAX_POINTS = 50_000_000  # iteration points NumPy enumerates for partitions and the compute level


def walk_points(cfg: NestConfig, loops: tuple[Loop, ...]) -> int:
    """Tile points the walk visits: per storage level and kept tensor, outer iterations x tile."""
    from mapping.hierarchy import tile_words

    n = 0
    for i, lm in enumerate(cfg.levels):
        outer = math.prod(lp.factor if lp.spatial or not cfg.extrapolate else min(lp.factor, 2)
                          for lp in loops if lp.level < i)
        n += sum(outer * tile_words(cfg.levels, i, o) for o in cfg.operands if o.name in lm.keep)
    return n


def simulate_nest(cfg: NestConfig) -> NestResult:
    """Counts, cycles and energy of ``cfg`` (the model is this module's docstring). A nest whose
    walk would visit more than ``MAX_WALK`` tile points is refused (an EinarrayError)."""
    arch, loops = cfg.arch, build_loops(cfg)
    work = walk_points(cfg, loops)
    if work > MAX_WALK:
        raise EinarrayError(f"{cfg.source}: the nest's delta walk visits {work:,} tile points, more than "
                            f"{MAX_WALK:,}; shrink the ranks (--rank) or move loops inward")
    points = cfg.computes * len(cfg.operands) * (len(arch.levels) + 1)
    if points > MAX_POINTS:
        raise EinarrayError(f"{cfg.source}: counting enumerates {points:,} iteration points (MACs x tensors x "
                            f"levels), more than {MAX_POINTS:,}; shrink the ranks (--rank)")
    out = next(o for o in cfg.operands if o.is_output)
    n = len(arch.levels)
    util = [math.prod(lp.factor for lp in loops if lp.spatial and lp.level < i) for i in range(n + 1)]
    walks: dict[tuple[int, str], _Walk] = {}
    for op in cfg.operands:
        keepers = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep]
        for k, i in enumerate(keepers + [n]):
            walks[(i, op.name)] = _Walk(op, i, keepers[k - 1] if k > 0 else None, loops, i == n)
    for w in walks.values():
        if w.is_compute:
            w._run_compute()
    _traverse(loops, [w for w in walks.values() if not w.is_compute], cfg.extrapolate)
    # U of (parent, t): the parent's side of its child's deltas
    U = {(w.parent, t): w.parent_accesses() for (i, t), w in walks.items() if w.parent is not None}
    computes = cfg.computes
    macs = util[n]
    compute_cycles = -(-computes // macs)
    counts: list[dict[str, tuple]] = []
    bound = compute_cycles
    level_cycles = []
    for i, (lv, lm) in enumerate(zip(arch.levels, cfg.levels)):
        per: dict[str, tuple] = {}
        for op in cfg.operands:
            if op.name not in lm.keep:
                continue
            w, u, ui = walks[(i, op.name)], U.get((i, op.name), 0), util[i]
            if op.is_output:
                upd = _frac(u, ui)
                reads = _frac(u - w.P, ui)
                fills = Fraction(0) if i == 0 else _frac(w.D - (0 if cfg.output_first_fill else w.P), ui)
            else:
                upd = Fraction(0)
                reads = _frac(u, ui)
                fills = Fraction(0) if i == 0 else _frac(w.D, ui)
            per[op.name] = (len(w.mold), _frac(w.P, ui), reads, fills, upd)
        counts.append(per)
        cyc = 0
        if lv.read_bw is not None:
            cyc = max(cyc, math.ceil(sum(c[2] for c in per.values()) / lv.read_bw))
        if lv.write_bw is not None:
            cyc = max(cyc, math.ceil(sum(c[3] + c[4] for c in per.values()) / lv.write_bw))
        level_cycles.append(cyc)
        bound = max(bound, cyc)
    cycles = bound
    levels = []
    for i, (lv, per) in enumerate(zip(arch.levels, counts)):
        B, E = lv.block_size, lv.energy
        tens = {}
        for t, (tile, part, r, f, u) in per.items():
            e = (math.ceil(r / B) * E["read"] + math.ceil(f / B) * E["write"] + math.ceil(u / B) * E["update"]) \
                * util[i]
            tens[t] = TensorStats(tile, part, r, f, u, e, t == out.name)
        leak = E["leak"] * cycles * lv.instances
        levels.append(LevelStats(lv.name, lv.instances, util[i], tens, leak, level_cycles[i],
                                 sum(s.energy_pj for s in tens.values()) + leak, lv.word_bits))
    mac_e = computes * arch.compute.energy_pj
    total = mac_e + sum(lv.energy_pj for lv in levels)
    area = None if arch.compute.area_um2 is None else arch.compute.area_um2 * arch.compute.instances
    return NestResult(cfg.cascade.name, arch.name, computes, macs, compute_cycles, cycles, mac_e, tuple(levels),
                      total, loops, arch.clock_hz, len(walks[(0, out.name)].mold),
                      sum(len(walks[(0, o.name)].mold) for o in cfg.operands), arch.compute.instances, area)


# ----------------------------------------------------------------------------------
def map_text(cfg: NestConfig) -> str:
    """The mapping as Timeloop prints it in ``timeloop-model.map.txt``: per level its kept
    tensors with their tile sizes, then its loops (factor-1 loops omitted), indented."""
    loops = build_loops(cfg)
    lines: list[str] = []
    depth = 0
    n = len(cfg.levels)
    for i, lm in enumerate(cfg.levels):
        lvl = [lp for lp in loops if lp.level == i]
        tiles = " ".join(f"{o.name}:{k} ({k})" for o in cfg.operands if o.name in lm.keep
                         for k in [len(_mold(o, tuple(lp for lp in loops if lp.level >= i)))])
        head = f"{lm.level} [ {tiles} ]" if tiles else f"{lm.level} [ ]"
        lines.append(head + " ")
        if not lvl and i < n - 1:
            continue
        lines.append("-" * len(head))
        for lp in lvl:
            sp = f" (Spatial-{lp.spatial})" if lp.spatial else ""
            lines.append("|" + " " + "  " * depth + f"for {lp.rank} in [0:{lp.factor}){sp}")
            depth += 1
        if i < n - 1:
            lines.append("")
    lines.append("|" + " " + "  " * depth + "<< Compute >>")
    return "\n".join(lines)


def table_text(res: NestResult) -> str:
    """The per-level table (Timeloop-like: per instance counts, energy over all instances)."""
    def f(x: Fraction) -> str:
        return f"{int(x):,}" if x.denominator == 1 else f"{float(x):,.2f}"

    rows = [("level", "tensor", "inst", "tile", "reads", "fills", "updates", "energy pJ")]
    for lv in res.levels:
        for t, s in lv.tensors.items():
            rows.append((lv.name, t, str(lv.utilized), str(s.tile), f(s.reads), f(s.fills), f(s.updates),
                         f"{s.energy_pj:,.2f}"))
        rows.append((lv.name, "(leak)", str(lv.instances), "", "", "", "", f"{lv.leak_pj:,.2f}"))
    rows.append(("compute", "MAC", str(res.macs_utilized), "", f"{res.computes:,}", "", "",
                 f"{res.mac_energy_pj:,.2f}"))
    w = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    bound = [lv.name for lv in res.levels if lv.cycles == res.cycles and res.cycles > res.compute_cycles]
    why = f"bound by {', '.join(bound)}'s bandwidth" if bound else "compute-bound"
    out = [f"{res.workload} on {res.arch}: {res.cycles:,} cycles ({why}; compute {res.compute_cycles:,}), "
           f"{res.computes:,} MACs on {res.macs_utilized} of {res.mac_instances} MACs (utilization "
           f"{res.utilization:.2%}, {res.gflops:.2f} GFLOPs), energy {res.energy_pj:,.2f} pJ "
           f"({res.energy_pj / res.computes:.4f} pJ/MAC), EDP {res.edp_j_cycle:.3g} J*cycle"]
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(w[k]) if k < 2 else c.rjust(w[k]) for k, c in enumerate(r)))
        if j == 0:
            out.append("  ".join("-" * x for x in w))
    return "\n".join(out)
