"""The cycle-level simulator: steps a mapped cascade tile by tile.

Model
-----
Groups of fused Einsums run one after the other (a group reads what earlier groups
spilled to the backing store). A group's loop nest is an outermost *instance* loop
(batch x heads, serialised) around the mapping's tile loops; the innermost iteration
is a *step*. Per step:

* **Compute.** Every Einsum of the group that iterates the innermost loop does its
  tile on its unit. A step is a sequence of *stages*; within a stage the 2-D and 1-D
  units work in parallel, each running its Einsums back to back, so a stage lasts
  ``max over units`` (on a unit with ``chain_stage`` its Einsums of a stage form one
  pipeline: the longest of them, not their sum) and a step ``sum over stages``.
  Einsums marked *deferred* run in
  the next step (software pipelining, as FuseMax overlaps RD/RNV of chunk i with QK of
  chunk i+1); Einsums that iterate only outer loops run before (``pre``) or after
  (``post``) their inner loops, a deferred ``post`` inside the next step. A last
  *epilogue* step drains what is still deferred.
  Cycles of one Einsum on its tile: 2-D sums of products use the systolic closed forms
  of :mod:`sim.systolic` (fill/drain per the arch); everything else costs
  ``ceil(sum_a actions_a * cycles_a / lanes) + latency - 1`` (``max_a`` instead of the
  sum when the unit chains element-wise ops, ``fuse_elementwise``). On the 2-D array
  element-wise and reduction work is also at least as long as its operands take to
  enter the PEs through the array's edges (``R + C`` words per cycle) and its result to
  leave them when another unit reads it in the same step or it is written back: an
  operand is free only when the group produced it in the PEs (an output-stationary sum
  of products or element-wise work, e.g. FuseMax's QK tile for LM and SLN) and a step's
  tile of it fits the PEs' register files. Otherwise the array would be a free vector
  unit of R x C lanes for data that is not in it (:mod:`sim.systolic` states the rule).
  A step is also at least as long as the buffer-level traffic takes at that level's
  read and write bandwidth (a stall otherwise).
* **Backing-store traffic.** A group input tile is (re)loaded when its tile index
  changes from the previous step (so a stationary tensor is loaded once); a group
  output tile is written when the next step moves off it, and read back (partial
  sums) when re-entered after an outer loop of a rank it lacks has advanced.
  Tensors produced and consumed inside the group never leave the chip.
* **Timing.** Loads of step i+1 overlap compute of step i when the buffer is double
  buffered (a load waits for the buffer slot of step i-1 to be released), and write-
  backs overlap the next compute; without double buffering load, compute and store
  serialise (k step buffers generalise this: loads run up to k steps ahead). The
  backing store has one channel shared by reads and writes (``shared_rw``) or one each.

Ragged chunks
-------------
A partition whose chunk P0 does not divide P (:mod:`einsum.ragged`) has a partial last
chunk of ``r = P - (P1 - 1) P0`` elements. The tile that holds it has those extents
(``P0 = r`` when the tile is one chunk, the parent's real extent when it is several), so
its work, operands and traffic are those of the ``r`` real elements, and its systolic
time is that of ``r`` on the array (a chunk spread over the columns is one fold either
way). Only the last body of the chunk loop holds it, so the fast mode below still holds.

Indirect access
---------------
A group input read only through gathers (``K[IDX[g, j], e]``, :mod:`einsum.indexing`)
is not loaded as a tile: each step reads its rows, one per point of the indices the
index tensor is subscripted with, each row as wide as the tile of K's other dimensions
and rounded up to whole accesses of the backing store (``access_bits``), with no reuse
between rows or steps; the target of a scatter (``Y[IDX[t, k], d] += ..``) that leaves
the group is read and written the same way (read-modify-write). A gather through a sorted
index (:func:`einsum.indexing.sorted_dims`) charges the bound on its distinct rows, at most
``range + tiles - 1`` over the tiles of its index. A tensor named in the group's
``hold:`` is kept on chip instead and moves once, like any held tensor. Which tensors
were costed how is in the result's ``indirect`` (:mod:`sim.results`).

Several cores
-------------
An arch with ``cores: N`` (:mod:`mapping.cores`) has N identical copies of its compute units
and on-chip levels under one backing store. The cores split the instance loop (batch x
heads): with ``I = q N + r`` instances, every group runs in two phases, all N cores on q
instances each, then r cores (0 .. r-1) on one more, and the next group starts when the
last core is done (groups are layer-synchronous across cores, as they are serial on one
core). The backing store is shared *fairly* (processor sharing): while n cores are
backlogged each is served at ``1 / n`` of its bandwidth. Within a phase the n cores run the
same steps on the same tile shapes from the same start, so they are backlogged together
and idle together, and each one's timeline is exactly that of one core whose backing store
has ``1 / n`` of the bandwidth: that is what the phase simulates (one core, every counter
of the timeline from it; traffic, work and actions times n). A network (``noc:``) caps the
bandwidth the cores can share at what its busiest link carries (``Noc.link_cap``), delays
every load's data and the last write-back by the farthest core's ``hops x hop_latency``
(pipelined: the channel is not held), and costs ``words x hops`` word-hops per core. The
cycles of the phase are the farthest core's, which has the same bandwidth share and the
longest latency, so it is the critical path.

Exact integer time
------------------
Times are exact rationals (a word costs ``1 / bandwidth`` cycles, a stage on the 2-D array's
edges ``words / (R + C)``), but the timeline never holds a :class:`~fractions.Fraction`: it
counts *ticks* of ``1 / D`` cycle, with ``D`` a common multiple of every denominator the run
meets (:class:`TimeBase`), so the per-step recurrence and the counters are integer additions
and maxima, which are exact and several times faster than Fraction arithmetic. ``D`` starts
as the least common multiple of the backing store's bandwidth numerators (a word is then a
whole number of ticks); a step cost with a denominator that does not divide ``D`` restarts
the run with ``D := lcm(D, denominator)`` (:class:`_Rescale`), so no value is ever rounded.
Results leave the engine as Fractions again (``Sim.end_time``, ``Sim.group_cycles``, the
counters of :data:`TIME_KEYS`), equal to what rational arithmetic gives.

Exactness of the fast mode
--------------------------
The step recurrence is a max-plus linear map of the state (channel-free and compute-
end times), hence additively homogeneous: ``F(s + c) = F(s) + c``. Bodies 1 .. n-2 of
every loop are identical (same tile extents, same reload/write-back decisions, same
deferred work carried in). So once one middle body shifts every state component by
the same constant ``c`` and adds the same counters as the body before it, every later
middle body does the same, and the simulator jumps over them exactly (state + k c,
counters x k). The last body (possibly a partial tile) is always stepped.
``fast=False`` steps every tile; tests check both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Mapping

from einsum import expr as E
from einsum.cascade import Cascade, Einsum
from einsum.indexing import sorted_dims
from einsum.ragged import (chunk_points, is_chunk_rank, last_chunk, masked_pairs, ragged_pairs,
                           space_points)
from mapping.arch import Arch, ComputeUnit
from mapping.spec import Config, EinsumMap, Group, einsum_depth
from mapping.footprint import (group_tensors, indirect_rows, indirect_tensors, indirect_words, rank_extent,
                               rank_related, tensor_footprint)

from .systolic import compute_cycles, psum_words

ZERO = Fraction(0)

#: Counters of one core's timeline (with several cores: the critical core's, not summed).
TIMELINE_KEYS = frozenset({"stage_time", "buf_stall", "compute"})
#: Counters whose values are cycles (kept in ticks while the engine runs, :class:`TimeBase`).
TIME_KEYS = frozenset({"einsum_cycles", "busy", "pe_cycles", "einsum_pe", "stage_time", "buf_stall", "compute"})


class _Rescale(Exception):
    """A value with denominator ``den`` does not fit the time base: rerun with a finer one."""

    def __init__(self, den: int):
        super().__init__(den)
        self.den = den


class TimeBase:
    """Ticks of ``1 / D`` cycle (see "Exact integer time" above)."""

    def __init__(self, d: int):
        self.d = d

    def ticks(self, x: Any) -> int:
        """``x`` cycles (an int or a Fraction) in ticks, exactly, or :class:`_Rescale`."""
        if isinstance(x, int):
            return x * self.d
        q, r = divmod(self.d, x.denominator)
        if r:
            raise _Rescale(x.denominator)
        return x.numerator * q

    def cycles(self, t: int) -> Fraction | int:
        """Ticks back to cycles (an int when whole)."""
        q, r = divmod(t, self.d)
        return Fraction(t, self.d) if r else q


#: the time base a (arch, cascade, shapes) last needed, so that a search's many runs of one
#: layer restart at most once (a hint only: any D is exact)
_D_HINT: dict[tuple, int] = {}


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


@dataclass
class Counters:
    """Additive per-run quantities (all exact integers or Fractions)."""

    v: dict[tuple, Any] = field(default_factory=dict)

    def add(self, key: tuple, x: Any) -> None:
        if x:
            self.v[key] = self.v.get(key, 0) + x

    def snapshot(self) -> dict[tuple, Any]:
        return dict(self.v)

    def diff(self, before: Mapping[tuple, Any]) -> dict[tuple, Any]:
        return {k: x - before.get(k, 0) for k, x in self.v.items() if x != before.get(k, 0)}

    def add_scaled(self, d: Mapping[tuple, Any], k: int) -> None:
        for key, x in d.items():
            self.v[key] = self.v.get(key, 0) + x * k


@dataclass(frozen=True)
class StepCost:
    stages: tuple[tuple[Fraction, ...], ...]  # per stage, per unit work in cycles
    compute: int  # ticks (TimeBase) after buffer-bandwidth stalls
    dram_read: int  # words
    dram_write: int
    counters: tuple[tuple[tuple, Any], ...]  # TIME_KEYS values in ticks
    deferred_out: tuple  # pending work handed to the next step (hashable)
    read_ticks: int  # the backing store's time for dram_read / dram_write
    write_ticks: int


class GroupSim:
    """Simulates one fused group; the state is shared through :class:`Sim`."""

    def __init__(self, sim: "Sim", g: Group):
        self.sim, self.g = sim, g
        c, cfg = sim.c, sim.cfg
        self.c = c
        self.maps = cfg.mapping.einsums
        self.units = list(sim.arch.units)
        self.ins, self.outs, self.inter = group_tensors(c, g.einsums)
        # level 0 is the instance loop, related to every tensor
        self.trips = [sim.cfg.instances] + [lp.trips for lp in g.loops]
        self.L = len(self.trips)
        self.depth = {n: einsum_depth(c, g, n) + 1 for n in g.einsums}
        self.role: dict[str, str] = {}
        for n in g.einsums:
            d = self.depth[n]
            if d == self.L - 1:
                self.role[n] = "inner"
            else:
                deeper = {c.einsum(m).output for m in g.einsums if self.depth[m] > d}
                self.role[n] = "post" if any(t in deeper for t in c.einsum(n).reads) else "pre"
        self.stage_of = {n: si for si, s in enumerate(g.stages) for n in s}
        self.nstages = len(g.stages)
        self.unit_ix = {u: i for i, u in enumerate(self.units)}
        # tensors: which loop levels are related
        self.related: dict[str, tuple[int, ...]] = {}
        for t in set(self.ins) | set(self.outs) | set(self.inter):
            info = c.tensors[t]
            rel = [0]
            for li, lp in enumerate(g.loops, start=1):
                if any(rank_related(c, lp.rank, r) for r in info.ranks):
                    rel.append(li)
            self.related[t] = tuple(rel)
        # indirect access (einsum.indexing): a gathered input not held on chip is read row by
        # row, a scatter's target (an output of the group, not held) read-modify-written
        gathered, scattered = indirect_tensors(c, g.einsums)
        self.gather_in = {t: u for t, u in gathered.items() if t not in g.hold}
        self.scatter_out = {t: u for t, u in scattered.items() if t in self.outs and t not in g.hold}
        for t, uses in (self.gather_in | self.scatter_out).items():
            ranks = set()
            for _, acc in uses:
                for d, sub in enumerate(acc.subscripts):
                    if isinstance(sub, E.Access):
                        ranks |= {c.rank_of_index(ix).name for ix in E.indices_in(sub)}
                    else:
                        ranks.add(c.tensors[t].ranks[d])
            self.related[t] = (0,) + tuple(li for li, lp in enumerate(g.loops, start=1)
                                           if any(rank_related(c, lp.rank, r) for r in ranks))
        self.access_words = sim.arch.levels[0].access_words
        self.sorted_dims = sorted_dims(c)  # gathers through a sorted index repeat rows
        for kind, found, costed in (("gather", gathered, self.gather_in),
                                    ("scatter", {t: u for t, u in scattered.items() if t in self.outs},
                                     self.scatter_out)):
            for t in found:
                ent = sim.indirect.setdefault(t, {"kind": kind, "groups": {}})
                ent["groups"][g.name] = "per row" if t in costed else "held on chip"
        producer = {c.einsum(n).output: n for n in g.einsums}
        self.late_out = {t for t in self.outs if self.role[producer[t]] != "inner" or producer[t] in g.deferred}
        self.producer = producer
        self.hold = {t: h + 1 for t, h in g.hold.items()}  # engine levels: 0 is the instance loop
        self.free_alias: dict[str, tuple[str, ...]] = {}
        for n in g.einsums:
            e = c.einsum(n)
            if self.maps[n].free and e.kind != "init":
                self.free_alias[e.output] = e.reads
        self.chain_levels = self._chain_levels()
        self.ragged = ragged_pairs(c)
        self.chunk_ranks = {i: [q for q in c.ranks if q != i and is_chunk_rank(c, q, i)]
                            for _, i in self.ragged.values()}
        self._cache: dict[tuple, StepCost] = {}
        self._ecache: dict[tuple, tuple] = {}
        self._sig: dict[tuple, tuple] = {}  # inner_step's flags per step signature
        self.state: list[int] = sim.state  # ticks
        self.counters = sim.counters
        self.trace = sim.trace

    def _chain_levels(self) -> dict[str, tuple[int, ...]]:
        """Per output-stationary sum of products on the 2-D array whose reduced rank the
        innermost loops tile: those loop levels. While one of them has steps to go, the
        next step continues the same output tile (partial sums may stay in the PEs,
        :func:`sim.systolic.psum_chains`). Only when it is the group's one 2-D Einsum:
        another one between its K tiles would need the PEs."""
        c, g = self.c, self.g
        on2d = [n for n in g.einsums if self.maps[n].unit == "array2d" and not self.maps[n].free]
        out: dict[str, tuple[int, ...]] = {}
        if len(on2d) != 1:
            return out
        n = on2d[0]
        em, e = self.maps[n], c.einsum(n)
        if (em.dataflow != "os" or not (em.rows or em.cols) or not self.sim.cfg.counts[n].counts.get("mac")
                or self.role[n] != "inner" or n in g.deferred):
            return out
        red = {c.rank_of_index(ix).name for ix in e.reduced}
        levels: list[int] = []
        for li in range(self.L - 1, 0, -1):
            if not any(rank_related(c, g.loops[li - 1].rank, r) for r in red):
                break
            levels.append(li)
        if levels:
            out[n] = tuple(levels)
        return out

    # -- per-Einsum tile costs --------------------------------------------------------
    def ext_of(self, idx: tuple[int, ...]) -> dict[str, int]:
        """Tile extents of the step at loop indices ``idx`` (per loop rank). A tile that
        holds the last, partial chunk of a ragged partition (:mod:`einsum.ragged`) also
        gives where it starts (``'P1>'``, ``'P0>'``: only in that last body, so the
        middle bodies stay identical) and the extents that chunk really has: a one-chunk
        tile has ``P0 = r`` (and every alias of the chunk rank), a tile of several
        chunks the parent's real extent (``P``)."""
        c = self.c
        pos = {lp.rank: (i * lp.tile, lp.extent(i)) for lp, i in zip(self.g.loops, idx[1:])}
        ext = {r: n for r, (_, n) in pos.items()}
        for parent, (o, i) in self.ragged.items():
            if o not in pos:
                continue
            a0, na = pos[o]
            outer = c.ranks[o].size
            if a0 + na < outer:
                continue  # whole chunks only
            r = last_chunk(c, parent)
            b0, nb = pos.get(i, (0, c.ranks[i].size))
            ext[o + ">"] = a0
            if i in pos:
                ext[i + ">"] = b0
            if na == 1:
                real = max(0, min(b0 + nb, r) - b0)
                for q in self.chunk_ranks[i]:
                    if q not in pos:
                        ext[q] = r
                ext[i] = real
            else:
                ext[parent] = chunk_points(c, parent, (a0, a0 + na), [(b0, b0 + nb)])
        return ext

    def einsum_cost(self, n: str, ext: Mapping[str, int], cont: bool = False) -> tuple:
        key = (n, tuple(sorted(ext.items())), cont)
        hit = self._ecache.get(key)
        if hit is not None:
            return hit
        c, sim = self.c, self.sim
        e = c.einsum(n)
        em: EinsumMap = self.maps[n]
        oc = sim.cfg.counts[n]
        u: ComputeUnit = sim.arch.units[em.unit]
        iext = {ix: rank_extent(c, c.rank_of_index(ix).name, ext) for ix in e.iter_indices}
        pts = math.prod(iext.values()) if iext else 1
        dense = math.prod(c.index_size(ix) for ix in e.iter_indices)
        if masked_pairs(c, e.iter_indices):
            # a ragged chunk: only the points that name elements (einsum.ragged)
            def span(ix: str) -> tuple[int, int]:
                lo = ext.get(c.rank_of_index(ix).name + ">", 0)
                return lo, lo + iext[ix]
            pts = space_points(c, e.iter_indices, {ix: span(ix) for ix in e.iter_indices})
            dense = space_points(c, e.iter_indices)
        if em.free or oc.points == 0:
            res = (ZERO, 0, ZERO, (), ())
            self._ecache[key] = res
            return res
        # a 'where' filter's work is spread evenly over the dense iteration space
        frac = Fraction(pts, dense)
        acts = {a: Fraction(v) * frac for a, v in oc.counts.items() if v}
        w_in, w_out = self.edge_words(n, ext) if u.is_2d and not (acts.get("mac") and (em.rows or em.cols)) \
            else (0, 0)
        cyc, pe, folds_by_ix = compute_cycles(u, em, iext, acts, w_in, w_out, cont)
        # buffer-level traffic (words) per tensor: operands not register-resident
        breads: list[tuple[str, int]] = []
        for t in e.reads:
            srcs = self.free_alias.get(t, (t,))
            for s in srcs:
                p = self.producer.get(s)
                if p is not None and self.maps[p].unit == em.unit and s not in self.outs and s not in self.free_alias:
                    continue  # produced on this unit in this group: stays in its registers
                refetch = 1
                tix = {ix for acc in [s] for ix in self._tensor_indices(e, t)}
                for ix, k in folds_by_ix.items():
                    if ix not in tix:
                        refetch *= k
                if s in self.gather_in:  # a gather reads the step's rows, not the whole source
                    uses = [u for u in self.gather_in[s] if u[0] == n] or self.gather_in[s]
                    words = indirect_words(c, uses, ext)
                else:
                    words = tensor_footprint(c, s, ext)
                breads.append((s, words * refetch))
        bwrites: list[tuple[str, int]] = []
        out = e.output
        out_words = math.prod(iext[ix] for ix in e.lhs_indices if ix in iext)
        cons_units = {self.maps[m].unit for m in self.g.einsums if out in c.einsum(m).reads}
        if out in self.outs or cons_units - {em.unit}:
            bwrites.append((out, out_words))
        if acts.get("mac"):  # WS / IS: each fold over a reduced index accumulates through the buffer
            ps = psum_words(u, em, e.reduced, folds_by_ix, out_words)
            if ps:
                breads.append((out, ps))
                bwrites.append((out, ps))
        res = (cyc, pts, Fraction(pe), tuple(breads), tuple(bwrites))
        self._ecache[key] = res
        return res

    def leaves_in_pes(self, p: str) -> bool:
        """Does Einsum ``p`` leave its result in the 2-D array's PEs? An output-stationary
        sum of products (or the broadcast array) accumulates in place and element-wise work
        writes where it computes; a reduction forms its result at the array's edge and a
        weight- or input-stationary array streams its results out of it."""
        em = self.maps[p]
        if em.unit != "array2d" or em.free:
            return False
        e = self.c.einsum(p)
        if self.sim.cfg.counts[p].counts.get("mac") and (em.rows or em.cols):
            return em.dataflow == "os" or self.sim.arch.units["array2d"].timing == "broadcast"
        return not e.reduced

    def edge_words(self, n: str, ext: Mapping[str, int]) -> tuple[int, int]:
        """Words that enter and leave the 2-D array's PEs through its edges for Einsum
        ``n``'s tile (element-wise or reduction work, :func:`sim.systolic.compute_cycles`):
        every operand not resident in the PEs (resident: produced in this group by an
        Einsum that leaves it there, one step's tile of it fitting the register files),
        and the result when another unit reads it in the same step or the step writes it
        back."""
        c = self.c
        u = self.sim.arch.units["array2d"]
        e = c.einsum(n)
        w_in = 0
        for t in e.reads:
            for s in self.free_alias.get(t, (t,)):
                words = tensor_footprint(c, s, ext)
                p = self.producer.get(s)
                if p is not None and self.leaves_in_pes(p) and -(-words // u.lanes) <= u.rf_entries:
                    continue
                w_in += words
        out = e.output
        leaves = out in self.outs and out not in self.late_out
        for m in self.g.einsums:
            if (out in c.einsum(m).reads and self.maps[m].unit != "array2d" and not self.maps[m].free
                    and self.depth[m] == self.depth[n]):
                leaves = True
        return w_in, tensor_footprint(c, out, ext) if leaves else 0

    def _tensor_indices(self, e: Einsum, t: str) -> set[str]:
        from einsum import expr as E
        out: set[str] = set()
        for acc in E.accesses_in(e.stmt.rhs):
            if acc.tensor == t:
                for s in acc.subscripts:
                    out.update(E.indices_in(s))
        return out

    # -- step costs ------------------------------------------------------------------
    def work_of(self, names: list[str], ext: Mapping[str, int], ctr: list, cont: tuple = ()
                ) -> list[list[Fraction]]:
        """Stage x unit work of ``names`` on tiles ``ext``; appends counters to ``ctr``
        (``cont``: Einsums whose next step continues their output tile)."""
        w = [[ZERO] * len(self.units) for _ in range(self.nstages)]
        for n in names:
            cyc, pts, pe, breads, bwrites = self.einsum_cost(n, ext, n in cont)
            ui = self.unit_ix[self.maps[n].unit]
            si = self.stage_of[n]
            w[si][ui] = self._stage_add(ui, w[si][ui], cyc)
            u = self.maps[n].unit
            ctr.append((("einsum_cycles", n), cyc))
            ctr.append((("points", n), pts))
            ctr.append((("busy", u), cyc))
            ctr.append((("pe_cycles", u), pe))
            ctr.append((("einsum_pe", n), pe))
            for t, x in breads:
                ctr.append((("buf_read", t), x))
                ctr.append((("einsum_buf_read", n), x))
            for t, x in bwrites:
                ctr.append((("buf_write", t), x))
                ctr.append((("einsum_buf_write", n), x))
            e = self.c.einsum(n)
            if pts and not self.maps[n].free:
                ctr.append((("rf_read", u), pts * len(e.reads)))
                ctr.append((("rf_write", u), pts))
        return w

    def _stage_add(self, ui: int, have: Fraction, cyc: Fraction) -> Fraction:
        """A unit's share of a stage with one more Einsum: back to back (the sum), or, on a
        unit that chains a stage's Einsums into one pipeline (``chain_stage``), the longest."""
        return max(have, cyc) if self.sim.arch.units[self.units[ui]].chain_stage else have + cyc

    def step_cost(self, kind: str, ext_key: tuple, flags: tuple, pending: tuple) -> StepCost:
        key = (kind, ext_key, flags, pending)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        c, g = self.c, self.g
        ext = dict(ext_key)
        ctr: list = []
        dram_r = dram_w = 0
        if kind == "inner":
            names = [n for n in g.einsums if self.role[n] == "inner" and n not in g.deferred]
            reload, write, readback, cont = flags
            for t, f in zip(self.ins, reload):
                if f:
                    x = self._indirect(t, ext, ctr) if t in self.gather_in else tensor_footprint(c, t, ext)
                    dram_r += x
                    ctr.append((("dram_read", t), x))
            outs_std = [t for t in self.outs if t not in self.late_out]
            for t, f, rb in zip(outs_std, write, readback):
                if t in self.scatter_out:  # read-modify-write of the step's rows
                    if f:
                        x = self._indirect(t, ext, ctr)
                        dram_r += x
                        dram_w += x
                        ctr.append((("dram_read", t), x))
                        ctr.append((("dram_write", t), x))
                    continue
                x = tensor_footprint(c, t, ext)
                if f:
                    dram_w += x
                    ctr.append((("dram_write", t), x))
                if rb:
                    dram_r += x
                    ctr.append((("dram_read", t), x))
            defer_names = tuple(n for n in g.einsums if self.role[n] == "inner" and n in g.deferred)
        else:  # "post": a compute-only step of post Einsums (names in flags)
            names = list(flags)
            defer_names = ()
            cont = ()
        w = self.work_of(names, ext, ctr, cont)
        # deferred work: what is due now runs in this step, the rest moves one step on
        carry = tuple((pn, pe, lag - 1) for pn, pe, lag in pending if lag > 1)
        for pnames, pext, _ in (x for x in pending if x[2] <= 1):
            pw = self.work_of(list(pnames), dict(pext), ctr)
            for si in range(self.nstages):
                for ui in range(len(self.units)):
                    w[si][ui] = self._stage_add(ui, w[si][ui], pw[si][ui])
            for n in pnames:
                t = c.einsum(n).output
                if t in self.late_out and self._completes(n):
                    r, x = self._late_write(t, dict(pext), ctr)
                    dram_r += r
                    dram_w += x
        for n in names:
            t = c.einsum(n).output
            if t in self.late_out and self._completes(n):
                r, x = self._late_write(t, ext, ctr)
                dram_r += r
                dram_w += x
        comp = sum((max(row) for row in w), ZERO)
        for row in w:  # a stage's time belongs to the unit that sets it (the first on a tie)
            if max(row):
                ctr.append((("stage_time", self.units[row.index(max(row))]), max(row)))
        # every on-chip level must move this step's words within the step (else: stall)
        levels = self.sim.arch.levels
        br = sum(x for k, x in ctr if k[0] == "buf_read")
        bw = sum(x for k, x in ctr if k[0] == "buf_write")
        rr = sum(x for k, x in ctr if k[0] == "rf_read")
        rw = sum(x for k, x in ctr if k[0] == "rf_write")
        stall_floor = max(Fraction(br + dram_w) / levels[1].read_bw, Fraction(bw + dram_r) / levels[1].write_bw)
        for i, lv in enumerate(levels[2:], start=2):
            inner = i == len(levels) - 1
            stall_floor = max(stall_floor, Fraction(bw + (rr if inner else 0)) / lv.read_bw,
                              Fraction(br + (rw if inner else 0)) / lv.write_bw)
        if stall_floor > comp:
            ctr.append((("buf_stall", self.g.name), stall_floor - comp))
            comp = stall_floor
        ctr.append((("compute", self.g.name), comp))
        agg: dict[tuple, Any] = {}
        for k, x in ctr:
            agg[k] = agg.get(k, 0) + x
        tb = self.sim.tb
        for k, x in agg.items():
            if k[0] in TIME_KEYS:
                agg[k] = tb.ticks(x)
        lags = sorted({g.deferred[n] for n in defer_names})
        out = carry + tuple((tuple(n for n in defer_names if g.deferred[n] == lag), ext_key, lag) for lag in lags)
        res = StepCost(tuple(tuple(r) for r in w), tb.ticks(comp), dram_r, dram_w, tuple(agg.items()), out,
                       dram_r * self.sim.read_tpw, dram_w * self.sim.write_tpw)
        self._cache[key] = res
        return res

    def _completes(self, n: str) -> bool:
        return True

    def _indirect(self, t: str, ext: Mapping[str, int], ctr: list) -> int:
        """Backing-store words of a gathered input's (a scatter target's) rows in a step:
        each row in whole accesses of the backing store (``access_bits``), no reuse
        between rows or steps."""
        uses = self.gather_in.get(t) or self.scatter_out[t]
        ctr.append((("indirect_rows", t), sum(indirect_rows(self.c, a, ext, self.sorted_dims)[0]
                                               for _, a in uses)))
        return indirect_words(self.c, uses, ext, self.access_words, self.sorted_dims)

    def _late_write(self, t: str, ext: Mapping[str, int], ctr: list) -> tuple[int, int]:
        """(read, written) words of a late output: a scatter target read-modify-written."""
        if t in self.scatter_out:
            x = self._indirect(t, ext, ctr)
            ctr.append((("dram_read", t), x))
            ctr.append((("dram_write", t), x))
            return x, x
        x = tensor_footprint(self.c, t, ext)
        ctr.append((("dram_write", t), x))
        return 0, x

    # -- timing ----------------------------------------------------------------------
    def advance(self, cost: StepCost, label: str) -> None:
        """One step of the timing recurrence.

        State ``[rd_free, wr_free, c_end(i-1) .. c_end(i-k), wr_end(i-1) .. wr_end(i-k)]``
        with k the buffer level's step buffers (2 = double buffering): step i's loads
        wait for the buffer slot that step i-k used (its compute end), its compute for
        the output slot step i-k wrote back. With separate read and write channels a
        step's write-back follows its compute on the write channel. With a shared
        channel (``shared_rw``, the default for the backing store) the channel serves, in
        order, step i's loads and then the write-back of step i-k+1 (queued in
        ``pend_w``; its data is ready by then), so prefetch runs up to k steps ahead and a
        memory-bound run costs (reads + writes) / bandwidth.
        """
        s = self.state
        arch = self.sim.arch
        dram = arch.levels[0]
        k = arch.levels[1].buffers
        wtpw = self.sim.write_tpw
        rd_free, wr_free = s[0], s[1]
        c_hist, w_hist = s[2:2 + k], s[2 + k:2 + 2 * k]
        c_end = c_hist[0]
        slot = c_hist[k - 1]
        wr_start = wr_end = None
        if dram.shared_rw:
            chan = rd_free
            rd_start = max(chan, slot)
            rd_end = rd_start + cost.read_ticks
            chan = rd_end if cost.dram_read else chan
            out_slot = w_hist[0]  # write-back of step i-k, issued during the previous step
            ready = rd_end + self.sim.lat_t if cost.dram_read else rd_end
            if k == 1:
                c_start = max(ready, c_end, out_slot)
                new_c = c_start + cost.compute
                wr_start = max(chan, new_c)
                wr_end = wr_start + cost.write_ticks if cost.dram_write else new_c
                if cost.dram_write:
                    chan = wr_end
                    self.sim.arrival = max(self.sim.arrival, wr_end + self.sim.lat_t)
                s[:] = [chan, wr_end, new_c, wr_end]
            else:
                # issue the write-back of step i-k+1 (ready when its compute ended)
                words = self.pend_w[-1]
                ready = c_hist[k - 2]
                if words:
                    wr_start = max(chan, ready)
                    wr_end = wr_start + words * wtpw
                    chan = wr_end
                    self.sim.arrival = max(self.sim.arrival, wr_end + self.sim.lat_t)
                else:
                    wr_end = ready
                c_start = max(rd_end + self.sim.lat_t if cost.dram_read else rd_end, c_end, out_slot)
                new_c = c_start + cost.compute
                s[:] = [chan, wr_end] + [new_c] + c_hist[:-1] + [wr_end] + w_hist[:-1]
                self.pend_w = (cost.dram_write,) + self.pend_w[:-1]
        else:
            out_slot = w_hist[k - 1]
            rd_start = max(rd_free, slot)
            rd_end = rd_start + cost.read_ticks
            c_start = max(rd_end + self.sim.lat_t if cost.dram_read else rd_end, c_end, out_slot)
            new_c = c_start + cost.compute
            wr_start = max(wr_free, new_c)
            wr_end = wr_start + cost.write_ticks
            if cost.dram_write:
                self.sim.arrival = max(self.sim.arrival, wr_end + self.sim.lat_t)
            s[:] = [rd_end if cost.dram_read else rd_free, wr_end] + [new_c] + c_hist[:-1] + [wr_end] + w_hist[:-1]
        for key, x in cost.counters:
            self.counters.v[key] = self.counters.v.get(key, 0) + x
        self.sim.steps += 1
        if self.trace is not None:
            cy = self.sim.tb.cycles
            self.trace.append((self.g.name, label, cy(rd_start), cy(rd_end), cy(c_start), cy(new_c),
                               None if wr_start is None else cy(wr_start), None if wr_end is None else cy(wr_end),
                               cost.dram_read, cost.dram_write,
                               *[sum(r[ui] for r in cost.stages) for ui in range(len(self.units))]))

    def flush(self) -> None:
        """Issue the write-backs still queued at the end of a group (shared channel)."""
        s = self.state
        dram = self.sim.arch.levels[0]
        k = self.sim.arch.levels[1].buffers
        for j in range(len(self.pend_w) - 1, -1, -1):  # oldest first
            words = self.pend_w[j]
            if words:
                ready = s[2 + j]
                start = max(s[0], ready)
                s[0] = s[1] = start + words * self.sim.write_tpw
                self.sim.arrival = max(self.sim.arrival, s[0] + self.sim.lat_t)
                cy = self.sim.tb.cycles
                self.trace is not None and self.trace.append(
                    (self.g.name, "writeback", None, None, None, None, cy(start), cy(s[0]), 0, words,
                     *[0] * len(self.units)))
        self.pend_w = (0,) * len(self.pend_w)

    # -- the loop nest -------------------------------------------------------------------
    def run(self) -> None:
        self.prev_idx: list[int] | None = None
        self.pending: tuple = ()
        self.pend_w = (0,) * (self.sim.arch.levels[1].buffers - 1)
        self.idx = [0] * self.L
        self.walk(0)
        while self.pending:
            cost = self.step_cost("post", (), (), self.pending)
            self.pending = cost.deferred_out
            self.advance(cost, "epilogue")
        self.flush()

    def walk(self, level: int) -> None:
        n = self.trips[level]
        g = self.g
        pre = [m for m in g.einsums if self.role[m] == "pre" and self.depth[m] == level]
        post = [m for m in g.einsums if self.role[m] == "post" and self.depth[m] == level]
        hist: list[tuple] = []
        j = 0
        while j < n:
            self.idx[level] = j
            for k in range(level + 1, self.L):
                self.idx[k] = 0
            s0 = list(self.state)
            c0 = self.counters.snapshot() if self.sim.fast and 1 <= j <= n - 2 else None
            p0 = (self.pending, self.pend_w)
            n0 = self.sim.steps + self.sim.steps_skipped
            if pre:
                ext = self.ext_of(tuple(self.idx))
                self.pending = self.pending + ((tuple(pre), tuple(sorted(ext.items())), 1),)
            if level == self.L - 1:
                self.inner_step()
            else:
                self.walk(level + 1)
            if post:
                ext = tuple(sorted({lp.rank: lp.extent(i) for lp, i, in
                                    zip(g.loops[:max(level, 0)], self.idx[1:level + 1])}.items()))
                dpost = tuple(m for m in post if m in g.deferred)
                npost = tuple(m for m in post if m not in g.deferred)
                if npost:
                    cost = self.step_cost("post", ext, npost, self.pending)
                    self.pending = cost.deferred_out
                    self.advance(cost, "post")
                for lag in sorted({g.deferred[m] for m in dpost}):
                    self.pending = self.pending + ((tuple(m for m in dpost if g.deferred[m] == lag), ext, lag),)
            if self.sim.fast and 1 <= j <= n - 2:
                delta = [a - b for a, b in zip(self.state, s0)]
                cd = self.counters.diff(c0)
                uniform = all(d == delta[0] for d in delta)
                p1 = (self.pending, self.pend_w)
                hist.append((delta, cd, p0, p1))
                if (uniform and len(hist) >= 2 and hist[-2][0] == delta and hist[-2][1] == cd
                        and p0 == p1 and hist[-2][2] == p0):
                    k = n - 2 - j
                    if k > 0:
                        self.state[:] = [x + delta[0] * k for x in self.state]
                        self.counters.add_scaled(cd, k)
                        self.sim.steps_skipped += k * (self.sim.steps + self.sim.steps_skipped - n0)
                        j += k
                        self.idx[level] = j
                        if self.prev_idx is not None:
                            self.prev_idx[level] = j
            j += 1

    def inner_step(self) -> None:
        idx = self.idx
        prev = self.prev_idx
        trips = self.trips
        # everything the step's flags and (without ragged chunks) its tile extents depend on:
        # which levels changed since the previous step, which loop advances next, which
        # indices are past their first and which at their last iteration
        last = tuple(i == t - 1 for i, t in zip(idx, trips))
        pos = tuple(i > 0 for i in idx)
        dprev = None if prev is None else tuple(p != i for p, i in zip(prev, idx))
        sig = (dprev, last, pos)
        hit = self._sig.get(sig)
        if hit is None:
            hit = self._sig[sig] = self._flags(dprev, last, pos)
        ext_key, flags = hit
        if ext_key is None:  # ragged: the last chunk's tile knows where it starts
            ext_key = tuple(sorted(self.ext_of(tuple(idx)).items()))
        cost = self.step_cost("inner", ext_key, flags, self.pending)
        self.pending = cost.deferred_out
        self.advance(cost, "step")
        self.prev_idx = list(idx)

    def _flags(self, dprev: tuple | None, last: tuple, pos: tuple) -> tuple[tuple | None, tuple]:
        """(tile extents or None when they depend on positions, (reload, write, readback,
        cont)) of a step: an input is reloaded when a loop it depends on changed (a held one
        only at its first use), an output written when the next step leaves its tile and read
        back when re-entered after an outer loop of a rank it lacks advanced."""
        L = self.L
        # the next step increments the innermost loop not at its last iteration and resets
        # those inside it; the levels whose index changes
        k_next = next((k for k in range(L - 1, -1, -1) if not last[k]), None)
        dnext = None if k_next is None else tuple(k == k_next or (k > k_next and pos[k]) for k in range(L))
        reload = tuple((dprev is None or any(dprev[k] for k in self.related[t]))
                       and (t not in self.hold or all(not pos[k] for k in range(self.hold[t], L)
                                                      if k not in self.related[t]))
                       for t in self.ins)
        outs_std = [t for t in self.outs if t not in self.late_out]
        write = tuple(dnext is None or any(dnext[k] for k in self.related[t]) for t in outs_std)
        readback = tuple((dprev is None or any(dprev[k] for k in self.related[t]))
                         and any(pos[k] for k in range(L) if k not in self.related[t]) for t in outs_std)
        cont = tuple(n for n, lv in self.chain_levels.items() if any(not last[k] for k in lv))
        ext_key = None
        if not self.ragged:
            # extents depend only on which loops are at their (possibly partial) last tile
            idx = tuple(t - 1 if la else 0 for t, la in zip(self.trips, last))
            ext_key = tuple(sorted(self.ext_of(idx).items()))
        return ext_key, (reload, write, readback, cont)


class Sim:
    """A run of a mapped cascade (:meth:`run`: every group in order; :meth:`run_alone`: one
    group by itself, as the search costs candidates). Times are kept in integer ticks
    (:class:`TimeBase`); ``end_time``, ``group_cycles`` and the cycle counters come out as
    cycles."""

    def __init__(self, cfg: Config, *, fast: bool = True, trace: bool = False, latency: int = 0):
        self.cfg, self.c, self.arch = cfg, cfg.cascade, cfg.arch
        self.fast = fast
        self._want_trace = trace
        self.latency = latency  # cycles from the backing store to the core and back (a network)
        self.cores: dict[str, Any] | None = None  # several cores: what each phase ran
        dram = cfg.arch.levels[0]
        self._hint_key = (cfg.arch.name, cfg.cascade.name, cfg.instances,
                          tuple((r, x.size) for r, x in cfg.cascade.ranks.items()))
        self._d0 = math.lcm(Fraction(dram.read_bw).numerator, Fraction(dram.write_bw).numerator)
        self._reset(math.lcm(self._d0, _D_HINT.get(self._hint_key, 1)))

    def _reset(self, d: int) -> None:
        self.tb = TimeBase(d)
        dram = self.arch.levels[0]
        self.read_tpw = self.tb.ticks(1 / Fraction(dram.read_bw))  # ticks per backing-store word
        self.write_tpw = self.tb.ticks(1 / Fraction(dram.write_bw))
        self.lat_t = self.tb.ticks(self.latency)
        self.arrival = 0  # ticks: when the last write-back has reached the backing store
        self._end: Fraction | None = None
        self.state: list[int] = [0] * (2 + 2 * self.arch.levels[1].buffers)
        self.counters = Counters()
        self.trace: list | None = [] if self._want_trace else None
        self.steps = 0
        self.steps_skipped = 0
        self.group_cycles: dict[str, Fraction | int] = {}
        self.group_dram: dict[str, tuple[Any, Any]] = {}  # words (read, written) per group
        # tensors accessed through index tensors: {T: {kind, groups: {GROUP: how costed}}}
        self.indirect: dict[str, dict[str, Any]] = {}
        self._finished = False

    def _attempt(self, body: Callable[[], None]) -> None:
        """Run ``body`` from a clean state, refining the time base until every value fits."""
        while True:
            try:
                body()
                break
            except _Rescale as r:
                self._reset(math.lcm(self.tb.d, r.den))
        if len(_D_HINT) > 512:
            _D_HINT.clear()
        _D_HINT[self._hint_key] = self.tb.d
        # the cycle counters leave the engine in cycles
        cy = self.tb.cycles
        self.counters.v = {k: (cy(x) if k[0] in TIME_KEYS else x) for k, x in self.counters.v.items()}
        self._finished = True

    def run(self) -> "Sim":
        if self.arch.cores.count > 1:
            self._run_cores(self.cfg.mapping.groups)
            return self
        def body():
            for g in self.cfg.mapping.groups:
                start = max(self.state)
                self.state[:] = [start] * len(self.state)
                before = self.counters.snapshot()
                GroupSim(self, g).run()
                end = max(max(self.state), self.arrival)
                self.group_cycles[g.name] = self.tb.cycles(end - start)
                d = self.counters.diff(before)
                self.group_dram[g.name] = (sum(x for k, x in d.items() if k[0] == "dram_read"),
                                           sum(x for k, x in d.items() if k[0] == "dram_write"))
                self.state[:] = [end] * len(self.state)
        self._attempt(body)
        return self

    def run_alone(self, g: Group) -> Fraction | int:
        """Run group ``g`` by itself from time 0; its cycles."""
        if self.arch.cores.count > 1:
            self._run_cores((g,))
            return self.group_cycles[g.name]

        def body():
            GroupSim(self, g).run()
            self.state[:] = [max(max(self.state), self.arrival)] * len(self.state)
            self.group_cycles[g.name] = self.tb.cycles(max(self.state))
        self._attempt(body)
        return self.group_cycles[g.name]

    def _phase(self, n: int, instances: int) -> tuple[Config, int]:
        """One core's view of ``n`` cores running ``instances`` each (see "Several cores"):
        its config (the backing store at its fair share, one core) and its network latency."""
        from dataclasses import replace

        from mapping.cores import ONE

        arch, noc = self.arch, self.arch.cores.noc
        dram = arch.levels[0]
        rbw, wbw = Fraction(dram.read_bw), Fraction(dram.write_bw)
        lat = 0
        if noc is not None:
            cr, cw = noc.link_cap(n, "read"), noc.link_cap(n, "write")
            rbw = rbw if cr is None else min(rbw, cr)
            wbw = wbw if cw is None else min(wbw, cw)
            lat = max(noc.hops(k) for k in range(n)) * noc.hop_latency
        one = replace(arch, levels=(replace(dram, read_bw=rbw / n, write_bw=wbw / n),) + arch.levels[1:], cores=ONE)
        return replace(self.cfg, arch=one, instances=instances), lat

    def _run_cores(self, groups) -> None:
        """Every group in its phases across the cores (see "Several cores")."""
        arch = self.arch
        n_cores, noc = arch.cores.count, arch.cores.noc
        q, r = divmod(self.cfg.instances, n_cores)
        t = Fraction(0)
        tot: dict[tuple, Any] = {}
        phases = []
        for g in groups:
            start = t
            dram = [0, 0]
            for n, inst in ((n_cores, q), (r, 1)):
                if not n or not inst:
                    continue
                cfg1, lat = self._phase(n, inst)
                sub = Sim(cfg1, fast=self.fast, trace=self._want_trace, latency=lat)
                cyc = Fraction(sub.run_alone(g))
                words = 0
                for k, x in sub.counters.v.items():
                    tot[k] = tot.get(k, 0) + (x if k[0] in TIMELINE_KEYS else x * n)
                    if k[0] in ("dram_read", "dram_write"):
                        dram[k[0] == "dram_write"] += x * n
                        words += x
                if noc is not None:
                    tot[("noc_word_hops", "all")] = (tot.get(("noc_word_hops", "all"), 0)
                                                     + words * sum(noc.hops(k) for k in range(n)))
                if sub.trace is not None:
                    self.trace.extend((row[0], f"{row[1]} (cores 0-{n - 1})",
                                       *(None if x is None else x + t for x in row[2:8]), *row[8:])
                                      for row in sub.trace)
                for tn, ent in sub.indirect.items():
                    mine = self.indirect.setdefault(tn, {"kind": ent["kind"], "groups": {}})
                    mine["groups"].update(ent["groups"])
                self.steps += sub.steps
                self.steps_skipped += sub.steps_skipped
                phases.append({"group": g.name, "cores": n, "instances_each": inst, "cycles": cyc,
                               "latency": lat, "read_bw_each": cfg1.arch.levels[0].read_bw,
                               "write_bw_each": cfg1.arch.levels[0].write_bw})
                t += cyc
            self.group_cycles[g.name] = t - start
            self.group_dram[g.name] = (dram[0], dram[1])
        self.counters.v = tot
        self._end = t
        self.cores = {"count": n_cores, "instances_per_core": [q + (k < r) for k in range(n_cores)],
                      "phases": phases}
        self._finished = True

    @property
    def end_time(self) -> Fraction:
        if self._end is not None:
            return self._end
        return Fraction(self.tb.cycles(max(max(self.state), self.arrival)))
