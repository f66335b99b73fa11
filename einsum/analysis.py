"""Static analysis of a cascade: operation counts, intermediate sizes and passes.

Operation counts are per Einsum over its iteration space (the points that pass its
``where`` filter). A sum of products counts one MAC per point for the product of
the factors that depend on the reduced indices (plus one extra multiply per point
for each further such factor); factors independent of the reduced indices are
applied once per output element. Every other operator is counted once per point,
by action class (``add``, ``mul``, ``div``, ``exp``, ``max`` ...), and a ``max``/``min``
reduction one ``max`` per point, a non-product sum one ``add`` per point.

Indexed Einsums (:mod:`einsum.indexing`): ``argmax``/``argmin`` count one ``max`` per point,
as ``max`` does; a gather is a read (free, like any access); a scatter-accumulate counts one
``add`` per value it adds into its target; ``sort``/``argsort`` and ``topk``/``argtopk``
count their operand's operators once per element of each fibre plus, per fibre of n
elements, ``n ceil(lg n) - 2^ceil(lg n) + 1`` ``cmp`` (the worst case of a binary merge
sort) and ``k (2n - k + 1) / 2`` ``cmp`` (k running-maximum scans), see
:func:`einsum.indexing.ordering_comparisons`.

Passes follow FuseMax (Nayak et al., MICRO 2024, Sec. III): the number of times a
fibre of a rank must be traversed because a later Einsum iterating that rank needs a
value that is complete only after a whole traversal (a reduction over the rank). They
are counted per declared rank: a partitioned rank (P -> P1, P0) is traversed through
its parts, and a recurrence over P1 carries running values within the same pass; an
alias (``P: M``, a second index over M's extent) is a rank of its own.

A gather ``K[IDX[g, j], e]`` is a pass over K's gathered rank P even where no index of P
is iterated, and reads K at random: it comes after the pass that completed K (and IDX)
over P. Each gathered element is ready once read, so the gather's output is as complete
over P as its inputs. A scatter ``Y[IDX[t, k], d] += ..`` is a pass over Y's target rank
X, and Y's rows are complete only after it: reading Y along X is the next pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

import math

from . import expr as E
from .cascade import Cascade, Einsum
from .indexing import indirect_dims, ordering_comparisons
from .ops import ARG_REDUCTIONS, OPERATORS
from .ragged import last_chunk, masked_pairs, space_points, tensor_elements

ACTIONS = ("mac", "add", "mul", "div", "exp", "max", "sqrt", "log", "gelu", "select", "cmp")


@dataclass(frozen=True)
class OpCounts:
    """Operation counts of one Einsum (see the module docstring for the rules)."""

    points: int
    outputs: int
    counts: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, action: str) -> int:
        return int(self.counts.get(action, 0))

    @property
    def macs(self) -> int:
        return self["mac"]

    def as_dict(self) -> dict[str, int]:
        return {"points": self.points, "outputs": self.outputs,
                **{a: int(self.counts.get(a, 0)) for a in ACTIONS if self.counts.get(a, 0)}}


def _ops_in(x: E.Expr, ctr: Counter) -> None:
    """Count operators per evaluation of ``x`` (subscript arithmetic is free)."""
    if isinstance(x, E.Access):
        return
    if isinstance(x, E.BinOp):
        cls = {"+": "add", "-": "add", "*": "mul", "/": "div", "//": "div", "%": "div",
               "**": "exp"}[x.op]
        ctr[cls] += 1
    elif isinstance(x, E.Unary) and x.op == "-":
        pass  # sign flips are free
    elif isinstance(x, E.Compare):
        ctr["cmp"] += 1
    elif isinstance(x, E.Call):
        ctr[OPERATORS[x.op].action] += 1
    for ch in E.children(x):
        _ops_in(ch, ctr)


def _count_filter(c: Cascade, e: Einsum) -> int:
    """Iteration points of ``e`` that pass its filter (and name elements: a ragged
    partition's padding is not a point, :mod:`einsum.ragged`)."""
    flt = e.stmt.filter
    total = space_points(c, e.iter_indices)
    if flt is None or total == 0:
        return total
    pairs = masked_pairs(c, e.iter_indices)
    fidx = list(dict.fromkeys(E.indices_in(flt) + [ix for _, o, i in pairs for ix in (o, i)]))
    rest = math.prod(c.index_size(ix) for ix in e.iter_indices if ix not in fidx)
    # closed form for a comparison of two plain indices: a OP b
    if (not pairs and isinstance(flt, E.Compare) and isinstance(flt.left, E.Index)
            and isinstance(flt.right, E.Index) and flt.left.name != flt.right.name
            and flt.op in ("<", "<=", ">", ">=")):
        a, b = c.index_size(flt.left.name), c.index_size(flt.right.name)
        op = flt.op
        if op in (">", ">="):  # a > b  <=>  b < a
            a, b = b, a
            op = "<" if op == ">" else "<="
        # pairs (x in [0,a), y in [0,b)) with x < y (or x <= y): sum of min(t, a) over
        # t = y (+1); t <= a contribute t (an arithmetic series), the others a each
        lo, hi = (1, b) if op == "<=" else (0, b - 1)
        top = min(hi, a)
        below = (top - lo + 1) * (lo + top) // 2 if top >= lo else 0
        return (below + a * max(0, hi - max(top, lo - 1))) * rest
    # general case: evaluate the mask over its own indices (numpy only here)
    import numpy as np

    from .interp import _Ctx

    ctx = _Ctx(c, e, {}, {})
    fsz = math.prod(c.index_size(ix) for ix in fidx)
    if fsz > 2_000_000_000:
        raise ValueError(f"{e.name}: the filter spans {fsz} points; too many to count")
    mask = np.asarray(ctx.ev(flt), dtype=bool)
    mask = mask.reshape(mask.shape + (1,) * (ctx.ndim - mask.ndim))
    if ctx.valid is not None:
        mask = mask & ctx.valid
    mask = np.broadcast_to(mask, tuple(c.index_size(ix) if ix in fidx else 1 for ix in ctx.space))
    return int(mask.sum()) * rest


def op_counts(c: Cascade) -> dict[str, OpCounts]:
    """Operation counts of every Einsum, keyed by Einsum name."""
    out: dict[str, OpCounts] = {}
    for e in c.einsums:
        if e.fibre_out is not None:
            out[e.name] = _ordering_counts(c, e)
            continue
        pts = _count_filter(c, e)
        nout = space_points(c, e.lhs_indices)
        ctr: Counter = Counter()
        red = set(e.reduced)
        if e.scatter:  # each value accumulated into its target row: one add
            ctr["add"] += nout if e.reduced else pts
        if e.reduce_op == "sum":
            facs = E.factors(e.stmt.rhs)
            inner = [(f, d) for f, d in facs if set(E.indices_in(f)) & red]
            if inner and not any(d for _, d in inner):
                if len(inner) >= 2:
                    ctr["mac"] += pts
                    ctr["mul"] += pts * (len(inner) - 2)
                else:
                    ctr["add"] += pts
                for f, _ in inner:
                    sub: Counter = Counter()
                    _ops_in(f, sub)
                    for k, v in sub.items():
                        ctr[k] += v * pts
                for f, d in facs:
                    if (f, d) in inner:
                        continue
                    sub = Counter()
                    _ops_in(f, sub)
                    for k, v in sub.items():
                        ctr[k] += v * nout
                    if not (isinstance(f, E.Num) and f.value in (1, -1)):
                        ctr["div" if d else "mul"] += nout
                out[e.name] = OpCounts(pts, nout, dict(ctr))
                continue
        sub = Counter()
        _ops_in(e.stmt.rhs, sub)
        for k, v in sub.items():
            ctr[k] += v * pts
        if e.reduce_op == "sum":
            ctr["add"] += pts
        elif e.reduce_op in ("max", "min") or e.reduce_op in ARG_REDUCTIONS:
            ctr["max"] += pts  # argmax/argmin: the same compare, keeping the position
        out[e.name] = OpCounts(pts, nout, dict(ctr))
    return out


def _ordering_counts(c: Cascade, e: Einsum) -> OpCounts:
    """``OUT[.., j] = sort(X[.., i], i, j)`` (argsort, topk, argtopk): X's operators once per
    element of each fibre, plus :func:`einsum.indexing.ordering_comparisons` ``cmp`` per
    fibre (one fibre per output element outside j)."""
    op, i, j = e.fibre_out  # type: ignore[misc]
    n, k = c.index_size(i), c.index_size(j)
    fibres = space_points(c, [ix for ix in e.lhs_indices if ix != j])
    ctr: Counter = Counter()
    sub: Counter = Counter()
    _ops_in(e.stmt.rhs.args[0], sub)  # type: ignore[union-attr]
    for a, v in sub.items():
        ctr[a] += v * fibres * n
    ctr["cmp"] += fibres * ordering_comparisons(op, n, k)
    return OpCounts(fibres * n, fibres * k, {a: v for a, v in ctr.items() if v})


def totals(counts: Mapping[str, OpCounts]) -> dict[str, int]:
    t: Counter = Counter()
    for oc in counts.values():
        for k, v in oc.counts.items():
            t[k] += v
    return {a: int(t[a]) for a in ACTIONS if t[a]}


# ----------------------------------------------------------------------------------
def pass_ranks(c: Cascade) -> list[str]:
    """The ranks passes are counted over: every declared rank an Einsum iterates, with a
    partition's parts (P1, P0) counted for the rank they split and an alias (``P: M``)
    counted as its own rank. Ranks of the input tensors come first, in order of first
    appearance, then the others in declaration order."""
    iterated = {c.pass_rank(c.rank_of_index(ix).name) for e in c.einsums for ix in e.iter_indices}
    for e in c.einsums:  # a gather or scatter traverses the rank it indexes
        iterated |= {R for dims in indirect_dims(c, e) for _, _, R in dims}
    seen: dict[str, None] = {}
    for t in c.inputs:
        for r in c.tensors[t].ranks:
            seen.setdefault(c.pass_rank(r))
    for r in c.ranks:
        seen.setdefault(c.pass_rank(r))
    return [r for r in seen if r in iterated]


def einsum_passes(c: Cascade) -> dict[str, dict[str, int]]:
    """For each Einsum, the pass (1-based; 0 = does not traverse) over each rank of
    :func:`pass_ranks`.

    An Einsum that iterates rank R reads a tensor in the same pass that produced it when
    it walks the tensor's R dimension with an index of R (streaming); a value that was
    complete only after pass k over R (a reduction over R, or a tensor whose R dimension
    is read through another rank's index, as ``K[p, e]`` with ``P: M`` read by ``m``)
    needs pass k + 1.
    """
    ranks = pass_ranks(c)
    rank_of_idx = {r.index: c.pass_rank(n) for n, r in c.ranks.items()}
    stream: dict[str, dict[str, int]] = {t: {} for t in c.tensors}
    done: dict[str, dict[str, int]] = {t: {} for t in c.tensors}
    result: dict[str, dict[str, int]] = {}
    scattered: dict[str, set[str]] = {t: set() for t in c.tensors}  # written at random over R
    order = [n for grp in c.schedule() for n in grp]
    for name in order:
        e = c.einsum(name)
        accs = E.accesses_in(e.stmt.rhs)
        gathered, scatter_dims = indirect_dims(c, e)
        indirect = {R for _, _, R in gathered + scatter_dims}
        per: dict[str, int] = {}
        for R in ranks:
            it = R in indirect or any(rank_of_idx[ix] == R for ix in e.iter_indices)
            need = 1 if it else 0
            for a in accs:
                info = c.tensors[a.tensor]
                # a gathered dimension (K[IDX[g, j], e]) and one a scatter wrote are read at
                # random: the whole tensor must be complete first, as for a reduction
                streams = R not in scattered[a.tensor] and any(
                    c.pass_rank(info.ranks[d]) == R and not isinstance(s, E.Access) and
                    any(rank_of_idx[ix] == R for ix in E.indices_in(s))
                    for d, s in enumerate(a.subscripts))
                if streams:
                    need = max(need, stream[a.tensor].get(R, 0), done[a.tensor].get(R, 0)
                               if not stream[a.tensor].get(R) else 0)
                else:
                    k = done[a.tensor].get(R, 0) or stream[a.tensor].get(R, 0)
                    if k:
                        need = max(need, k + (1 if it else 0))
            # a fibre operator (softmax(x, p)) needs its whole fibre before it emits any
            # element: like a reduction over R followed by a pass that reads it back
            if any(isinstance(n, E.Call) and OPERATORS[n.op].fibre and isinstance(n.args[-1], E.Index)
                   and rank_of_idx[n.args[-1].name] == R for n in E.walk(e.stmt.rhs)):
                need = max(need, 1) + 1
            per[R] = need
            keeps = any(rank_of_idx[ix] == R for ix in e.lhs_indices)
            if any(R == r for _, _, r in scatter_dims):
                scattered[e.output].add(R)
                keeps = False  # its rows are complete only after the whole scatter
            if any(R == r for _, _, r in gathered) and not any(rank_of_idx[ix] == R
                                                             for ix in e.iter_indices):
                # only gathered over R: each gathered element is ready once its row is read,
                # so the output is as complete over R as what the gather read
                dep = max((done[a.tensor].get(R, 0) or stream[a.tensor].get(R, 0) for a in accs),
                          default=0)
                done[e.output][R] = max(done[e.output].get(R, 0), dep)
            elif it and keeps:
                stream[e.output][R] = max(stream[e.output].get(R, 0), need)
                done[e.output][R] = max(done[e.output].get(R, 0), need)
            else:
                done[e.output][R] = max(done[e.output].get(R, 0), need)
        result[name] = per
    return result


def passes(c: Cascade) -> dict[str, int]:
    """Passes over each rank of :func:`pass_ranks` (FuseMax's definition: how many times a
    fibre of the rank is traversed before an output that depends on it can be produced)."""
    ep = einsum_passes(c)
    return {R: max((p.get(R, 0) for p in ep.values()), default=0) for R in pass_ranks(c)}


def summary(c: Cascade) -> dict:
    """Everything ``einarray check`` reports, as plain JSON-able data."""
    counts = op_counts(c)
    ep = einsum_passes(c)
    roots = pass_ranks(c)
    return {
        "name": c.name,
        "source": c.source,
        "ranks": {r: i.size for r, i in c.ranks.items()},
        "params": dict(c.params),
        "tensors": {t: {"ranks": list(i.ranks), "shape": list(i.shape), "kind": i.kind,
                        "elements": tensor_elements(c, t)} for t, i in c.tensors.items()},
        "einsums": [{"name": e.name, "expression": e.stmt.text, "reduce": e.reduce_op,
                     "reduced": list(e.reduced), "ops": counts[e.name].as_dict(),
                     "pass": {R: ep[e.name].get(R, 0) for R in roots}} for e in c.einsums],
        "totals": totals(counts),
        "intermediate_elements": sum(tensor_elements(c, t) for t, i in c.tensors.items()
                                     if i.kind == "intermediate"),
        "passes": passes(c),
        "partitions": {p: {"outer": o, "inner": i, "chunks": c.ranks[o].size, "chunk": c.ranks[i].size,
                           "last": last_chunk(c, p)} for p, (o, i) in c.partitions.items()},
    }
