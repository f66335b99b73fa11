"""NumPy reference interpreter for Einsum cascades.

Generic and vectorised: every Einsum is evaluated over its whole iteration space
with NumPy broadcasting; sums of products are contracted with batched ``matmul``
(BLAS) or ``np.einsum``. Only recurrences over an iterative rank loop in Python,
one slice per value of the recurrence index.

Semantics worth knowing:

* Points outside a ``where`` filter contribute the identity of the reduction (0 for
  sum, -inf for max, +inf for min); outputs of a non-reducing filtered Einsum are 0
  there.
* A ragged partition (P0 does not divide P) filters every Einsum that iterates both
  its indices to ``p1 * P0 + p0 < P`` (:mod:`einsum.ragged`): the padding of the last
  chunk holds 0, is skipped by reductions and never evaluates a subscript.
* Data-dependent indexing (:mod:`einsum.indexing`): a gather ``K[IDX[g, j], e]`` is an
  integer subscript like any other (fancy indexing); ``argmax``/``argmin``, the ordering
  operators and a scatter ``Y[IDX[t, k], d] += ..`` (``np.add.at``: the target has its own
  shape) run in :func:`einsum.indexing.run_indexed`. Index inputs are range-checked first.
* Factors of a sum of products that do not depend on the reduced indices are
  applied after the reduction (``sum_e Q*K*scale == scale * sum_e Q*K``), which is
  exact in real arithmetic and equal to float64 rounding.
"""

from __future__ import annotations

import string
from typing import Mapping

import numpy as np

from . import expr as E
from .cascade import Cascade, Einsum
from .errors import ConfigError, EinarrayError
from .indexing import check_declared_range, check_index_inputs, run_indexed
from .ops import ARG_REDUCTIONS, OPERATORS
from .ragged import masked_pairs


class EvalError(EinarrayError):
    """A cascade that validated but cannot be evaluated (e.g. an out-of-range subscript)."""


def check_inputs(c: Cascade, inputs: Mapping[str, np.ndarray], file: str | None = None
                 ) -> dict[str, np.ndarray]:
    """Check names and shapes of input arrays and convert them to float64 (the dtype the
    reference computes in; see :func:`output_dtype` for the dtype to return)."""
    out: dict[str, np.ndarray] = {}
    for name in c.inputs:
        info = c.tensors[name]
        if name not in inputs:
            raise ConfigError(f"missing input {name!r} (expected {', '.join(c.inputs)})", file)
        a = np.asarray(inputs[name])
        if a.dtype.kind not in "biuf":
            raise ConfigError(f"input {name!r} has dtype {a.dtype}; expected numbers", file)
        if a.shape != info.shape:
            dims = ", ".join(f"{r}={s}" for r, s in zip(info.ranks, info.shape))
            raise ConfigError(f"input {name!r} has shape {a.shape}, expected {info.shape} ({dims})", file)
        out[name] = a.astype(np.float64, copy=False)
    return out


