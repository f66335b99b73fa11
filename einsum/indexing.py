"""Data-dependent indexing: index tensors, gathers, scatters and ordering operators.

An *index tensor* holds positions in one rank (its *range*): an input declared
``IDX: "[G, J] in P"`` or ``IDX: {ranks: [G, J], in: P}``, or a tensor computed by
``argmax(p)``/``argmin(p)`` or ``argsort``/``argtopk`` along ``p`` (range P), a
plain copy of one, or a computed tensor declared in the section ``ranges: {AT: T}``
(checked by the reference once computed, :func:`check_declared_range`). Used as a whole subscript it is a *gather*, ``KG[g, j, e] =
K[IDX[g, j], e]``, allowed on a dimension of rank R when the range is R (or an alias of
R of the same size), so every shape is proven statically; on the left of ``+=`` it is
a *scatter-accumulate*, ``Y[IDX[t, k], d] += expr``: every point (t, k, d) adds into
row ``IDX[t, k]``, and rows never hit hold 0 (a scatter starts from zeros; add a
starting tensor in a following Einsum). The reference checks that every given index
input is an integer inside its range (:func:`check_index_inputs`) and evaluates the
ordering operators of :mod:`einsum.ops` (:func:`run_indexed`).

Downstream: :mod:`einsum.analysis` counts a gather as a pass over the rank it reads and
the comparisons of :func:`ordering_comparisons`; :func:`indirect_dims` and
:func:`sorted_dims` tell the mapping checks and the simulator (``mapping.footprint.indirect_*``,
``sim.engine``) which tensors are read or written row by row, and which index tensors are
non-decreasing (so a gather through them repeats rows).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .ops import np

from . import expr as E
from .cascade import Cascade, Einsum, RankInfo, TensorInfo
from .ops import ARG_REDUCTIONS, OPERATORS
from .parse import ParseError
from .yamlsrc import Source, YPath

_INDEX_DECL = re.compile(r"^\s*\[([^\]]*)\]\s+in\s+([A-Za-z_]\w*)\s*$")


def input_decl(src: Source, ip: YPath, decl: Any, rinfo: Mapping[str, RankInfo]
                ) -> tuple[list[str], str | None]:
    """An input's ranks and, for an index tensor, the rank its values lie in: a list
    ``[M, E]``; ``"[G, J] in P"`` (quoted: YAML cannot read the bare form); or the
    mapping ``{ranks: [G, J], in: P}``."""
    vrange = None
    if isinstance(decl, str):
        m = _INDEX_DECL.match(decl)
        if not m:
            raise src.error(ip, f"expected a list of rank names, e.g. [M, E], or an index tensor "
                            f"\"[G, J] in P\", got {decl!r}")
        decl = [x.strip() for x in m.group(1).split(",") if x.strip()]
        vrange = m.group(2)
    elif isinstance(decl, dict):
        extra = set(decl) - {"ranks", "in"}
        if extra or "ranks" not in decl or "in" not in decl:
            raise src.error(ip, "an index tensor is {ranks: [G, J], in: P} (its ranks and the "
                            f"rank its values index), got keys {', '.join(map(str, decl))}")
        vrange = decl["in"]
        decl = decl["ranks"]
        ip = ip + ("ranks",)
    if not isinstance(decl, list) or not all(isinstance(r, str) for r in decl):
        raise src.error(ip, "expected a list of rank names, e.g. [M, E]")
    for j, r in enumerate(decl):
        if r not in rinfo:  # a rank of the string form is located at the string
            raise src.error(ip if vrange is not None and ip[-1] != "ranks" else ip + (j,),
                            f"unknown rank {r!r} (ranks: {', '.join(rinfo)})")
    if vrange is not None and vrange not in rinfo:
        raise src.error(ip[:-1] if ip[-1] == "ranks" else ip,
                        f"index range {vrange!r} is not a rank (ranks: {', '.join(rinfo)})")
    return decl, vrange


def declared_ranges(src: Source, sec: Mapping[str, Any], base: YPath, rinfo: Mapping[str, RankInfo],
                    defined: Mapping[str, Any], tensors: Mapping[str, TensorInfo]) -> dict[str, str]:
    """The ``ranges: {AT: T}`` section: computed tensors declared to hold positions in a rank
    (``AT[s] = s // K`` is then an index tensor of range T; the reference checks its values
    after computing it)."""
    rsec = sec.get("ranges", {}) or {}
    if not isinstance(rsec, dict):
        raise src.error(base + ("ranges",), "expected {TENSOR: RANK}: computed tensors that hold "
                        "positions in RANK (index tensors)")
    out: dict[str, str] = {}
    for t, r in rsec.items():
        p = base + ("ranges", str(t))
        if t in tensors:
            raise src.error(p, f"{t} is an input: declare its range there, {t}: \"[..] in {r}\"")
        if t not in defined:
            raise src.error(p, f"{t} is not a tensor of the cascade")
        if not isinstance(r, str) or r not in rinfo:
            raise src.error(p, f"{r!r} is not a rank (ranks: {', '.join(rinfo)})")
        out[str(t)] = r
    return out


def check_declared_range(c: Cascade, t: str, a: np.ndarray) -> None:
    """A computed tensor of ``ranges:`` holds integer positions of its rank, else an
    :class:`~einsum.interp.EvalError` at the Einsum that computed it."""
    from .interp import EvalError

    info = c.tensors[t]
    n = c.ranks[info.value_range].size  # type: ignore[index]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a >= n)
    if bad.any():
        pos = tuple(int(x) for x in np.argwhere(bad)[0])
        at = ", ".join(f"{c.ranks[r].index}={p}" for r, p in zip(info.ranks, pos))
        v = float(a[pos])
        shown = int(v) if np.isfinite(v) and v == round(v) else v
        raise EvalError(f"{c.producers(t)[-1].name}: {t} (declared in ranges: as positions in "
                        f"{info.value_range}, 0..{n - 1}) holds {shown} at [{at}]")


def computed_range(st: E.Statement, tensors: Mapping[str, TensorInfo],
                    idx_rank: Mapping[str, str]) -> str | None:
    """The rank a computed tensor's values index, if it is an index tensor: the positions
    of argmax/argmin(i) or argsort/argtopk(x, i, j) lie in i's rank; a plain copy of an
    index tensor keeps its range."""
    if st.reduce_op in ARG_REDUCTIONS and len(st.reduce_indices) == 1:
        return idx_rank[st.reduce_indices[0]]
    r = st.rhs
    if isinstance(r, E.Call) and r.op in OPERATORS and OPERATORS[r.op].positions \
            and len(r.args) == 3 and isinstance(r.args[1], E.Index):
        return idx_rank[r.args[1].name]
    if isinstance(r, E.Access) and st.reduce_op is None and not st.accumulate \
            and r.tensor in tensors:
        return tensors[r.tensor].value_range
    return None


def not_index_tensor(t: str, tensors: Mapping[str, TensorInfo]) -> str:
    have = [n for n, i in tensors.items() if i.value_range]
    return (f"{t} is not an index tensor (declare an input as \"[G, J] in P\" or "
            "{ranks: [G, J], in: P}, or compute it with argmax/argmin/argsort/argtopk; index "
            f"tensors here: {', '.join(have) or 'none'})")


def check_gather(acc: E.Access, d: int, g: E.Access, tensors: Mapping[str, TensorInfo],
                  rinfo: Mapping[str, RankInfo]) -> None:
    """``acc``'s subscript ``d`` is the index tensor access ``g``: its values must be
    positions in the rank of that dimension (so the shape is proven statically)."""
    gi = tensors.get(g.tensor)
    if gi is None or gi.value_range is None:
        raise ParseError(f"{acc}: subscript {d}: " + not_index_tensor(g.tensor, tensors))
    for s in g.subscripts:
        if any(isinstance(n, E.Access) for n in E.walk(s)):
            raise ParseError(f"{acc}: the index tensor access {g} has a tensor in its own "
                             "subscripts (gather once per Einsum level: compute it first)")
    want = tensors[acc.tensor].ranks[d]
    have = gi.value_range
    same = have == want or (rinfo[have].root == rinfo[want].root and rinfo[have].size == rinfo[want].size)
    if not same:
        raise ParseError(f"{acc}: subscript {d} of {acc.tensor} is rank {want} "
                         f"(size {rinfo[want].size}), but the index tensor {g.tensor} holds positions "
                         f"in {have} (size {rinfo[have].size})")


def check_fibre_out(st: E.Statement, call: E.Call, lhs_idx: list[str],
                     rinfo: Mapping[str, RankInfo], idx_rank: Mapping[str, str]
                     ) -> tuple[str, str, str]:
    """``OUT[.., j] = sort(x, i, j)`` (argsort, topk, argtopk): the whole right side, i
    read along x's fibre, j a left-side index of a rank of i's size (at most for topk)."""
    op = call.op
    x, i, j = call.args
    if call is not st.rhs or st.reduce_op or st.filter is not None or st.accumulate:
        raise ParseError(f"{op}(x, i, j) must be the whole right side of its Einsum "
                         f"(OUT[.., j] = {op}(X[.., i], i, j)), without a reduction or filter")
    if not (isinstance(i, E.Index) and isinstance(j, E.Index)) or i.name == j.name:
        raise ParseError(f"{op}(x, i, j): i and j must be two different indices, got {i}, {j}")
    if i.name in lhs_idx or j.name not in lhs_idx:
        raise ParseError(f"{op}(x, {i}, {j}): {j} must be on the left side and {i} must not "
                         f"(the fibre along {i} is written along {j})")
    if j.name in E.indices_in(x):
        raise ParseError(f"{op}(x, {i}, {j}): x must not use {j}, the index it writes")
    ni, nj = rinfo[idx_rank[i.name]].size, rinfo[idx_rank[j.name]].size
    if op in ("sort", "argsort") and nj != ni:
        raise ParseError(f"{op}(x, {i}, {j}): {j} (rank {idx_rank[j.name]} = {nj}) must have the "
                         f"size of {i} (rank {idx_rank[i.name]} = {ni})")
    if op in ("topk", "argtopk") and nj > ni:
        raise ParseError(f"{op}(x, {i}, {j}): k = size of {idx_rank[j.name]} = {nj} exceeds the "
                         f"{ni} elements along {i} (rank {idx_rank[i.name]})")
    return op, i.name, j.name


def indirect_dims(c: Cascade, e: Einsum) -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
    """The Einsum's indirect accesses as (tensor, dimension, pass rank) triples: the gathered
    dimensions of the tensors it reads (``K[IDX[g, j], e]``: (K, 0, P)) and, for a scatter,
    the dimensions of its target written through an index tensor."""
    gathered = [(a.tensor, d, c.pass_rank(c.tensors[a.tensor].ranks[d]))
                for a in E.accesses_in(e.stmt.rhs) for d, _ in E.gathers(a)]
    scattered = [(e.output, d, c.pass_rank(c.tensors[e.output].ranks[d]))
                 for d, _ in E.gathers(e.stmt.lhs)] if e.scatter else []
    return gathered, scattered


def sorted_dims(c: Cascade) -> dict[str, frozenset[int]]:
    """Dimensions along which a computed tensor is provably non-decreasing: the output
    dimension of ``sort(x, i, j)``, and a gather of a key through its own argsort,
    ``EX[j] = AE[ORD[j]]`` with ``ORD[j] = argsort(AE[s], s, j)`` (the other subscripts
    equal). A gather *through* such an index (``W[EX[j], d]``) walks its rows in order: a
    run of ``n`` points along j touches at most ``min(n, size of EX's range)`` rows."""
    out: dict[str, frozenset[int]] = {}
    by_out = {e.output: e for e in c.einsums}
    for e in c.einsums:
        st = e.stmt
        if st.filter is not None or st.reduce_op or st.accumulate:
            continue
        lhs = [s.name if isinstance(s, E.Index) else None for s in st.lhs.subscripts]
        r = st.rhs
        if e.fibre_out is not None and e.fibre_out[0] == "sort":
            out[e.output] = frozenset({lhs.index(e.fibre_out[2])})
            continue
        if not isinstance(r, E.Access) or len(E.gathers(r)) != 1:
            continue
        d, g = E.gathers(r)[0]
        p = by_out.get(g.tensor)
        if p is None or p.fibre_out is None or p.fibre_out[0] != "argsort":
            continue
        _, i, j = p.fibre_out
        x = p.stmt.rhs.args[0]  # type: ignore[union-attr]
        ok = (isinstance(x, E.Access) and x.tensor == r.tensor and x.subscripts[d] == E.Index(i)
              and all(a == b for k, (a, b) in enumerate(zip(x.subscripts, r.subscripts)) if k != d)
              and g.subscripts == p.stmt.lhs.subscripts and j in lhs)
        if ok:
            out[e.output] = frozenset({lhs.index(j)})
    return out


def ordering_comparisons(op: str, n: int, k: int) -> int:
    """Comparisons of one fibre of ``n`` elements (``k``: the size of the output index):

    * ``sort``/``argsort``: the worst case of a binary merge sort,
      ``n ceil(lg n) - 2^ceil(lg n) + 1`` (Knuth, TAOCP vol. 3, 5.2.4; 0 for n <= 1);
    * ``topk``/``argtopk``: ``k`` running-maximum scans over the elements not yet chosen,
      each starting from -inf as a ``max`` reduction does (one comparison per element
      scanned): ``n + (n - 1) + ... + (n - k + 1) = k (2n - k + 1) / 2``, so ``topk`` with
      k = 1 costs what ``argmax`` does.
    """
    if op in ("sort", "argsort"):
        if n <= 1:
            return 0
        lg = (n - 1).bit_length()  # ceil(log2 n)
        return n * lg - (1 << lg) + 1
    if op in ("topk", "argtopk"):
        return k * (2 * n - k + 1) // 2
    raise ValueError(op)


# -- the reference -------------------------------------------------------------------
def check_index_inputs(c: Cascade, env: Mapping[str, np.ndarray]) -> None:
    """Every index input holds integers inside its declared range; otherwise an
    :class:`~einsum.interp.EvalError` naming the first Einsum that reads it, the tensor, the
    bad value and its position."""
    from .interp import EvalError

    for t in c.inputs:
        info = c.tensors[t]
        if info.value_range is None:
            continue
        a = np.asarray(env[t])
        n = c.ranks[info.value_range].size
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a >= n)
        if bad.any():
            pos = tuple(int(x) for x in np.argwhere(bad)[0])
            reader = next((e.name for e in c.einsums if t in e.reads), "?")
            v = float(a[pos])
            what = "not an integer" if np.isfinite(v) and v != round(v) else \
                f"outside 0..{n - 1}" if np.isfinite(v) else "not a number"
            shown = int(v) if np.isfinite(v) and v == round(v) else v
            at = ", ".join(f"{c.ranks[r].index}={p}" for r, p in zip(info.ranks, pos))
            raise EvalError(f"{reader}: index input {t} holds {shown} at [{at}] "
                            f"({int(bad.sum())} bad value{'s' * (int(bad.sum()) != 1)}): {what}; "
                            f"its values must be positions in rank {info.value_range} (0..{n - 1})")


