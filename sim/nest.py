"""Access counts, cycles and energy of a mapped memory hierarchy, with Timeloop's conventions.

The model (a :class:`mapping.nest_mapping.NestConfig`: one sum-of-products Einsum, storage levels
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
  The tile events of each level come in Timeloop's time order, with its temporal extrapolation
  (default, ``counting.extrapolate: true``): a temporal loop of n > 2 iterations runs iteration
  0, then iteration 1 standing for n - 1 (epochs x (n - 1)), so the tile after a loop is the one
  at its iteration 1, and the next outer step is judged from there. ``extrapolate: false``
  visits every iteration (``TIMELOOP_DISABLE_TEMPORAL_EXTRAPOLATION``); the two agree on all
  eleven reference nests and differ where a window slides on across an outer step
  (``tests/sim/test_nest.py``: 20 fills extrapolated, 18 exact). Spatial loops run every
  element (Timeloop extrapolates them by translation, the same sets for these uniform nests).
  The partition P is the footprint over every loop but the spatial ones above the level (what
  an instance ever holds). The buffer model then derives reads/fills/updates as the rules above
  state (``/work/shared/reference/timeloop/conventions.md`` points 2-7), and
  ``tests/sim/test_nest.py`` checks every count of the eleven reference outputs there.
* **Counting in closed form** (:func:`nest_counts`; no tile is materialised). Every instance of
  a level sees the same sequence of translations (loop j moves a tensor by ``a_j``, its
  subscripts' coefficients times the loop's stride; when time loop p steps, the tile moves by
  ``a_p - sum of v_q a_q`` over the time loops q inside it, with v_q = f_q - 1, or 1 when
  extrapolated). The stride-change rule is a machine whose state is the remembered
  translation; :func:`_events` runs it over the loops' bodies, memoized per (loop, state), and
  multiplies out a loop's repeats once the state cycles, giving the weighted number of events
  of each kind (whole tile, or a delta under translation d). A tile is the Minkowski sum of the
  loops' progressions ``{0, a, .., (f-1) a}``, a product over the tensor's components (dims
  sharing a rank), each held as a bitmask of integers (:class:`_Space`). So ``|delta| = |M| -
  prod_c |M_c & (M_c - d_c)|``, and the union of a delta over the fan-out set F (the spatial
  loops between parent and child) is ``prod_c |M_c + F_c| - prod_c (|M_c + F_c| - |A_c +
  F_c|)`` with ``A_c = M_c \\ (M_c - d_c)`` (a point is covered if every component can reach
  it and some component reaches it through its new part). The cost is a few shifts per
  (level, tensor, kind), independent of the layer's size: the enumerating walk this replaced
  is ``tests/sim/nest_oracle.py``, the oracle the counts are tested against on random nests.
* **Cycles.** The timeline (:mod:`sim.nest_timeline`): every tile change stepped in time
  order, each transfer throttled by the bandwidths it crosses, single or double buffered per
  level (``double_buffered``), the MACs stalling until their tiles are in, the last outputs
  drained, each network's busiest link and hop latency on the transfers that cross it; it is
  the MACs' ``computes / utilized MACs`` steps when no level has a bandwidth or a network.
  Beside it the *bounds*, Timeloop's cycles (``bound_cycles``): ``computes / utilized MACs``,
  or more if a level's bandwidth cannot keep up on average: per instance, ``sum of reads /
  read_bw`` and ``sum of (fills + updates) / write_bw``, or its ports or banks
  (:func:`port_bank_cycles`), or a network's busiest link (:mod:`sim.network`, a level's
  ``network:``), plus the networks' latency once. ``cycles`` is the larger of the timeline and
  the bounds (the bounds cover what the timeline leaves out: transfers sharing a level's
  bandwidth, ports or banks, or a network's links, at once); :attr:`NestResult.bound_by` names what set it.
* **Energy.** Per tensor and level ``(ceil(r/B) E_read + ceil(f/B) E_write + ceil(u/B) E_update)
  x utilized instances`` with r, f, u per instance and B the block size; leakage ``E_leak x
  cycles x instances`` per level; compute ``computes x E_compute``; each network's word-hops x
  its energy per word-hop (:mod:`sim.network`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from mapping.nest_mapping import NestConfig, Operand


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
    area_um2: float | None = None  # all instances (None: the arch gives none)
    component: str | None = None  # the component it was resolved from
    limit: str = "bandwidth"  # what sets ``cycles``: "bandwidth", "ports" or "banks"

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
    mac_component: str | None = None
    networks: tuple = ()  # sim.network.NetworkStats of every level with a network:
    network_latency: int = 0  # cycles added once (fill and drain); included in ``cycles``
    energy_unit: str = "pJ"  # the arch's (mapping.hierarchy.Hierarchy.energy_unit); *_pj fields are in it
    padding: dict = field(default_factory=dict)  # padded rank -> (the Einsum's size, the loops' size)
    useful_computes: int = 0  # the Einsum's own MACs (``computes`` counts the padding's too)
    timeline: Any = None  # sim.nest_timeline.Timeline: the stepped schedule
    bound_cycles: int = 0  # Timeloop's figure: the largest bound (compute, levels, networks) + latency
    has_vector: bool = False  # the arch has a vector unit (mapping.hierarchy.Vector)
    vector_area_um2: float | None = None  # all its instances (None: the arch gives none)

    @property
    def stall_cycles(self) -> int:
        """Cycles beyond the compute's: the timeline's stalls and drain, or the bandwidth, port,
        bank or network bound's excess where that is larger, plus the network latency."""
        return self.cycles - self.compute_cycles

    @property
    def bound_by(self) -> str:
        """What set the cycles: 'compute', the timeline (with the level whose transfers the MACs
        waited for longest), or the levels' bandwidths and the networks' busiest links that reach
        the largest bound."""
        tl = self.timeline
        top = self.cycles - self.network_latency
        if top <= self.compute_cycles:
            return "compute"
        if tl is not None and tl.cycles == self.cycles > self.bound_cycles:
            why = [f"waits for {k} ({v:,} cycles)" for k, v in sorted(tl.stalls.items(), key=lambda kv: -kv[1])[:1]]
            why += [f"drain {tl.drain:,}"] if tl.drain else []
            lo, hi = tl.step_cycles
            why += [f"MAC steps of {lo}" + (f"-{hi}" if hi != lo else "") + " cycles (operand reads)"] \
                if tl.compute > self.compute_cycles else []
            return "the timeline: " + ", ".join(why)
        parts = [f"{lv.name}'s {lv.limit}" for lv in self.levels if lv.cycles == top]
        parts += [f"{nw.level}'s network (busiest link {nw.busiest})" for nw in self.networks if nw.cycles == top]
        return ", ".join(parts)

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
        """MACs executed (padding included) per MAC-cycle."""
        return self.computes / (self.cycles * self.mac_instances)

    @property
    def useful_utilization(self) -> float:
        """The Einsum's own MACs per MAC-cycle (the padding's MACs are not useful work)."""
        return (self.useful_computes or self.computes) / (self.cycles * self.mac_instances)

    @property
    def edp_j_cycle(self) -> float:
        return self.energy_pj * 1e-12 * self.cycles

    @property
    def area_um2(self) -> float | None:
        """Every level's, the compute's and the vector unit's (if the arch has one) area, None
        unless the arch gives all of them."""
        parts = [lv.area_um2 for lv in self.levels] + [self.mac_area_um2] + \
            ([self.vector_area_um2] if self.has_vector else [])
        return None if any(a is None for a in parts) else sum(parts)

    @property
    def tops_per_w(self) -> float | None:
        """Operations (Timeloop's count) per joule / 1e12: ops per pJ (None for no energy)."""
        return self.ops["total"] / self.energy_pj if self.energy_pj else None

    def op_per_byte(self, lv: LevelStats) -> float:
        return self.ops["total"] / float(lv.scalar_accesses * lv.word_bits / 8)

    def as_dict(self) -> dict[str, Any]:
        def num(x: Fraction) -> int | float:
            return int(x) if x.denominator == 1 else float(x)

        return {
            "workload": self.workload, "arch": self.arch, "computes": self.computes,
            "macs_utilized": self.macs_utilized, "compute_cycles": self.compute_cycles, "cycles": self.cycles,
            "ops": self.ops, "gflops": self.gflops, "utilization": self.utilization,
            "useful_computes": self.useful_computes or self.computes, "useful_utilization": self.useful_utilization,
            "padding": {r: {"size": a, "padded": b} for r, (a, b) in self.padding.items()},
            "edp_j_cycle": self.edp_j_cycle, "mac_area_um2": self.mac_area_um2,
            "memory_accesses_required": self.required_words,
            "components": {**{lv.name: lv.component for lv in self.levels}, "compute": self.mac_component},
            "area_um2": {"levels": {lv.name: lv.area_um2 for lv in self.levels}, "compute": self.mac_area_um2,
                         **({"vector": self.vector_area_um2} if self.has_vector else {}), "total": self.area_um2},
            "tops_per_w": self.tops_per_w if self.energy_unit == "pJ" else None,
            "energy_unit": self.energy_unit,
            "energy_pj": {"total": self.energy_pj, "compute": self.mac_energy_pj,
                          "levels": {lv.name: lv.energy_pj for lv in self.levels},
                          **({"networks": {nw.level: nw.energy_pj for nw in self.networks}} if self.networks else {})},
            "fj_per_compute": {**{lv.name: lv.energy_pj / self.computes * 1e3 for lv in self.levels},
                               "compute": self.mac_energy_pj / self.computes * 1e3,
                               "total": self.energy_pj / self.computes * 1e3},
            "levels": {lv.name: {"instances": lv.instances, "utilized": lv.utilized, "leak_pj": lv.leak_pj,
                                 "cycles": lv.cycles, "limit": lv.limit, "energy_pj": lv.energy_pj,
                                 "scalar_accesses": num(lv.scalar_accesses),
                                 "tensors": {t: {"tile": s.tile, "partition": num(s.partition),
                                                 "reads": num(s.reads), "fills": num(s.fills),
                                                 "updates": num(s.updates), "energy_pj": s.energy_pj}
                                             for t, s in lv.tensors.items()}}
                       for lv in self.levels},
            "bound_by": self.bound_by, "stall_cycles": self.stall_cycles, "network_latency": self.network_latency,
            "bound_cycles": self.bound_cycles,
            "timeline": None if self.timeline is None else self.timeline.as_dict(),
            "networks": {nw.level: {
                    "topology": nw.topology, "fanout": list(nw.fanout),
                    "source": None if nw.source is None else list(nw.source), "utilized": nw.utilized,
                    "busiest_link": nw.busiest, "busiest_words": nw.busiest_words, "link_words": nw.link_words,
                    "cycles": nw.cycles, "latency": nw.latency, "energy_pj": nw.energy_pj,
                    "word_hops": nw.word_hops,
                    "tensors": {t: {"words_out": s.words_out, "words_in": s.words_in, "hops_out": s.hops_out,
                                    "hops_in": s.hops_in, "energy_pj": s.energy_pj}
                                for t, s in nw.tensors.items()}}
                         for nw in self.networks},
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


class _Space:
    """One tensor's coordinates as independent components, each a set of integers as a bitmask.

    Dims that share a rank form a component (``Inputs[c, p + r, q + s]``: three); every loop
    moves one component only, so a tile (a Minkowski sum of the loops' progressions ``{0, a,
    .., (f-1) a}``) is the product of its components' sets, and so is each set below. A
    component's coordinates are encoded as one integer (mixed radix ``4 span + 1`` per dim, so
    every point within twice the iteration space's span encodes uniquely) and a set of them as
    a Python int with bit ``enc + OFF`` set: a translation is a shift, an intersection an AND."""

    def __init__(self, op: Operand, loops: tuple[Loop, ...]):
        coef = [dict(terms) for terms in op.terms]
        nd = len(coef)
        parent = list(range(nd))

        def find(d: int) -> int:
            while parent[d] != d:
                d = parent[d]
            return d

        for r in {r for c in coef for r in c}:
            ds = [d for d in range(nd) if coef[d].get(r, 0)]
            for d in ds[1:]:
                parent[find(d)] = find(ds[0])
        comps: dict[int, list[int]] = {}
        for d in range(nd):
            comps.setdefault(find(d), []).append(d)
        self.comps = list(comps.values())
        self.disp = {lp: tuple(coef[d].get(lp.rank, 0) * lp.stride for d in range(nd)) for lp in loops}
        span = [sum((lp.factor - 1) * abs(a[d]) for lp, a in self.disp.items()) for d in range(nd)]
        self.weight = [0] * nd
        self.off = []
        for ds in self.comps:
            w = 1
            for d in ds:
                self.weight[d] = w
                w *= 4 * span[d] + 1
            self.off.append(sum(self.weight[d] * 2 * span[d] for d in ds))

    def enc(self, k: int, vec: tuple[int, ...]) -> int:
        return sum(self.weight[d] * vec[d] for d in self.comps[k])

    def sets(self, loops: tuple[Loop, ...] | list[Loop], base: list[int] | None = None) -> list[int]:
        """Per component, the bitmask of ``base`` (default: the origin) plus the loops' progressions."""
        out = []
        for k, off in enumerate(self.off):
            m = 1 << off if base is None else base[k]
            for lp in loops:
                m = _sweep(m, self.enc(k, self.disp[lp]), lp.factor)
            out.append(m)
        return out


def _shift(m: int, s: int) -> int:
    return m << s if s >= 0 else m >> -s


def _sweep(m: int, b: int, f: int) -> int:
    """The set ``m + {0, b, .., (f-1) b}`` (by doubling: log f shifts)."""
    if b == 0 or f == 1:
        return m
    half = _sweep(m, b, f // 2)
    out = half | _shift(half, (f // 2) * b)
    return out | _shift(m, (f - 1) * b) if f % 2 else out


def _size(ms: list[int]) -> int:
    return math.prod(m.bit_count() for m in ms)


def _events(ticks: list[tuple[tuple[int, ...], int]], extrapolate: bool) -> Counter:
    """Tile events of one instance of a level under its time loops, by kind: ``None`` for a
    whole tile (the first, and after a change of stride), a translation ``d`` for a delta
    ``S_k - S_{k-1}`` with ``S_k = S_{k-1} + d``; weighted by the steps each stands for.

    ``ticks`` gives, per time loop outermost first, the translation of the tile when that loop
    steps (inner loops restarting) and its factor. Timeloop's rule is a machine whose state is
    the remembered translation (or none); a loop's body is a function of that state, memoized,
    and a loop of f iterations repeats it f - 1 times, summed in closed form once the state
    cycles (it does within a few steps: the states are the loops' translations). With
    ``extrapolate`` the body runs once more standing for f - 1 iterations (Timeloop's)."""
    memo: dict[tuple[int, Any], tuple[Any, Counter]] = {}

    def run(p: int, s: Any) -> tuple[Any, Counter]:
        if p == len(ticks):
            return s, Counter()
        if (p, s) not in memo:
            d, f = ticks[p]

            def step(s: Any) -> tuple[Any, Counter]:
                same = s is None or s == d
                s2, c = run(p + 1, d if same else None)
                return s2, c + Counter({d if same else None: 1})

            s1, c1 = run(p + 1, s)
            if extrapolate:
                s2, c2 = step(s1)
                memo[(p, s)] = s2, c1 + Counter({k: v * (f - 1) for k, v in c2.items()})
            else:
                s2, c2 = _repeat(step, s1, f - 1)
                memo[(p, s)] = s2, c1 + c2
        return memo[(p, s)]

    return run(0, None)[1] + Counter({None: 1})


def _repeat(step, s: Any, n: int) -> tuple[Any, Counter]:
    """``step`` applied ``n`` times from state ``s``: the final state and the summed counts,
    the cycle the states enter multiplied out."""
    seen, states, cum = {s: 0}, [s], [Counter()]
    for k in range(1, n + 1):
        s, c = step(s)
        states.append(s)
        cum.append(cum[-1] + c)
        if k == n:
            break
        if s in seen:
            c0 = seen[s]
            q, r = divmod(n - k, k - c0)
            per = cum[k] - cum[c0]
            return states[c0 + r], cum[k] + Counter({t: v * q for t, v in per.items()}) + (cum[c0 + r] - cum[c0])
        seen[s] = k
    return s, cum[-1]


def level_ticks(loops: tuple[Loop, ...], sp: _Space, i: int, extrapolate: bool) -> list[tuple[tuple[int, ...], int]]:
    """Per temporal loop of the levels outside ``i``, outermost first: the translation of level
    ``i``'s tile of ``sp``'s tensor when that loop steps (the loops inside it restarting: back by
    ``f - 1`` of their steps, or by 1 when ``extrapolate``d), and the loop's factor."""
    time = [lp for lp in loops if lp.level < i and not lp.spatial]
    ticks = []
    for p, lp in enumerate(time):
        back = [(1 if extrapolate else q.factor - 1, sp.disp[q]) for q in time[p + 1:]]
        ticks.append((tuple(a - sum(v * b[d] for v, b in back) for d, a in enumerate(sp.disp[lp])), lp.factor))
    return ticks


def level_events(cfg: NestConfig, loops: tuple[Loop, ...], sp: _Space, i: int) -> Counter:
    """The weighted tile events of one instance of storage level ``i`` for ``sp``'s tensor
    (:func:`_events` over the temporal loops of the levels outside ``i``)."""
    return _events(level_ticks(loops, sp, i, cfg.extrapolate), cfg.extrapolate)


def fan_union(sp: _Space, fan: list[Loop], M: list[int], part: list[int] | None = None) -> int:
    """Words of the union, over the spatial loops ``fan``, of tile ``M``'s ``part`` (per component,
    the part of each component's set; None: the whole tile). A point of the union is covered if
    every component reaches it and some component reaches it through its part, so the union is
    ``prod_c |M_c + F_c| - prod_c (|M_c + F_c| - |part_c + F_c|)``."""
    X = sp.sets(fan, M)
    if part is None:
        return _size(X)
    P = sp.sets(fan, part)
    return math.prod(x.bit_count() for x in X) - math.prod(x.bit_count() - y.bit_count() for x, y in zip(X, P))


def nest_counts(cfg: NestConfig, loops: tuple[Loop, ...] | None = None
                ) -> dict[tuple[int, str], tuple[int, int, int, int]]:
    """Per storage level i and tensor t it keeps: (tile words, partition P, own fills D, words it
    serves its child U), D, P and U summed over the level's instances (the docstring's model),
    in closed form from the loops' progressions and the tile events per kind."""
    loops = build_loops(cfg) if loops is None else loops
    n = len(cfg.levels)
    out = {}
    for op in cfg.operands:
        sp = _Space(op, loops)
        chain = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep] + [n]
        molds = {i: sp.sets([lp for lp in loops if lp.level >= i]) for i in chain}
        inst = {i: math.prod(lp.factor for lp in loops if lp.spatial and lp.level < i) for i in chain}
        kinds = {i: level_events(cfg, loops, sp, i) for i in chain[:-1]}
        for k, i in enumerate(chain[:-1]):
            M, tile = molds[i], _size(molds[i])
            P = inst[i] * _size(sp.sets([lp for lp in loops if lp.level < i and not lp.spatial], M))
            D = inst[i] * sum(w * (tile if d is None else tile - _size(
                [m & _shift(m, -sp.enc(c, d)) for c, m in enumerate(M)])) for d, w in kinds[i].items())
            child = chain[k + 1]
            fan = [lp for lp in loops if lp.spatial and i <= lp.level < child]
            Mc = molds[child]
            if child == n:  # the compute level takes its point at every MAC
                U = inst[i] * math.prod(lp.factor for lp in loops if not lp.spatial) * fan_union(sp, fan, Mc)
            else:
                U = inst[i] * sum(w * fan_union(sp, fan, Mc, None if d is None else
                                                [m & ~_shift(m, -sp.enc(c, d)) for c, m in enumerate(Mc)])
                                  for d, w in kinds[child].items())
            out[(i, op.name)] = (tile, P, D, U)
    return out


def port_bank_cycles(lv, per: dict[str, tuple], arch_name=lambda t: t) -> tuple[int, str]:
    """A level's port and bank bound per instance, and which one it is ('ports' or 'banks';
    0 and '' without either). ``per[t] = (tile, partition, reads, fills, updates)`` per instance.
    Every read, fill and update is an access of whole blocks, ``a_t = ceil(r/B) + ceil(f/B) +
    ceil(u/B)`` (the blocks the energy charges), ``A = sum_t a_t``. ``ports: p``: p accesses per
    cycle, shared by reads and writes: ``ceil(A / p)``. ``banks: {count: N, bandwidth: W}``:
    blocks interleaved over the banks (block b in bank b mod N), each bank serving W words per
    cycle, so the busiest bank takes ``ceil(A / N)`` blocks: ``ceil(ceil(A / N) B / W)``; with
    ``assign: {t: n_t}`` each tensor lives in its own n_t banks: ``max_t ceil(ceil(a_t / n_t) B /
    W)`` (``assign`` names the arch's tensors: ``arch_name`` maps the Einsum's to them). Like the
    bandwidth bounds, the traffic is taken as spread evenly over the run."""
    B = lv.block_size
    return block_cycles(lv, {t: sum(math.ceil(x / B) for x in c[2:5]) for t, c in per.items()}, arch_name)


def block_cycles(lv, blocks: dict[str, int | Fraction], arch_name=lambda t: t, whole: bool = True
                 ) -> tuple[int, str]:
    """:func:`port_bank_cycles` from the block accesses per tensor: ``ceil(A / ports)``, and the
    busiest bank's blocks, ``ceil(A / N)`` (or ``ceil(a_t / n_t)`` assigned), times ``B / W``.
    ``whole=False`` takes a bank's share as a fraction of blocks (a block read that feeds several
    MAC steps, :mod:`sim.nest_timeline`)."""
    best, what = 0, ""
    if lv.ports is not None:
        best, what = math.ceil(Fraction(sum(blocks.values())) / lv.ports), "ports"
    bk = lv.banks
    if bk is not None:
        share = [(sum(blocks.values()), bk.count)] if bk.assign is None else \
            [(a, bk.assign[arch_name(t)]) for t, a in blocks.items()]
        busiest = [Fraction(a) / n if not whole else math.ceil(Fraction(a) / n) for a, n in share]
        c = math.ceil(max(busiest, default=0) * lv.block_size / bk.bandwidth)
        if c > best:
            best, what = c, "banks"
    return best, what


def level_bound(lv, per: dict[str, tuple], arch_name=lambda t: t) -> tuple[int, str]:
    """A level's cycle bound per instance over ``per[t] = (tile, partition, reads, fills,
    updates)``: its reads over ``read_bw``, its fills and updates over ``write_bw``, or its ports
    or banks (:func:`port_bank_cycles`), whichever is longest, and which ('bandwidth', 'ports',
    'banks')."""
    cyc = 0
    if lv.read_bw is not None:
        cyc = max(cyc, math.ceil(sum(c[2] for c in per.values()) / lv.read_bw))
    if lv.write_bw is not None:
        cyc = max(cyc, math.ceil(sum(c[3] + c[4] for c in per.values()) / lv.write_bw))
    pb, what = port_bank_cycles(lv, per, arch_name)
    return (pb, what) if pb > cyc else (cyc, "bandwidth")


def level_stats(lv, per: dict[str, tuple], utilized: int, cycles: int, bound: tuple[int, str], output: str
                ) -> LevelStats:
    """A level's :class:`LevelStats` from its per-instance ``per[t] = (tile, partition, reads, fills,
    updates)``: energy per tensor ``(ceil(r/B) E_read + ceil(f/B) E_write + ceil(u/B) E_update) x
    utilized``, leakage over ``cycles`` on every instance, and its ``bound`` (:func:`level_bound`)."""
    B, E = lv.block_size, lv.energy
    tens = {t: TensorStats(tile, part, r, f, u, (math.ceil(r / B) * E["read"] + math.ceil(f / B) * E["write"]
                                                 + math.ceil(u / B) * E["update"]) * utilized, t == output)
            for t, (tile, part, r, f, u) in per.items()}
    leak = E["leak"] * cycles * lv.instances
    return LevelStats(lv.name, lv.instances, utilized, tens, leak, bound[0],
                      sum(st.energy_pj for st in tens.values()) + leak, lv.word_bits,
                      None if lv.area_um2 is None else lv.area_um2 * lv.instances, lv.component, bound[1])


def simulate_nest(cfg: NestConfig, every_step: bool = False) -> NestResult:
    """Counts, cycles and energy of ``cfg`` (the model is this module's docstring; a level's
    ``network:`` is costed by :mod:`sim.network`)."""
    from sim.nest_timeline import nest_timeline  # they build on this module's tile sets
    from sim.network import network_stats
    arch, loops = cfg.arch, build_loops(cfg)
    out = next(o for o in cfg.operands if o.is_output)
    n = len(arch.levels)
    util = [math.prod(lp.factor for lp in loops if lp.spatial and lp.level < i) for i in range(n + 1)]
    raw = nest_counts(cfg, loops)
    computes = cfg.computes
    macs = util[n]
    compute_cycles = -(-computes // macs)
    counts: list[dict[str, tuple]] = []
    bound = compute_cycles
    level_cycles, limits = [], []
    for i, (lv, lm) in enumerate(zip(arch.levels, cfg.levels)):
        per: dict[str, tuple] = {}
        for op in cfg.operands:
            if op.name not in lm.keep:
                continue
            tile, P, D, u = raw[(i, op.name)]
            ui = util[i]
            top = i == cfg.root(op.name)  # its backing store: nothing above fills it
            if op.is_output:
                upd = Fraction(u, ui)
                reads = Fraction(u - P, ui)
                fills = Fraction(0) if top else Fraction(D - (0 if cfg.output_first_fill else P), ui)
            else:
                upd = Fraction(0)
                reads = Fraction(u, ui)
                fills = Fraction(0) if top else Fraction(D, ui)
            per[op.name] = (tile, Fraction(P, ui), reads, fills, upd)
        counts.append(per)
        cyc, limit = level_bound(lv, per, cfg.arch_name)
        limits.append(limit)
        level_cycles.append(cyc)
        bound = max(bound, cyc)
    nets = network_stats(cfg, loops) if any(lv.network for lv in arch.levels) else ()
    bound = max([bound] + [nw.cycles for nw in nets])
    latency = sum(nw.latency for nw in nets)
    tl = nest_timeline(cfg, loops, every_step=every_step)
    cycles = max(bound + latency, tl.cycles)
    levels = []
    for i, (lv, per) in enumerate(zip(arch.levels, counts)):
        levels.append(level_stats(lv, per, util[i], cycles, (level_cycles[i], limits[i]), out.name))
    mac_e = computes * arch.compute.energy_pj
    total = mac_e + sum(lv.energy_pj for lv in levels) + sum(nw.energy_pj for nw in nets)
    area = None if arch.compute.area_um2 is None else arch.compute.area_um2 * arch.compute.instances
    label = cfg.cascade.name if len(cfg.cascade.einsums) == 1 else f"{cfg.cascade.name}.{cfg.einsum.name}"
    return NestResult(label, arch.name, computes, macs, compute_cycles, cycles, mac_e, tuple(levels),
                      total, loops, arch.clock_hz, raw[(cfg.root(out.name), out.name)][0],
                      sum(raw[(cfg.root(o.name), o.name)][0] for o in cfg.operands), arch.compute.instances, area,
                      arch.compute.component, nets, latency, arch.energy_unit,
                      {r: (n, cfg.ranks[r]) for r, n in cfg.pad.items()}, cfg.useful_computes, tl, bound + latency,
                      arch.vector is not None, None if arch.vector is None or arch.vector.area_um2 is None
                      else arch.vector.area_um2 * arch.levels[arch.vector.level].instances)


# ----------------------------------------------------------------------------------