def output_dtype(c: Cascade, inputs: Mapping[str, np.ndarray]) -> np.dtype:
    """The dtype to return results in: the common floating-point dtype of the floating-point
    inputs (float32 in, float32 out; float32 with float64 gives float64), float64 when no
    input is floating point (integer codes). :func:`evaluate` computes in float64 either
    way; the caller casts its results."""
    kinds = [np.asarray(inputs[t]).dtype for t in c.inputs if t in inputs]
    floats = [d for d in kinds if d.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


def uses_int_codes(c: Cascade) -> bool:
    """True when the cascade applies fixed-point operators to integer codes."""
    return any(isinstance(n, E.Call) and OPERATORS[n.op].int_codes
               for e in c.einsums for n in E.walk(e.stmt.rhs))


def random_inputs(c: Cascade, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every input tensor: standard normal, or for a fixed-point
    cascade (see :func:`uses_int_codes`) integer codes uniform in [-2048, 2047]
    (+-2.0 in Q.10); an index input (``IDX: "[G, J] in P"``) gets positions uniform in
    0..P-1."""
    rng = np.random.default_rng(seed)
    ints = uses_int_codes(c)
    out = {}
    for t in c.inputs:
        info = c.tensors[t]
        if info.value_range is not None:  # an index input: positions uniform in its range
            out[t] = rng.integers(0, c.ranks[info.value_range].size, info.shape).astype(np.float64)
        elif ints:
            out[t] = rng.integers(-2048, 2048, info.shape).astype(np.float64)
        else:
            out[t] = rng.standard_normal(info.shape)
    return out


def evaluate(c: Cascade, inputs: Mapping[str, np.ndarray], *, file: str | None = None
             ) -> dict[str, np.ndarray]:
    """Evaluate every Einsum; returns all tensors (inputs, intermediates and outputs)."""
    env: dict[str, np.ndarray] = dict(check_inputs(c, inputs, file))
    check_index_inputs(c, env)
    full = c.graph(with_carried=True)
    for t, info in c.tensors.items():
        if info.kind != "input" and (info.iterative_dim is not None):
            env[t] = np.zeros(info.shape)
    with np.errstate(all="ignore"):
        for group in c.schedule():
            es = [c.einsum(n) for n in group]
            loops = len(group) > 1 or full.has_edge(group[0], group[0])
            if not loops:
                _run(c, es[0], env, {})
                if c.tensors[es[0].output].range_declared:
                    check_declared_range(c, es[0].output, env[es[0].output])
                continue
            var = next(e.iter_var for e in es if e.kind == "update")
            assert var is not None
            n = c.index_size(var)
            for e in es:  # preallocate plain members written slice by slice
                if e.kind == "plain" and e.output not in env:
                    env[e.output] = np.zeros(c.tensors[e.output].shape)
            for k in range(n):
                for e in es:
                    _run(c, e, env, {var: k})
            for e in es:
                if c.tensors[e.output].range_declared:
                    check_declared_range(c, e.output, env[e.output])
    return env


# ----------------------------------------------------------------------------------
class _Ctx:
    def __init__(self, c: Cascade, e: Einsum, env: Mapping[str, np.ndarray], fixed: Mapping[str, int]):
        self.c, self.e, self.env, self.fixed = c, e, env, fixed
        self.space = e.iter_indices
        self.ndim = len(self.space)
        self.axis = {ix: i for i, ix in enumerate(self.space)}
        self.extent = tuple(1 if ix in fixed else c.index_size(ix) for ix in self.space)
        self.valid = self._ragged_mask()

    def _ragged_mask(self) -> np.ndarray | None:
        """The points that name elements when the space holds a ragged partition's two
        indices (``p1 * P0 + p0 < P``, :mod:`einsum.ragged`); None when every point does."""
        mask = None
        for parent, oi, ii in masked_pairs(self.c, self.space):
            inner = self.c.index_size(ii)
            m = self.index_values(oi) * inner + self.index_values(ii) < self.c.ranks[parent].size
            mask = m if mask is None else mask & m
        return mask

    def index_values(self, ix: str) -> np.ndarray:
        shape = [1] * self.ndim
        if ix in self.fixed:
            return np.full(shape, self.fixed[ix], dtype=np.int64)
        shape[self.axis[ix]] = self.extent[self.axis[ix]]
        return np.arange(self.extent[self.axis[ix]], dtype=np.int64).reshape(shape)

    # -- expressions --------------------------------------------------------------
    def ev(self, x: E.Expr) -> np.ndarray | float:
        if isinstance(x, E.Num):
            return x.value
        if isinstance(x, E.Index):
            return self.index_values(x.name)
        if isinstance(x, E.Param):
            return self.c.params[x.name]
        if isinstance(x, E.RankSize):
            return self.c.ranks[x.name].size
        if isinstance(x, E.Access):
            return self.access(x)
        if isinstance(x, E.BinOp):
            a, b = self.ev(x.left), self.ev(x.right)
            op = x.op
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return np.true_divide(a, b)
            if op == "//":
                return np.floor_divide(a, b)
            if op == "%":
                return np.mod(a, b)
            return np.power(np.asarray(a, dtype=np.float64), b) if not _is_int(a, b) else np.power(a, b)
        if isinstance(x, E.Unary):
            v = self.ev(x.operand)
            return np.negative(v) if x.op == "-" else np.logical_not(v)
        if isinstance(x, E.Compare):
            a, b = self.ev(x.left), self.ev(x.right)
            return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                    "==": np.equal, "!=": np.not_equal}[x.op](a, b)
        if isinstance(x, E.BoolOp):
            vals = [self.ev(v) for v in x.values]
            fn = np.logical_and if x.op == "and" else np.logical_or
            out = vals[0]
            for v in vals[1:]:
                out = fn(out, v)
            return out
        if isinstance(x, E.Call):
            op = OPERATORS[x.op]
            if op.fibre:
                ix = x.args[-1].name  # type: ignore[union-attr]
                if ix in self.fixed:
                    raise EvalError(f"{self.e.name}: {x.op} runs along {ix}, which is fixed here")
                v = np.asarray(self.ev(x.args[0]), dtype=np.float64)
                v = v.reshape((1,) * (self.ndim - v.ndim) + v.shape) if v.ndim < self.ndim else v
                ax = self.axis[ix]
                shape = list(v.shape)
                shape[ax] = self.extent[ax]
                if 0 in shape:
                    return np.zeros(shape)  # an empty fibre normalises to an empty fibre
                return op.fn(np.broadcast_to(v, shape), ax)
            args = [self.ev(a) for a in x.args]
            return op.fn(*args)
        raise TypeError(x)  # pragma: no cover

    def access(self, acc: E.Access) -> np.ndarray:
        arr = self.env[acc.tensor]
        fast = self._fast_access(acc, arr)
        if fast is not None:
            return fast
        idx = []
        for d, s in enumerate(acc.subscripts):
            v = np.asarray(self.ev(s))
            if v.dtype.kind == "f":
                if not np.all(v == np.round(v)):
                    raise EvalError(f"{self.e.name}: subscript {d} of {acc} is not an integer")
                v = v.astype(np.int64)
            v = v.reshape(v.shape + (1,) * (self.ndim - v.ndim)) if v.ndim < self.ndim else v
            lo, hi = (int(v.min()), int(v.max())) if v.size else (0, -1)  # empty: no point read
            if (lo < 0 or hi >= arr.shape[d]) and self.valid is not None:
                # the padding of a ragged chunk is never read: look up row 0 there
                v = np.where(self.valid, v, 0)
                lo, hi = (int(v.min()), int(v.max())) if v.size else (0, -1)
            if lo < 0 or hi >= arr.shape[d]:
                raise EvalError(f"{self.e.name}: subscript {d} of {acc} ranges over [{lo}, {hi}], "
                                f"outside 0..{arr.shape[d] - 1}")
            idx.append(v)
        return arr[tuple(idx)]

    def _fast_access(self, acc: E.Access, arr: np.ndarray) -> np.ndarray | None:
        """Plain indices (optionally +/- a constant) and constants: basic slicing, a view."""
        sl: list[slice | int] = []
        axes: list[int] = []
        for d, s in enumerate(acc.subscripts):
            off = 0
            if isinstance(s, E.BinOp) and s.op in "+-" and isinstance(s.left, E.Index) \
                    and isinstance(s.right, E.Num) and isinstance(s.right.value, int):
                off = s.right.value if s.op == "+" else -s.right.value
                s = s.left
            if isinstance(s, E.Index):
                if s.name in self.fixed:
                    k = self.fixed[s.name] + off
                    if not 0 <= k < arr.shape[d]:
                        raise EvalError(f"{self.e.name}: subscript {d} of {acc} is {k}, outside 0..{arr.shape[d] - 1}")
                    sl.append(k)
                    continue
                n = self.extent[self.axis[s.name]]
                if off < 0 or off + n > arr.shape[d]:
                    raise EvalError(f"{self.e.name}: subscript {d} of {acc} ranges over [{off}, {off + n - 1}], "
                                    f"outside 0..{arr.shape[d] - 1}")
                if self.axis[s.name] in axes:
                    return None  # repeated index (a diagonal): general path
                sl.append(slice(off, off + n))
                axes.append(self.axis[s.name])
            elif isinstance(s, (E.Num, E.RankSize, E.Param)):
                k = self.ev(s)
                if not float(k).is_integer() or not 0 <= int(k) < arr.shape[d]:
                    raise EvalError(f"{self.e.name}: subscript {d} of {acc} is {k}, outside 0..{arr.shape[d] - 1}")
                sl.append(int(k))
            else:
                return None
        view = arr[tuple(sl)]
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        view = view.transpose(order)
        shape = [1] * self.ndim
        for i in order:
            shape[axes[i]] = view.shape[order.index(i)]
        return view.reshape(shape)

    def deps(self, x: E.Expr) -> set[str]:
        return {ix for ix in E.indices_in(x) if ix not in self.fixed}


def _is_int(a: object, b: object) -> bool:
    return all(np.asarray(v).dtype.kind in "iu" for v in (a, b)) and np.all(np.asarray(b) >= 0)


_LETTERS = string.ascii_letters


def _contract(ops: list[tuple[np.ndarray, list[str]]], out: list[str]) -> np.ndarray:
    """Sum-of-products contraction of labelled operands onto labels ``out``."""
    letters = {}
    for _, labs in ops:
        for l in labs:
            letters.setdefault(l, _LETTERS[len(letters)])
    if len(ops) == 2:
        return _contract2(ops[0], ops[1], out)
    spec = ",".join("".join(letters[l] for l in labs) for _, labs in ops)
    spec += "->" + "".join(letters[l] for l in out)
    return np.einsum(spec, *[a for a, _ in ops], optimize="greedy")


def _contract2(A: tuple[np.ndarray, list[str]], B: tuple[np.ndarray, list[str]], out: list[str]) -> np.ndarray:
    a, la = A
    b, lb = B
    # sum away labels private to one operand and absent from the output
    priv_a = [l for l in la if l not in lb and l not in out]
    if priv_a:
        a = a.sum(axis=tuple(la.index(l) for l in priv_a))
        la = [l for l in la if l not in priv_a]
    priv_b = [l for l in lb if l not in la and l not in out]
    if priv_b:
        b = b.sum(axis=tuple(lb.index(l) for l in priv_b))
        lb = [l for l in lb if l not in priv_b]
    batch = [l for l in la if l in lb and l in out]
    contr = [l for l in la if l in lb and l not in out]
    fa = [l for l in la if l not in lb]
    fb = [l for l in lb if l not in la]
    sizes = {l: a.shape[la.index(l)] for l in la} | {l: b.shape[lb.index(l)] for l in lb}

    def prod(ls: list[str]) -> int:
        n = 1
        for l in ls:
            n *= sizes[l]
        return n

    a2 = a.transpose([la.index(l) for l in batch + fa + contr]).reshape(prod(batch), prod(fa), prod(contr))
    b2 = b.transpose([lb.index(l) for l in batch + contr + fb]).reshape(prod(batch), prod(contr), prod(fb))
    r = np.matmul(a2, b2).reshape([sizes[l] for l in batch + fa + fb])
    have = batch + fa + fb
    return r.transpose([have.index(l) for l in out])


def _run(c: Cascade, e: Einsum, env: dict[str, np.ndarray], fixed: Mapping[str, int]) -> None:
    ctx = _Ctx(c, e, env, fixed)
    if e.scatter:  # einsum.indexing: the result has the target's shape, not the space's
        if fixed:
            raise EvalError(f"{e.name}: a scatter cannot be part of a recurrence")
        env[e.output] = run_indexed(ctx, e)
        return
    if e.fibre_out or e.reduce_op in ARG_REDUCTIONS:  # einsum.indexing
        _store(c, e, env, fixed, np.broadcast_to(run_indexed(ctx, e), ctx.extent[:len(e.lhs_indices)]))
        return
    st = e.stmt
    nl = len(e.lhs_indices)
    lhs_ext = ctx.extent[:nl]
    mask = ctx.valid
    if st.filter is not None:
        flt = np.asarray(ctx.ev(st.filter), dtype=bool)
        flt = flt.reshape(flt.shape + (1,) * (ctx.ndim - flt.ndim))
        mask = flt if mask is None else mask & flt
    if e.reduce_op == "sum" and _product_ok(ctx, st.rhs, e):
        res = _sum_of_products(ctx, e, mask)
    else:
        val = np.asarray(ctx.ev(st.rhs), dtype=np.float64)
        if val.ndim < ctx.ndim:
            val = val.reshape((1,) * (ctx.ndim - val.ndim) + val.shape)
        if e.reduce_op is None:
            res = val if mask is None else np.where(mask, val, 0.0)
        else:
            ident = {"sum": 0.0, "max": -np.inf, "min": np.inf}[e.reduce_op]
            if mask is not None:
                val = np.where(mask, val, ident)
            axes = tuple(range(nl, ctx.ndim))
            full = np.broadcast_to(val, val.shape[:nl] + ctx.extent[nl:])
            fn = {"sum": np.sum, "max": np.max, "min": np.min}[e.reduce_op]
            res = fn(full, axis=axes, initial=ident)  # an empty reduction is the identity
    res = np.broadcast_to(res, lhs_ext)
    _store(c, e, env, fixed, res)


def _product_ok(ctx: _Ctx, rhs: E.Expr, e: Einsum) -> bool:
    inner = [f for f, div in E.factors(rhs) if ctx.deps(f) & set(e.reduced)]
    return len(inner) >= 1 and not any(div for f, div in E.factors(rhs) if ctx.deps(f) & set(e.reduced))


def _sum_of_products(ctx: _Ctx, e: Einsum, mask: np.ndarray | None) -> np.ndarray:
    red = set(e.reduced)
    nl = len(e.lhs_indices)
    lhs = list(e.lhs_indices)
    inner: list[tuple[np.ndarray, list[str]]] = []
    post: list[tuple[E.Expr, bool]] = []
    for f, div in E.factors(e.stmt.rhs):
        if ctx.deps(f) & red:
            labs = [ix for ix in ctx.space if ix in ctx.deps(f)]
            v = np.asarray(ctx.ev(f), dtype=np.float64)
            v = v.reshape((1,) * (ctx.ndim - v.ndim) + v.shape) if v.ndim < ctx.ndim else v
            v = np.broadcast_to(v, tuple(ctx.extent[i] if ix in labs else 1
                                         for i, ix in enumerate(ctx.space)))
            inner.append((v, labs))
        else:
            post.append((f, div))
    post_mask = None
    if mask is not None:
        mlabs = [ix for i, ix in enumerate(ctx.space) if mask.shape[i] > 1]
        if not set(mlabs) & red:
            post_mask = mask
        else:
            for j, (v, labs) in enumerate(inner):
                if set(mlabs) <= set(labs):
                    inner[j] = (np.where(mask, v, 0.0), labs)
                    break
            else:
                inner.append((mask.astype(np.float64), mlabs))
    # squeeze each operand to its labels
    ops = []
    for v, labs in inner:
        keep = [ctx.axis[l] for l in labs]
        drop = tuple(i for i in range(ctx.ndim) if i not in keep)
        ops.append((np.squeeze(v, axis=drop) if drop else v, labs))
    present = [l for l in lhs if any(l in labs for _, labs in ops)]
    r = _contract(ops, present)
    shape = [ctx.extent[ctx.axis[l]] if l in present else 1 for l in lhs]
    r = r.reshape(shape)
    for f, div in post:
        v = np.asarray(ctx.ev(f), dtype=np.float64)
        if v.ndim:
            v = v.reshape((1,) * (ctx.ndim - v.ndim) + v.shape) if v.ndim < ctx.ndim else v
            v = v.reshape(v.shape[:nl])
        r = r / v if div else r * v
    if post_mask is not None:
        r = np.where(post_mask.reshape(post_mask.shape[:nl]), r, 0.0)
    return r


def out_slice(c: Cascade, e: Einsum, fixed: Mapping[str, int]) -> tuple:
    """Where an Einsum writes in its output tensor, with the indices in ``fixed`` held at
    one value: a recurrence update writes at ``i + 1``, its initial value at 0."""
    info = c.tensors[e.output]
    sl: list[slice | int] = []
    for d, s in enumerate(e.stmt.lhs.subscripts):
        if e.kind == "init" and d == info.iterative_dim:
            sl.append(0)
            continue
        ix = s.name if isinstance(s, E.Index) else s.left.name  # type: ignore[union-attr]
        off = 1 if (e.kind == "update" and d == info.iterative_dim) else 0
        sl.append(fixed[ix] + off if ix in fixed else slice(off, off + c.index_size(ix)))
    return tuple(sl)


def _store(c: Cascade, e: Einsum, env: dict[str, np.ndarray], fixed: Mapping[str, int],
           res: np.ndarray) -> None:
    info = c.tensors[e.output]
    if e.kind == "plain" and not fixed:
        env[e.output] = res if res.dtype == np.float64 else res.astype(np.float64)
        return
    target = env.setdefault(e.output, np.zeros(info.shape))
    # res axes follow lhs_indices (update var included), fixed axes have extent 1
    res_sq = res.reshape(tuple(c.index_size(ix) for ix in e.lhs_indices if ix not in fixed)) \
        if e.lhs_indices else res.reshape(())
    target[out_slice(c, e, fixed)] = res_sq
