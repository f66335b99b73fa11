"""What one step of a group costs: per-Einsum tile costs on their units, buffer and
register-file traffic, backing-store words, the stage x unit work and the bandwidth stall
floor (the model is :mod:`sim.engine`'s docstring; this is its "Compute" and
"Backing-store traffic" part). :class:`StepCosts` is the half of
:class:`sim.engine.GroupSim` that prices a step; the other half steps the loop nest
and the timing recurrence."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from einsum.cascade import Einsum
from einsum.ragged import chunk_points, last_chunk, masked_pairs, space_points
from mapping.arch import ComputeUnit
from mapping.spec import EinsumMap
from mapping.footprint import indirect_rows, indirect_words, rank_extent, tensor_footprint

from .systolic import compute_cycles, psum_words
from .timebase import TIME_KEYS

ZERO = Fraction(0)


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


class StepCosts:
    """Step pricing for :class:`sim.engine.GroupSim` (which sets the attributes used here)."""

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
        dram_r = dram_w = shared_r = 0
        if kind == "inner":
            names = [n for n in g.einsums if self.role[n] == "inner" and n not in g.deferred]
            reload, write, readback, cont = flags
            for t, f in zip(self.ins, reload):
                if f:
                    x = self._indirect(t, ext, ctr) if t in self.gather_in else tensor_footprint(c, t, ext)
                    dram_r += x
                    if t in self.sim.shared:
                        shared_r += x
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
                       (dram_r - shared_r) * self.sim.read_tpw + shared_r * self.sim.shared_tpw,
                       dram_w * self.sim.write_tpw)
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


__all__ = ["StepCost", "StepCosts", "ZERO"]
