"""Closed-form cost of a single-Einsum group: the search's fast ranking path.

For a group holding one Einsum (a GEMM, a linear layer, an element-wise op) the cost
is computed without stepping the loop nest:

* **Compute.** Steps fall into at most ``2^loops`` classes (each loop at a full or at
  its partial last tile). Per class the tile cost is the simulator's: the systolic
  closed forms of :mod:`sim.systolic` for a sum of products on the 2-D array (folds x
  streaming cycles, fill/drain per the arch) plus other ops over the lanes, or
  ``ceil(work / lanes) + latency - 1`` for element-wise work (on the 2-D array at least
  the time its operands take to enter through the array's edges); a step is at least as long
  as its buffer traffic takes at the buffer's bandwidth.
* **Backing-store traffic.** An input is reloaded whenever a loop it depends on (or
  one outside it) advances: ``size x prod(trips of the loops it does not depend on that
  lie outside its innermost dependent loop)``; an output is written as often and read
  back (partial sums) every time but the first.
* **Time.** Double-buffered (or deeper) buffers overlap loads, compute and write-back:
  ``first load + max(compute, backing-store time - first load - last write) + last
  write`` (one channel shared by reads and writes) or the per-channel maximum; a single
  buffer serialises them.
* **Energy.** Action counts x the arch's table (independent of the mapping), plus reads
  and writes per level x their energies, plus leakage per cycle: the simulator's
  accounting, so energy is exact whenever the traffic is.

Where it is exact (tests compare with the simulator on GEMMs on ``systolic-16x16``):
energy and traffic on every GEMM tiling tried (tiles partition the operands); cycles for
a one-step group (no tiling: ``load + compute + write`` per instance, pipelined across
instances) and for most single-loop tilings. For tilings of two or more loops the
simulator's per-step queueing on the shared backing-store channel (a reload of a large
operand stalls the step behind it) is not modelled: the estimate is low by up to about
15 % on memory-bound GEMMs, which is why the search re-simulates every candidate it
keeps. Unsupported (returns None): groups with several non-free Einsums, ``hold``,
``streamed`` inputs, relayout members.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Mapping

from einsum.cascade import Cascade
from mapping.arch import Arch
from mapping.spec import EinsumMap, Loop
from mapping.footprint import rank_extent, rank_related, tensor_footprint
from sim.systolic import compute_cycles, psum_words

if TYPE_CHECKING:  # pragma: no cover
    from .search.space import Segment
    from .search.strategies import Searcher


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


_TIX: dict[tuple[int, str], set[str]] = {}


def _tensor_indices(e, t: str) -> set[str]:
    key = (id(e.stmt), t)
    hit = _TIX.get(key)
    if hit is not None:
        return hit
    from einsum.expr import accesses_in, indices_in
    out: set[str] = set()
    _TIX[key] = out
    for acc in accesses_in(e.stmt.rhs):
        if acc.tensor == t:
            for s in acc.subscripts:
                out.update(indices_in(s))
    return out


def estimate(c: Cascade, arch: Arch, counts: Mapping[str, Any], instances: int, em: EinsumMap,
             loops: tuple[Loop, ...], memo: dict | None = None,
             parallel: int | None = None) -> tuple[Fraction, float] | None:
    """(cycles, energy in pJ including leakage) of Einsum ``em.name`` alone in a group with
    tile loops ``loops`` (outermost first), or None when the model does not apply.

    ``memo``: a dict kept across calls on the same cascade and arch (as
    :func:`rank_candidates` does) for the cost of a tile step, which depends on the
    Einsum's mapping, the tile's extents and whether it continues an output tile, not on
    the loop order."""
    e = c.einsum(em.name)
    oc = counts[em.name]
    if em.free or not oc.points:
        return None
    u = arch.units[em.unit]
    acts_full = {a: v for a, v in oc.counts.items() if v}
    tix = {t: _tensor_indices(e, t) for t in e.reads}
    gb = arch.levels[1]
    levels = arch.levels

    # the innermost loops over the reduced rank of an output-stationary sum of products:
    # while one of them has steps to go, the next step continues the output tile
    chain: set[int] = set()
    if u.is_2d and em.dataflow == "os" and (em.rows or em.cols) and acts_full.get("mac"):
        red = {c.rank_of_index(ix).name for ix in e.reduced}
        for i in range(len(loops) - 1, -1, -1):
            if not any(rank_related(c, loops[i].rank, r) for r in red):
                break
            chain.add(i)

    def tile_cost(ext: Mapping[str, int], cont: bool) -> tuple[Fraction, int, int, int, int]:
        iext = {ix: rank_extent(c, c.rank_of_index(ix).name, ext) for ix in e.iter_indices}
        pts = math.prod(iext.values()) if iext else 1
        if len(acts_full) == 1 and "mac" in acts_full and u.is_2d and (em.rows or em.cols):
            # a pure sum of products on the 2-D array: the systolic form needs no fractions
            acts = {"mac": 1}
        else:
            frac = Fraction(pts, oc.points)
            acts = {a: Fraction(v) * frac for a, v in acts_full.items()}
        # element-wise work on the 2-D array: every operand enters, the result leaves
        # through the array's edges (nothing of a lone Einsum is resident in the PEs)
        w_in = sum(tensor_footprint(c, t, ext) for t in e.reads)
        cyc, _, folds_by = compute_cycles(u, em, iext, acts, w_in, tensor_footprint(c, e.output, ext), cont)
        br = 0
        for t in e.reads:
            refetch = 1
            for ix, k in folds_by.items():
                if ix not in tix[t]:
                    refetch *= k
            br += tensor_footprint(c, t, ext) * refetch
        bw = math.prod(iext[ix] for ix in e.lhs_indices if ix in iext)
        if acts_full.get("mac"):  # WS / IS partial sums, as the simulator counts them
            ps = psum_words(u, em, e.reduced, folds_by, bw)
            br += ps
            bw += ps
        return cyc, br, bw, pts * len(e.reads), pts

    # step classes: each loop at a full tile or at its partial last tile (a chain loop:
    # also whether at its last iteration)
    per_loop = []
    for i, lp in enumerate(loops):
        full, rem = divmod(lp.size, lp.tile)
        if i in chain:
            last = (rem, 1, True) if rem else (lp.tile, 1, True)
            n_other = full if rem else full - 1
            opts = ([(lp.tile, n_other, False)] if n_other else []) + [last]
        else:
            opts = ([(lp.tile, full, True)] if full else []) + ([(rem, 1, True)] if rem else [])
        per_loop.append(opts)
    comp = Fraction(0)
    buf_r = buf_w = rf_r = rf_w = 0
    for combo in itertools.product(*per_loop):
        ext = {lp.rank: x for lp, (x, _, _) in zip(loops, combo)}
        n = math.prod(k for _, k, _ in combo)
        cont = any(not last for i, (_, _, last) in enumerate(combo) if i in chain)
        key = (em, tuple(sorted(ext.items())), cont)
        hit = memo.get(key) if memo is not None else None
        if hit is None:
            cyc, br, bw, rr, rw = tile_cost(ext, cont)
            floor = max(Fraction(br) / gb.read_bw, Fraction(bw) / gb.write_bw)
            for i, lv in enumerate(levels[2:], start=2):
                inner = i == len(levels) - 1
                floor = max(floor, Fraction(bw + (rr if inner else 0)) / lv.read_bw,
                            Fraction(br + (rw if inner else 0)) / lv.write_bw)
            hit = (max(cyc, floor), br, bw, rr, rw)
            if memo is not None:
                memo[key] = hit
        step, br, bw, rr, rw = hit
        comp += n * step
        buf_r += n * br
        buf_w += n * bw
        rf_r += n * rr
        rf_w += n * rw

    def repeats(t: str) -> int:
        ranks = c.tensors[t].ranks
        rel = [any(rank_related(c, lp.rank, r) for r in ranks) for lp in loops]
        inner = max((i for i, x in enumerate(rel) if x), default=-1)
        return math.prod(lp.trips for i, lp in enumerate(loops) if i < inner and not rel[i])

    tkey = ("traffic", e.name, loops)  # backing-store traffic depends on the loops, not the mapping
    hit = memo.get(tkey) if memo is not None else None
    if hit is None:
        dram_r = sum(c.tensors[t].size * repeats(t) for t in e.reads)
        rep_o = repeats(e.output)
        dram_w = c.tensors[e.output].size * rep_o
        dram_r += c.tensors[e.output].size * (rep_o - 1)
        first = {lp.rank: lp.tile for lp in loops}
        last = {lp.rank: lp.extent(lp.trips - 1) for lp in loops}
        hit = (dram_r, dram_w, sum(tensor_footprint(c, t, first) for t in e.reads),
               tensor_footprint(c, e.output, last))
        if memo is not None:
            memo[tkey] = hit
    dram_r, dram_w, first_in, last_out = hit
    dram = levels[0]

    def phase(I: int, rbw: Fraction, wbw: Fraction) -> Fraction:
        L0, W1 = Fraction(first_in) / rbw, Fraction(last_out) / wbw
        C = comp * I
        R, W = Fraction(dram_r * I) / rbw, Fraction(dram_w * I) / wbw
        if gb.buffers <= 1:
            return C + R + W
        if dram.shared_rw:
            return L0 + max(C, R + W - L0 - W1) + W1
        return L0 + max(C, R - L0, W - W1) + W1

    I = instances
    if arch.cores.count == 1:
        cycles = phase(I, dram.read_bw, dram.write_bw)
    else:  # the simulator's phases (sim.engine, "Several cores"), without the network's latency
        from mapping.cores import phases, shared_bandwidth

        cycles = Fraction(0)
        for n, inst in phases(I, parallel, arch.cores.count):
            rbw, wbw, _ = shared_bandwidth(arch, n)
            cycles += phase(inst, rbw, wbw)
    # energy: the simulator's accounting
    en = arch.energy
    cyc_int = _ceil(cycles) if cycles else 0
    energy = I * sum(v * en.get(em.unit, {}).get(a, 0.0) for a, v in acts_full.items())
    words = {0: (dram_r * I, dram_w * I), 1: ((buf_r + dram_w) * I, (buf_w + dram_r) * I)}
    for i in range(2, len(levels)):
        r_, w_ = buf_w * I, buf_r * I
        if i == len(levels) - 1:
            r_ += rf_r * I
            w_ += rf_w * I
        words[i] = (r_, w_)
    for i, lv in enumerate(levels):
        tab = en.get(lv.name)
        if tab:
            energy += words[i][0] * tab["read"] + words[i][1] * tab["write"]
    energy += arch.leakage_pj_per_cycle * cyc_int * arch.cores.count
    return cycles, energy


def estimate_config(cfg) -> tuple[Fraction, float] | None:
    """:func:`estimate` for a config whose mapping is one group of one Einsum."""
    gs = cfg.mapping.groups
    if len(gs) != 1 or len(gs[0].einsums) != 1 or gs[0].hold or gs[0].streamed:
        return None
    g = gs[0]
    return estimate(cfg.cascade, cfg.arch, cfg.counts, cfg.instances, cfg.mapping.einsums[g.einsums[0]], g.loops,
                    parallel=cfg.parallel)


def rank_candidates(s: "Searcher", seg: "Segment") -> list[tuple] | None:
    """Every choice of a single-Einsum segment, best first by the closed-form model
    (choices that overflow the buffer are dropped); None if the model does not apply."""
    members = [n for n in seg.members if not s.free[n]]
    if len(seg.members) != 1 or len(members) != 1:
        return None
    from mapping.footprint import buffer_words

    n = members[0]
    cap = s.buf.capacity_words
    scored = []
    memo: dict = {}
    fits: dict[tuple, bool] = {}  # buffer fit per tile sizes
    ests: dict[tuple, Any] = {}  # estimate per (mapping, loops): choices can differ in nothing it reads
    for ch in itertools.product(*[range(len(d.values)) for d in seg.dims]):
        einsums, g = s.emit(seg, ch)
        if g.get("hold"):
            continue
        tiles = g["tiles"][s.buf.name]
        tk = tuple(sorted(tiles.items()))
        ok = fits.get(tk)
        if ok is None:
            ok = fits[tk] = cap is None or buffer_words(s.c, s.arch, seg.members, tiles) <= cap
        if not ok:
            continue
        em = s._emaps(einsums)[n]
        loops = tuple(Loop(r, tiles.get(r, s.c.ranks[r].size), s.c.ranks[r].size) for r in g.get("loop_order", []))
        ek = (em, loops)
        est = ests.get(ek, False)
        if est is False:
            est = ests[ek] = estimate(s.c, s.arch, s.counts, s.cfg.instances, em, loops, memo,
                                      parallel=s.cfg.parallel)
        if est is None:
            return None
        cyc, energy = est
        cy = _ceil(cyc)
        scored.append((s.objective(cy, energy), ch))
    scored.sort(key=lambda x: x[0])
    return [ch for _, ch in scored]


__all__ = ["estimate", "estimate_config", "rank_candidates"]