def run_indexed(ctx: Any, e: Einsum) -> np.ndarray:
    """The value of an argmax/argmin reduction, an ordering operator (sort, argsort, topk,
    argtopk) or a scatter over the Einsum's space; ``ctx`` is the interpreter's context."""
    from .interp import EvalError

    c, st = ctx.c, e.stmt
    nl = len(e.lhs_indices)
    if e.scatter:
        return _scatter(ctx, e)
    if e.fibre_out is not None:
        op, i, j = e.fibre_out
        if i in ctx.fixed:
            raise EvalError(f"{e.name}: {op} runs along {i}, which is fixed here")
        if ctx.valid is not None:
            raise EvalError(f"{e.name}: {op} along {i} runs over a ragged chunk (its padding would "
                            "be ordered with the values); order along the whole rank instead")
        x = st.rhs.args[0]  # type: ignore[union-attr]
        ai, aj = ctx.axis[i], ctx.axis[j]
        shape = list(ctx.extent)
        shape[aj] = 1
        v = _full(ctx, ctx.ev(x), shape)
        nj = c.index_size(j)
        if shape[ai] == 0 or 0 in shape:
            return np.zeros(ctx.extent[:nl])
        r = OPERATORS[op].fn(v, ai, nj)  # along i, n_out = size of j
        if j in ctx.fixed:  # one position of the order (the functional mode's tiles)
            r = np.take(r, [ctx.fixed[j]], axis=ai)
        r = np.take(r, 0, axis=aj)  # drop j's unit axis (j is on the left, before i)
        return np.moveaxis(r, ai - 1, aj)
    # argmax / argmin (i) over the one reduced index
    v = _full(ctx, ctx.ev(st.rhs), list(ctx.extent))
    ax = ctx.axis[e.reduced[0]]
    if v.shape[ax] == 0:
        raise EvalError(f"{e.name}: {e.reduce_op}({e.reduced[0]}) over an empty rank has no position")
    mask = _mask(ctx, st)
    if mask is None:
        return ARG_REDUCTIONS[e.reduce_op](v, ax)
    mask = np.broadcast_to(mask, v.shape)
    empty = ~mask.any(axis=ax)
    if empty.any():
        at = tuple(int(x) for x in np.argwhere(empty)[0])
        where = dict(zip((ix for ix in ctx.space if ix != e.reduced[0]), at))
        raise EvalError(f"{e.name}: {e.reduce_op}({e.reduced[0]}) at {where}: no point of the fibre "
                        "passes the filter, so there is no position to return")
    # the first extreme among the points that pass (a masked point never wins a tie);
    # a NaN among them wins, as in np.argmax
    ident = -np.inf if e.reduce_op == "argmax" else np.inf
    ext = (np.max if e.reduce_op == "argmax" else np.min)(np.where(mask, v, ident), axis=ax,
                                                           keepdims=True)
    hit = mask & ((v == ext) | np.isnan(v) | np.isnan(ext))
    return np.argmax(hit, axis=ax).astype(np.float64)


