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
longest latency, so it is the critical path. A single independent instance (``Config.parallel``
1: a model's batch of one) is instead cut along one rank when that is faster
(:func:`sim.multicore.split_config`; every rank that may be cut is tried, the fastest kept): a
size ``s = q N + r`` runs as N symmetric cores on parts of ``q``, then, if ``r > 0``, ``r``
symmetric cores on parts of one element (197 tokens on 4 cores: 4 x 49, then 1 x 1), each
phase exact as above. Every core then reads the inputs its part does not cut (a GEMM cut
along N: all of A) unless ``cores: {multicast: true}``: those inputs lack the cut rank, so
in lockstep every core of a phase needs the same words at the same step, and one read of
the backing store feeds them all. A step's loads then take ``(n own + shared) / bw`` on the
shared store, so each core's timeline is one core's at ``bw / n`` whose shared words cost
``1 / n`` of a word each (``Sim.shared_tpw``), and the shared words are counted once.


Exact integer time
------------------
Times are kept in integer ticks of ``1 / D`` cycle, with ``D`` refined by restarting the run
when a value does not fit: exact, and several times faster than Fraction arithmetic
(:mod:`sim.timebase` states the rule). What a step costs is :mod:`sim.stepcost`; several
cores are :mod:`sim.multicore`.

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
from fractions import Fraction
from typing import Any, Callable

from einsum import expr as E
from einsum.indexing import sorted_dims
from einsum.ragged import is_chunk_rank, ragged_pairs
from mapping.groups import einsum_depth
from mapping.spec import Config, Group
from mapping.footprint import group_tensors, indirect_tensors, rank_related

from .multicore import run_cores
from .stepcost import StepCost, StepCosts
from .timebase import _D_HINT, TIME_KEYS, Counters, TimeBase, _Rescale


class GroupSim(StepCosts):
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
        wtpw, lat = self.sim.write_tpw, self.sim.lat_t  # lat: a network's delay of the data
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
            data = rd_end + lat if cost.dram_read else rd_end  # when the loaded tiles are there
            if k == 1:
                c_start = max(data, c_end, out_slot)
                new_c = c_start + cost.compute
                wr_start = max(chan, new_c)
                wr_end = wr_start + cost.write_ticks if cost.dram_write else new_c
                if cost.dram_write:
                    chan = wr_end
                    self.sim.arrival = max(self.sim.arrival, wr_end + lat)
                s[:] = [chan, wr_end, new_c, wr_end]
            else:
                # issue the write-back of step i-k+1 (ready when its compute ended)
                words = self.pend_w[-1]
                wb_ready = c_hist[k - 2]
                if words:
                    wr_start = max(chan, wb_ready)
                    wr_end = wr_start + words * wtpw
                    chan = wr_end
                    self.sim.arrival = max(self.sim.arrival, wr_end + lat)
                else:
                    wr_end = wb_ready
                c_start = max(data, c_end, out_slot)
                new_c = c_start + cost.compute
                s[:] = [chan, wr_end] + [new_c] + c_hist[:-1] + [wr_end] + w_hist[:-1]
                self.pend_w = (cost.dram_write,) + self.pend_w[:-1]
        else:
            out_slot = w_hist[k - 1]
            rd_start = max(rd_free, slot)
            rd_end = rd_start + cost.read_ticks
            data = rd_end + lat if cost.dram_read else rd_end
            c_start = max(data, c_end, out_slot)
            new_c = c_start + cost.compute
            wr_start = max(wr_free, new_c)
            wr_end = wr_start + cost.write_ticks
            if cost.dram_write:
                self.sim.arrival = max(self.sim.arrival, wr_end + lat)
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

    def __init__(self, cfg: Config, *, fast: bool = True, trace: bool = False, latency: int = 0,
                 shared: tuple[int, frozenset] = (1, frozenset())):
        self.cfg, self.c, self.arch = cfg, cfg.cascade, cfg.arch
        self.fast = fast
        self._want_trace = trace
        self.latency = latency  # cycles from the backing store to the core and back (a network)
        # (n, inputs) that n lockstep cores read once between them (multicast): each such word
        # costs this core 1 / n of its own words' time ("Several cores")
        self.shared_n, self.shared = shared
        self.cores: dict[str, Any] | None = None  # several cores: what each phase ran
        dram = cfg.arch.levels[0]
        self._hint_key = (cfg.arch.name, cfg.cascade.name, cfg.instances,
                          tuple((r, x.size) for r, x in cfg.cascade.ranks.items()))
        self._d0 = math.lcm(Fraction(dram.read_bw).numerator, Fraction(dram.write_bw).numerator,
                            (Fraction(dram.read_bw) * self.shared_n).numerator)
        self._reset(math.lcm(self._d0, _D_HINT.get(self._hint_key, 1)))

    def _reset(self, d: int) -> None:
        self.tb = TimeBase(d)
        dram = self.arch.levels[0]
        self.read_tpw = self.tb.ticks(1 / Fraction(dram.read_bw))  # ticks per backing-store word
        self.shared_tpw = self.tb.ticks(1 / (Fraction(dram.read_bw) * self.shared_n))  # a multicast word
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
            run_cores(self, self.cfg.mapping.groups)
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
            run_cores(self, (g,))
            return self.group_cycles[g.name]

        def body():
            GroupSim(self, g).run()
            self.state[:] = [max(max(self.state), self.arrival)] * len(self.state)
            self.group_cycles[g.name] = self.tb.cycles(max(self.state))
        self._attempt(body)
        return self.group_cycles[g.name]

    @property
    def end_time(self) -> Fraction:
        if self._end is not None:
            return self._end
        return Fraction(self.tb.cycles(max(max(self.state), self.arrival)))

