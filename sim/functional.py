"""Functional mode: run the *mapped* cascade tile by tile and compare with the reference.

The groups, loop nests, stages, pre/post roles and deferred (software-pipelined) Einsums
are executed exactly in the order the timing model assumes: each Einsum is evaluated
on the coordinates of its tile only (``einsum.interp`` with those coordinates fixed),
partial results over tiled reduction ranks are combined with the Einsum's reduction
(assigned on the first visit of an output element, combined afterwards). Operators are
those of the cascade (``einsum.ops``; approximate/golden operators where it names them).
A mapping that loses work (a tile never visited), duplicates it (a reduction visited
twice) or reads a value before it is produced gives a different result, which
:func:`check_functional` reports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from einsum.cascade import Cascade
from einsum.errors import EinarrayError
from einsum.indexing import run_indexed
from einsum.interp import _Ctx, _run, evaluate, out_slice, random_inputs
from einsum.ops import ARG_REDUCTIONS
from mapping.groups import einsum_depth
from mapping.spec import Config, Group


MAX_POINTS = 200_000_000


@dataclass
class FunctionalResult:
    ok: bool
    max_abs_err: float
    worst_tensor: str | None
    einsum_evaluations: int
    tensors: dict[str, float]  # max abs error per output tensor
    outputs: dict[str, np.ndarray] | None = None  # the tile-by-tile results of the outputs


def _index_values(c: Cascade, ix: str, g: Group, idx: tuple[int, ...]) -> list[int] | None:
    """Coordinates of ``ix`` in the tile at loop indices ``idx``; None: the whole rank."""
    r = c.rank_of_index(ix).name
    for lp, i in zip(g.loops, idx):
        if lp.rank == r:
            return list(range(i * lp.tile, i * lp.tile + lp.extent(i)))
    # a looped part of this rank: its coordinates are combinations of the parts
    if r in c.partitions:
        o, inner = c.partitions[r]
        ov = _index_values(c, o.lower(), g, idx)
        iv = _index_values(c, inner.lower(), g, idx)
        if ov is None and iv is None:
            return None
        ov = ov if ov is not None else list(range(c.ranks[o].size))
        iv = iv if iv is not None else list(range(c.ranks[inner].size))
        n0 = c.ranks[inner].size
        n = c.ranks[r].size  # a ragged partition's padding names no element
        return [a * n0 + b for a in ov for b in iv if a * n0 + b < n]
    return None


class _Exec:
    def __init__(self, cfg: Config, env: dict[str, np.ndarray]):
        self.cfg, self.c, self.env = cfg, cfg.cascade, env
        self.evals = 0
        self.started: set[str] = set()  # scatter targets already zeroed
        self.best: dict[str, np.ndarray] = {}  # a tiled argmax/argmin: the best value so far

    def run_einsum(self, g: Group, n: str, idx: tuple[int, ...]) -> None:
        c, e = self.c, self.c.einsum(n)
        fixed_vals: dict[str, list[int]] = {}
        for ix in e.iter_indices:
            v = _index_values(c, ix, g, idx)
            if v is not None:
                fixed_vals[ix] = v
        if e.iter_var is not None and e.iter_var not in fixed_vals:
            fixed_vals[e.iter_var] = list(range(c.index_size(e.iter_var)))  # sequential recurrence
        names = list(fixed_vals)
        red = set(e.reduced)
        if e.scatter or e.fibre_out or (e.reduce_op in ARG_REDUCTIONS and red & set(names)):
            self._run_indexed(e, names, fixed_vals)
            return
        for combo in itertools.product(*(fixed_vals[k] for k in names)):
            fixed = dict(zip(names, combo))
            first = all(fixed[k] == 0 for k in names if k in red) if red & set(names) else True
            sl = out_slice(c, e, fixed)
            old = None if first else np.array(self.env[e.output][sl], copy=True)
            with np.errstate(all="ignore"):
                _run(c, e, self.env, fixed)
            self.evals += 1
            if old is not None:
                new = self.env[e.output][sl]
                if e.reduce_op == "max":
                    self.env[e.output][sl] = np.maximum(old, new)
                elif e.reduce_op == "min":
                    self.env[e.output][sl] = np.minimum(old, new)
                else:
                    self.env[e.output][sl] = old + new

    def _run_indexed(self, e, names: list[str], fixed_vals: Mapping[str, list[int]]) -> None:
        """A scatter adds each tile's contribution into its target (zeros before the first
        tile); an argmax/argmin whose reduced index is tiled keeps the best value seen so
        far per output element (a later tile wins only when strictly better: ties keep the
        lower position, as the tiles come in increasing order); a sort/top-k needs its
        whole fibre in one tile."""
        c = self.c
        if e.fibre_out is not None and e.fibre_out[1] in fixed_vals:
            raise EinarrayError(f"--functional: {e.name} orders along {e.fibre_out[1]}, which the "
                                "mapping tiles; a sort/top-k needs its whole fibre in one tile")
        if e.scatter and e.output not in self.started:
            self.env[e.output] = np.zeros(c.tensors[e.output].shape)
        self.started.add(e.output)
        arg = e.reduce_op in ARG_REDUCTIONS and not e.fibre_out
        if arg and e.name not in self.best:
            ident = -np.inf if e.reduce_op == "argmax" else np.inf
            self.best[e.name] = np.full(c.tensors[e.output].shape, ident)
        for combo in itertools.product(*(fixed_vals[k] for k in names)):
            fixed = dict(zip(names, combo))
            ctx = _Ctx(c, e, self.env, fixed)
            self.evals += 1
            with np.errstate(all="ignore"):
                if e.scatter:
                    self.env[e.output] = self.env[e.output] + run_indexed(ctx, e)
                    continue
                if not arg:
                    _run(c, e, self.env, fixed)
                    continue
                val = np.broadcast_to(_lift(ctx, ctx.ev(e.stmt.rhs)), ctx.extent)
                ok = np.ones(ctx.extent, dtype=bool)
                if ctx.valid is not None:
                    ok = ok & ctx.valid
                if e.stmt.filter is not None:
                    ok = ok & _lift(ctx, ctx.ev(e.stmt.filter)).astype(bool)
            sl = out_slice(c, e, fixed)
            best = self.best[e.name]
            shape = np.shape(best[sl])
            val, ok = val.reshape(shape), np.broadcast_to(ok, ctx.extent).reshape(shape)
            old = best[sl]
            better = (val > old) if e.reduce_op == "argmax" else (val < old)
            better = ok & (better | (np.isnan(val) & ~np.isnan(old)))
            best[sl] = np.where(better, val, old)
            self.env[e.output][sl] = np.where(better, fixed[e.reduced[0]], self.env[e.output][sl])

    def run_group(self, g: Group) -> None:
        c = self.c
        L = len(g.loops)
        depth = {n: einsum_depth(c, g, n) for n in g.einsums}
        role = {}
        for n in g.einsums:
            if depth[n] == L - 1:
                role[n] = "inner"
            else:
                deeper = {c.einsum(m).output for m in g.einsums if depth[m] > depth[n]}
                role[n] = "post" if any(t in deeper for t in c.einsum(n).reads) else "pre"
        order = [n for s in g.stages for n in s]
        pending: list[tuple[str, tuple[int, ...], int]] = []

        def step(names_now: list[str], idx: tuple[int, ...]) -> None:
            nonlocal pending
            todo = [(n, i) for n, i, lag in pending if lag <= 1] + [(n, idx) for n in names_now]
            pending = [(n, i, lag - 1) for n, i, lag in pending if lag > 1]
            todo.sort(key=lambda x: order.index(x[0]))
            for n, i in todo:
                self.run_einsum(g, n, i)

        inner_now = [n for n in g.einsums if role[n] == "inner" and n not in g.deferred]
        inner_def = [n for n in g.einsums if role[n] == "inner" and n in g.deferred]

        def walk(level: int, idx: list[int]) -> None:
            nonlocal pending
            trips = g.loops[level].trips if level >= 0 else 1
            for j in range(trips):
                if level >= 0:
                    idx[level] = j
                for k in range(level + 1, L):
                    idx[k] = 0
                pre = [n for n in g.einsums if role[n] == "pre" and depth[n] == level]
                post = [n for n in g.einsums if role[n] == "post" and depth[n] == level]
                pending += [(n, tuple(idx), 1) for n in pre]
                if level == L - 1:
                    step(inner_now, tuple(idx))
                    pending += [(n, tuple(idx), g.deferred[n]) for n in inner_def]
                else:
                    walk(level + 1, idx)
                npost = [n for n in post if n not in g.deferred]
                if npost:
                    step(npost, tuple(idx))
                pending += [(n, tuple(idx), g.deferred[n]) for n in post if n in g.deferred]

        walk(-1, [0] * L)
        while pending:
            step([], tuple([0] * L))


def _lift(ctx: _Ctx, v) -> np.ndarray:
    """A value of the interpreter's context with the context's number of axes."""
    a = np.asarray(v, dtype=np.float64)
    return a.reshape((1,) * (ctx.ndim - a.ndim) + a.shape) if a.ndim < ctx.ndim else a


def check_functional(cfg: Config, *, seed: int = 0, rtol: float = 1e-9, atol: float = 1e-12,
                     inputs: Mapping[str, np.ndarray] | None = None) -> FunctionalResult:
    """Run the mapping tile by tile (one instance) and compare with ``einsum.interp``.

    ``inputs`` default to seeded standard-normal tensors; give integer codes for a
    fixed-point cascade (its golden operators reject non-integers)."""
    c = cfg.cascade
    total = sum(oc.points for oc in cfg.counts.values())
    if total > MAX_POINTS:
        raise EinarrayError(f"--functional: one instance of {c.name} has {total:,} iteration points, more "
                            f"than the {MAX_POINTS:,} the tile-by-tile NumPy check handles; shrink the ranks")
    inputs = dict(inputs) if inputs is not None else random_inputs(c, seed)
    ref = evaluate(c, inputs)
    env: dict[str, np.ndarray] = {t: np.array(a, dtype=np.float64) for t, a in inputs.items()}
    for t, info in c.tensors.items():
        if t not in env:
            env[t] = np.full(info.shape, np.nan) if info.iterative_dim is None else np.zeros(info.shape)
    ex = _Exec(cfg, env)
    for g in cfg.mapping.groups:
        ex.run_group(g)
    errs: dict[str, float] = {}
    ok = True
    for t in c.outputs:
        a, b = env[t], ref[t]
        finite = np.isfinite(b)
        same_inf = np.array_equal(np.isfinite(a), finite) and np.array_equal(a[~finite], b[~finite])
        err = float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else 0.0
        if np.isnan(a[finite]).any():
            err = float("inf")
        errs[t] = err
        if not same_inf or not np.allclose(a[finite], b[finite], rtol=rtol, atol=atol):
            ok = False
    worst = max(errs, key=errs.get) if errs else None
    return FunctionalResult(ok, max(errs.values()) if errs else 0.0, worst, ex.evals, errs,
                            {t: env[t] for t in c.outputs})