def _full(ctx: Any, v: Any, shape: list[int]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    a = a.reshape((1,) * (ctx.ndim - a.ndim) + a.shape) if a.ndim < ctx.ndim else a
    return np.broadcast_to(a, shape)


def _mask(ctx: Any, st: E.Statement) -> np.ndarray | None:
    mask = ctx.valid
    if st.filter is not None:
        flt = np.asarray(ctx.ev(st.filter), dtype=bool)
        flt = flt.reshape(flt.shape + (1,) * (ctx.ndim - flt.ndim))
        mask = flt if mask is None else mask & flt
    return mask


def _scatter(ctx: Any, e: Einsum) -> np.ndarray:
    """``Y[IDX[t, k], d] += expr``: each point's value (summed over indices used only on
    the right) adds into its row; rows never hit stay 0. With indices fixed (a tile of the
    functional mode) it is that tile's contribution, to be added to the others'."""
    from .interp import EvalError

    c, st = ctx.c, e.stmt
    nl = len(e.lhs_indices)
    keep = list(ctx.extent[:nl]) + [1] * (ctx.ndim - nl)
    v = _full(ctx, ctx.ev(st.rhs), list(ctx.extent))
    mask = _mask(ctx, st)
    if mask is not None:
        v = np.where(mask, v, 0.0)
    if ctx.ndim > nl:
        v = v.sum(axis=tuple(range(nl, ctx.ndim)), keepdims=True)
    info = c.tensors[e.output]
    out = np.zeros(info.shape)
    idx = []
    for d, s in enumerate(st.lhs.subscripts):
        pos = np.asarray(ctx.ev(s))
        pos = np.broadcast_to(pos.reshape(pos.shape + (1,) * (ctx.ndim - pos.ndim)), keep)
        if pos.size and (pos.min() < 0 or pos.max() >= info.shape[d]):
            bad = tuple(int(x) for x in np.argwhere((pos < 0) | (pos >= info.shape[d]))[0][:nl])
            raise EvalError(f"{e.name}: {s} is {pos[bad + (0,) * (ctx.ndim - nl)]!r} at "
                            f"{dict(zip(e.lhs_indices, bad))}, outside 0..{info.shape[d] - 1} "
                            f"of {e.output}'s dimension {d}")
        idx.append(pos.astype(np.int64))
    np.add.at(out, tuple(idx), np.broadcast_to(v, keep))
    return out
