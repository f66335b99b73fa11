"""The enumerating oracle of :mod:`sim.nest`'s counts: every tile materialised as a point set.

This is the walk ``sim.nest`` used before its closed-form counting (it reproduced Timeloop's
eleven reference outputs exactly): per (level, tensor) the tile of each outer iteration is
built point by point, its delta from the instance's previous tile taken with Timeloop's
reset-on-stride-change rule, and the parent's side counted as the size of the union of the
children's deltas per (parent instance, child step). Seconds per million tile points, so only
for small nests; ``tests/sim/test_nest.py`` holds the fast path to it on random nests.
"""

from __future__ import annotations

import math

import numpy as np

from mapping.nest_mapping import NestConfig, Operand
from sim.nest import Loop, build_loops


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

    def run_compute(self) -> None:
        """The compute level takes its operand point at every MAC: the parent's union per
        (parent instance, step) is counted with NumPy over all MACs."""
        outer = self.outer
        self.D = math.prod(lp.factor for lp in outer)
        grid = np.indices([lp.factor for lp in outer]).reshape(len(outer), -1) if outer else \
            np.zeros((0, 1), dtype=np.int64)
        cols = [grid[j] for j, lp in enumerate(outer) if not lp.spatial or lp.level < self.parent]
        for terms, k in zip(self.op.terms, self.op.consts):
            coef = dict(terms)
            cols.append(sum((coef.get(lp.rank, 0) * lp.stride * grid[j] for j, lp in enumerate(outer)),
                            np.full(grid.shape[1], k, dtype=np.int64)))
        self.U = int(len(np.unique(np.stack(cols, axis=1), axis=0)))

    def parent_accesses(self) -> int:
        if self.is_compute:
            return self.U
        return sum(len(u) * self.weights[k] for k, u in self.unions.items())


def _traverse(loops: tuple[Loop, ...], walks: list[_Walk], extrapolate: bool) -> None:
    """Step the nest outermost first, firing each storage level's tile events in time order
    (with ``extrapolate``, a temporal loop of n > 2 iterations runs iteration 0, then 1 standing
    for n - 1; spatial loops run every element)."""
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


def oracle_counts(cfg: NestConfig) -> dict[tuple[int, str], tuple[int, int, int, int]]:
    """Per storage level i and tensor t it keeps: (tile words, partition P, own fills D, words it
    serves its child U), all summed over instances, as :func:`sim.nest.nest_counts` gives them."""
    loops, n = build_loops(cfg), len(cfg.levels)
    walks: dict[tuple[int, str], _Walk] = {}
    for op in cfg.operands:
        keepers = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep]
        for k, i in enumerate(keepers + [n]):
            walks[(i, op.name)] = _Walk(op, i, keepers[k - 1] if k > 0 else None, loops, i == n)
    for w in walks.values():
        if w.is_compute:
            w.run_compute()
    _traverse(loops, [w for w in walks.values() if not w.is_compute], cfg.extrapolate)
    U = {(w.parent, t): w.parent_accesses() for (i, t), w in walks.items() if w.parent is not None}
    return {(i, t): (len(w.mold), w.P, w.D, U[(i, t)]) for (i, t), w in walks.items() if i < n}
