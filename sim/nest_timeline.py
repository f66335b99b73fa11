"""The timeline of a mapped memory hierarchy: every level's tile changes stepped in time order,
each transfer throttled by the bandwidths it crosses, single or double buffered per level.

:mod:`sim.nest` counts accesses as Timeloop does and bounds cycles as Timeloop does (the busiest
level's traffic spread evenly over the run, every transfer perfectly overlapped). This module
schedules the same nest: when the first tile arrives, which refills the MACs wait for, and what
is written back after the last MAC.

The model (per instance of each level; instances under one parent run in lockstep):

* **Steps and residencies.** A *step* is one value of all temporal loops, in lexicographic order;
  one step is one MAC per utilized MAC instance. A *residency* of storage level c is a maximal
  run of steps in which c's tiles stay put: a new one starts whenever a temporal loop of a level
  outside c steps (and at the first step).
* **A transfer per residency.** At the start of residency r, each tensor c keeps (below its
  backing store) moves: an input brings its delta (Timeloop's rule of :mod:`sim.nest`, applied to
  the real sequence of tiles, with no temporal extrapolation); the output writes back the words
  its tile change displaces (the delta's size, none at the first residency) and reads back the
  new words only if they were written before (the first touch of an element is a write into
  zero). Its duration ``x_c(r)`` is the largest of ``ceil(words / bandwidth)`` over the
  bandwidths it crosses: c's ``write_bw`` (words coming in), c's ``read_bw`` (words written
  back), and each parent level's ``read_bw`` and ``write_bw`` for the words it sends and takes,
  counted per parent instance as the union over the children it fans out to (a multicast is
  one read, a spatial reduction one update); each of those levels' ``ports`` and ``banks`` for
  the blocks the transfer reads and writes there (:func:`sim.nest.port_bank_cycles`'s rules
  applied to this transfer: ``ceil(words / block_size)`` blocks per tensor and direction); and
  each network it crosses (a ``network:`` on the parent or on a level it bypasses): its busiest
  directed link's words (:mod:`sim.network`'s multicast trees and per-link unions, for this
  transfer's words) over ``link_words``, plus ``hop_latency`` times the deepest child it
  reaches. A level without a bandwidth adds nothing.
* **Buffering.** A single-buffered level's transfer for r starts when residency r - 1 ends (its
  one buffer is free); a double-buffered level's (``double_buffered: true``) as soon as residency
  r - 2 has ended and its transfer for r - 1 is done, so it overlaps residency r - 1. Either
  also waits until every parent it reads has its own tile for r in place.
* **MACs.** Each step takes ``c0`` cycles: ``max(1, ceil(words / bandwidth))`` over the operand
  reads and the output update it makes at the innermost levels, their ports and banks with a
  step's words taken as fractions of blocks (a block read feeds several steps), and the busiest
  link of each network those cross (operands stream, so no hop latency per step); ``c0``
  depends only on whether the output's read-modify-write reads, i.e. whether a reduced loop has
  stepped. A step waits
  until every level's transfer for its residency is done; the wait is a *stall*. It is charged
  along the chain of transfers that ended last: the level whose transfer ended last gets the part
  after its start, and where that start was set by a parent's transfer (it waited for the tile it
  reads), the parent gets the part before, and so on up.
* **Drain.** After the last step, each level below the output's backing store writes its last
  output tile back, innermost first (bandwidths and networks as for a transfer).

``cycles = compute + stalls + drain``. Not on the timeline: two transfers sharing one level's
bandwidth, ports or banks, or one network's links, at the same time (a level serving its child's
refill while it takes its own, a level read by two children, the MACs' operands and a refill on
one network). Those remain the bounds of :mod:`sim.nest`, and
:func:`sim.nest.simulate_nest` reports the larger of the timeline and the bounds (``bound_by``
names which).

Computing it in closed form (no step is enumerated): the schedule's state at a loop boundary is
per level, the translation each of its tensors' stride rule remembers, and for a double-buffered
level ``G_c = max(end of its last transfer, end of the residency before the current one)``
relative to now (a single-buffered level needs none: its next transfer starts at the end of the
current residency, which is never before its last transfer ended, since the MACs wait for it).
Three facts make that state finite, so a loop's iterations are memoized and multiplied out once
the state cycles (:func:`sim.nest._repeat`):

1. A parent's transfer end matters to a child only at a step where the parent's own tile changed:
   otherwise the child's previous transfer (same step as the parent's, or later) already waited
   for it, and ``G_child`` is at least it.
2. Inside a loop of level L, no level at or outside L changes tile, so their state is only shifted
   by the loop's elapsed time, and a loop's memo key holds the levels inside it only.
3. A relative time below ``-H_c``, with ``H_c`` the sum over c and the levels inside it of their
   largest transfer (whole tiles), may be replaced by ``-H_c``: every transfer chained from it (c's
   next, then its children's at the same step) still ends by now, so no stall and no later state
   changes (``G`` becomes ``max(end, now) = now`` either way).

``tests/sim/timeline_oracle.py`` steps every step with explicit point sets, tracks first touches
by the set of output words each instance has held, builds every word's network tree explicitly,
and schedules with absolute times and no clamping; ``tests/sim/test_nest_timeline.py`` holds
this module to it on random nests (bandwidths, buffering, blocks, ports, banks, networks) and to
closed forms (a single-buffered level's ``sum (x + W)``, a double-buffered one's ``x_1 + sum
max(x, W) + W``).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from einsum.errors import EinarrayWarning
from mapping.nest_mapping import NestConfig

from .nest import Loop, _repeat, _shift, _size, _Space, block_cycles, build_loops, fan_union, level_ticks
from .network import ChildSets, _depth, _loads, busiest_link


@dataclass(frozen=True)
class Timeline:
    cycles: int  # compute + sum(stalls) + drain
    steps: int  # temporal steps (one MAC per utilized instance each)
    step_cycles: tuple[int, int]  # cycles per step: before and after the output's first write
    compute: int  # cycles the MACs run
    stalls: dict[str, int]  # level -> cycles the MACs waited for its transfers
    drain: int  # cycles writing the last output tiles back
    buffering: dict[str, str] = field(default_factory=dict)  # level taking transfers -> "single"/"double"

    def as_dict(self) -> dict[str, Any]:
        return {"cycles": self.cycles, "steps": self.steps, "step_cycles": list(self.step_cycles),
                "compute": self.compute, "stalls": dict(self.stalls), "drain": self.drain,
                "buffering": dict(self.buffering)}


def _cdiv(words: int, bw: Fraction | None) -> int:
    return 0 if bw is None or not words else math.ceil(Fraction(words) / bw)


@dataclass
class _Move:
    """One tensor's transfer into one level: its parent, its translations per temporal loop, and
    per kind (None: whole tile; a translation: a delta) its words per instance and at the parent."""
    tensor: str
    level: int
    parent: int
    is_output: bool
    ticks: dict[int, tuple[int, ...]]  # temporal loop position -> the tile's translation
    words: dict[Any, tuple[int, int, int]]  # kind -> (per instance, new at parent, displaced at parent)
    links: dict[Any, list]  # kind -> per network crossed: (level, new words' link loads, their depth,
    #                         the displaced words' loads, depth)


def plain_output(cfg: NestConfig) -> bool:
    """Whether the output's subscripts are distinct ranks (``O[m, n]``, not ``O[m + n]``): the
    case in which a tile change's new words were written before exactly when a reduced loop
    outside it has left its first iteration (the timeline's first-touch rule)."""
    out = next(o for o in cfg.operands if o.is_output)
    ranks = [t[0][0] for t in out.terms if len(t) == 1 and t[0][1] == 1]
    return len(ranks) == len(out.terms) and len(set(ranks)) == len(ranks)


def nest_timeline(cfg: NestConfig, loops: tuple[Loop, ...] | None = None, every_step: bool = False) -> Timeline:
    """The timeline of ``cfg`` (the model is this module's docstring). ``every_step`` runs every
    step of every loop, with no memo, no multiplied-out cycle and no clamp (``einarray simulate
    --every-tile``): slow, and equal to the default by the proof above."""
    loops = build_loops(cfg) if loops is None else loops
    if not plain_output(cfg):
        warnings.warn(f"{cfg.einsum.name}: the output's subscripts are not distinct ranks, so the "
                      "timeline's first-touch rule (a tile change's new output words were written before "
                      "once a reduced loop outside it has stepped) may not hold; its read-backs are "
                      "approximate", EinarrayWarning, stacklevel=2)
    arch, n = cfg.arch, len(cfg.levels)
    lv = arch.levels
    T = [lp for lp in loops if not lp.spatial]
    m = len(T)
    out = next(o for o in cfg.operands if o.is_output)
    reduced = [lp.rank not in out.ranks for lp in T]
    moves: list[list[_Move]] = [[] for _ in range(n)]
    step_links: list[tuple] = []  # (network level, is the output, link loads, depth) per MAC step

    def links(j: int, S: dict) -> tuple[Counter, int]:
        """Link loads and depth on network j of what each child position needs (``S``, by
        :class:`sim.network.ChildSets`): sim.network's trees and per-link unions."""
        return _loads(S, lv[j].network, arch.fanout(j)), _depth(S, lv[j].network, arch.fanout(j))

    step_reads: dict[int, Counter] = {}  # level -> input words the MACs read per step, per tensor
    out_level, out_words = None, 0
    for op in cfg.operands:
        sp = _Space(op, loops)
        root = cfg.root(op.name)
        chain = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep and i >= root]
        inner = chain[-1]
        w = _size(sp.sets([lp for lp in loops if lp.spatial and lp.level >= inner], sp.sets([])))
        if op.is_output:
            out_level, out_words = inner, w
        else:
            step_reads.setdefault(inner, Counter())[op.name] += w
        for par, c in zip(chain, chain[1:]):
            M = sp.sets([lp for lp in loops if lp.level >= c])
            # the temporal loops outside c are T's first ones (loops run outermost level first)
            ticks = {p: d for p, (d, _) in enumerate(level_ticks(loops, sp, c, False))}
            fan = [lp for lp in loops if lp.spatial and par <= lp.level < c]
            whole = fan_union(sp, fan, M)
            words = {None: (_size(M), whole, whole)}

            children = {j: ChildSets(sp, loops, j, c, M) for j in range(par, c) if lv[j].network is not None}
            crossed = {None: [(j, *links(j, ch.without())) for j, ch in children.items()]}
            for d in set(ticks.values()):
                e = [sp.enc(k, d) for k in range(len(M))]
                keep = [mk & _shift(mk, -e[k]) for k, mk in enumerate(M)]
                # the new words M \ (M - d); the displaced (M - d) \ M, a translate of the
                # union's shape by -d (same sizes and link loads), so taken as M's part not in M + d
                words[d] = (_size(M) - _size(keep),
                            fan_union(sp, fan, M, [mk & ~_shift(mk, -e[k]) for k, mk in enumerate(M)]),
                            fan_union(sp, fan, M, [mk & ~_shift(mk, e[k]) for k, mk in enumerate(M)]))
                crossed[d] = [(j, *links(j, ch.without(keep)),
                               *links(j, ch.without([mk & _shift(mk, e[k]) for k, mk in enumerate(M)])))
                              for j, ch in children.items()]
            crossed[None] = [(j, a, b, a, b) for j, a, b in crossed[None]]
            moves[c].append(_Move(op.name, c, par, op.is_output, ticks, words, crossed))
        for j in range(inner, n):  # the MACs' operands and updates crossing a network, per step
            if lv[j].network is not None:
                step_links.append((j, op.is_output, *links(j, ChildSets(sp, loops, j, n, sp.sets([])).without())))

    def net_cycles(j: int, down: Counter, up: Counter) -> int:
        """Cycles of network j carrying ``down`` and ``up`` words per link: its busiest link's."""
        return _cdiv(busiest_link(lv[j].network, down, up)[1], lv[j].network.link_words)

    def level_cycles(s: int, r: Counter, w: Counter, amortized: bool) -> int:
        """Cycles level s needs for ``r`` words read and ``w`` written per tensor: its bandwidths,
        and its ports and banks in blocks (:func:`sim.nest.port_bank_cycles`'s rules, per transfer;
        ``amortized``, a MAC step's, counts its words as fractions of blocks)."""
        L = lv[s]
        B = L.block_size
        blocks = {t: Fraction(r[t] + w[t], B) if amortized else -(-r[t] // B) - (-w[t] // B) for t in r | w}
        return max(_cdiv(sum(r.values()), L.read_bw), _cdiv(sum(w.values()), L.write_bw),
                   block_cycles(L, blocks, cfg.arch_name, whole=not amortized)[0])

    def step_cycles(touched: bool) -> int:
        c0 = 1
        for s2 in set(step_reads) | {out_level}:
            r = Counter(step_reads.get(s2, {}))
            w = Counter()
            if s2 == out_level:
                w[out.name] = out_words
                if touched:
                    r[out.name] += out_words
            c0 = max(c0, level_cycles(s2, r, w, True))
        per: dict[int, list[Counter]] = {}
        for j, is_out, loads, _ in step_links:
            down, up = per.setdefault(j, [Counter(), Counter()])
            if is_out:
                up.update(loads)  # the update, reduced on the way up
                if touched:
                    down.update(loads)  # the read of the read-modify-write
            else:
                down.update(loads)
        return max([c0] + [net_cycles(j, a, b) for j, (a, b) in per.items()])  # pipelined: no latency

    c0 = (step_cycles(False), step_cycles(True))

    def transfer(c: int, kinds: list, first: bool, touched: bool) -> int:
        """Cycles of level c's transfer, its moves being of ``kinds``."""
        acc: dict[int, tuple[Counter, Counter]] = {}  # level -> (words read, written) per tensor

        def add(level: int, k: int, t: str, words: int) -> None:
            acc.setdefault(level, (Counter(), Counter()))[k][t] += words

        for mv, kind in zip(moves[c], kinds):
            w, wp, wb = mv.words[kind]
            if not mv.is_output:
                add(c, 1, mv.tensor, w)
                add(mv.parent, 0, mv.tensor, wp)
                continue
            if not first:  # the displaced words: read here, written (reduced) into the parent
                add(c, 0, mv.tensor, w)
                add(mv.parent, 1, mv.tensor, wb)
            if touched:  # the new words, written before: read back
                add(c, 1, mv.tensor, w)
                add(mv.parent, 0, mv.tensor, wp)
        per: dict[int, list] = {}
        for mv, kind in zip(moves[c], kinds):
            for j, new_l, new_d, back_l, back_d in mv.links[kind]:
                e = per.setdefault(j, [Counter(), Counter(), 0])
                if not mv.is_output:
                    e[0].update(new_l)
                    e[2] = max(e[2], new_d)
                    continue
                if not first:
                    e[1].update(back_l)
                    e[2] = max(e[2], back_d)
                if touched:
                    e[0].update(new_l)
                    e[2] = max(e[2], new_d)
        nets = [net_cycles(j, a, b) + lv[j].network.hop_latency * dep for j, (a, b, dep) in per.items() if a or b]
        return max([0] + nets + [level_cycles(s, r, w, False) for s, (r, w) in acc.items()])

    xmax = [transfer(c, [None] * len(moves[c]), False, True) if moves[c] else 0 for c in range(n)]
    H = [sum(xmax[c:]) for c in range(n)]
    if every_step:  # no clamp: the times stay exact (relative to now)
        H = [math.inf] * n
    db = [lv[c].double_buffered for c in range(n)]
    level_of = [lp.level for lp in T] + [n - 1]  # the compute's "level": no level lies inside it

    def shift(entries: tuple, first_level: int, el: int) -> tuple:
        """``entries`` (levels first_level, ..) after ``el`` cycles in which none of them changed
        tile: their G move back, clamped at -H (fact 3)."""
        return tuple((mach, max(g - el, -H[first_level + k]) if db[first_level + k] else 0)
                     for k, (mach, g) in enumerate(entries))

    def event(p: int | None, st: tuple, first_level: int, touched: bool) -> tuple[tuple, Counter]:
        """New tiles at every level in ``st`` (levels first_level, ..) when temporal loop ``p``
        steps (None: the first step): the transfers, then the MACs' stall."""
        ends: dict[int, int] = {}
        info: dict[int, tuple[int, int | None]] = {}  # level -> (start, the parent that set it)
        new = []
        for k, (mach, g) in enumerate(st):
            c = first_level + k
            if not moves[c]:
                new.append((mach, g))
                continue
            # Timeloop's rule: the same stride as remembered (or none remembered) moves the tile by a
            # delta and remembers it; another stride refetches it whole (None) and forgets. So the
            # new state is also the change's kind.
            kinds = tuple(None if p is None or (s is not None and s != mv.ticks[p]) else mv.ticks[p]
                          for mv, s in zip(moves[c], mach))
            x = transfer(c, kinds, p is None, touched)
            start, cause = (g if db[c] else 0), None
            for par in sorted({mv.parent for mv in moves[c] if mv.parent in ends}):
                if ends[par] > start:
                    start, cause = ends[par], par
            ends[c] = start + x
            info[c] = (start, cause)
            new.append((kinds, 0))
        stall = max([0] + list(ends.values()))
        cnt = Counter()
        if stall:  # charged along the chain of transfers that ended last, each its own part
            c, hi = max(ends, key=lambda c: (ends[c], -c)), stall
            while True:
                start, cause = info[c]
                cnt[c] += hi - max(start, 0)
                if cause is None or start <= 0:
                    break
                c, hi = cause, start
        out = []
        for k, (mach, g) in enumerate(new):
            c = first_level + k
            if c in ends and db[c]:
                g = max(ends[c], 0)
            out.append((mach, max(g - stall, -H[c]) if db[c] else 0))
        return tuple(out), cnt

    memo: dict = {}

    def run(p: int, st: tuple, touched: bool) -> tuple[tuple, Counter]:
        """Temporal loop p and everything inside it, from state ``st`` (the levels inside it)."""
        if p == m:
            return (), Counter({"compute": c0[touched]})
        key = (p, st, touched)
        if not every_step and key in memo:
            return memo[key]
        L, L2 = level_of[p], level_of[p + 1]

        def body(s: tuple, t: bool) -> tuple[tuple, Counter]:
            k = L2 - L
            s2, cnt = run(p + 1, s[k:], t)
            return shift(s[:k], L + 1, sum(cnt.values())) + s2, cnt

        s1, c1 = body(st, touched)
        t2 = touched or reduced[p]

        def step(s: tuple) -> tuple[tuple, Counter]:
            s2, ce = event(p, s, L + 1, t2)
            s3, cb = body(s2, t2)
            return s3, ce + cb

        if every_step:
            s2, c2 = s1, Counter()
            for _ in range(T[p].factor - 1):
                s2, c = step(s2)
                c2 += c
            return s2, c1 + c2
        s2, c2 = _repeat(step, s1, T[p].factor - 1)
        memo[key] = s2, c1 + c2
        return memo[key]

    st0 = tuple((tuple(None for _ in moves[c]), 0) for c in range(n))  # the first step fetches whole
    st1, ce = event(None, st0, 0, False)
    L0 = level_of[0]
    _, cr = run(0, st1[L0 + 1:], False)
    cnt = ce + cr
    drain = 0
    for c in range(n - 1, -1, -1):
        for mv in moves[c]:
            if mv.is_output:
                w, _, wp = mv.words[None]
                ups = [net_cycles(j, Counter(), up) + lv[j].network.hop_latency * dep
                       for j, _, _, up, dep in mv.links[None]]
                drain += max([level_cycles(c, Counter({mv.tensor: w}), Counter(), False),
                              level_cycles(mv.parent, Counter(), Counter({mv.tensor: wp}), False)] + ups)
    steps = cfg.steps
    stalls = {lv[c].name: int(v) for c, v in sorted((k, v) for k, v in cnt.items() if k != "compute")}
    compute = int(cnt["compute"])
    buffering = {lv[c].name: "double" if db[c] else "single" for c in range(n) if moves[c]}
    return Timeline(compute + sum(stalls.values()) + drain, steps, c0, compute, stalls, drain, buffering)
