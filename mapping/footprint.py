"""Footprints and buffer sizing of a fused group's tiles.

How many words of each tensor one tile step touches (:func:`tensor_footprint`, through the
ranks its subscripts relate, :func:`rank_related` / :func:`rank_extent`, affine windows
included), the rows a gathered or scattered tensor moves per step (:func:`indirect_rows`,
:func:`indirect_words`), which tensors a group keeps on chip (:func:`group_tensors`), and the
buffer words a group's tiles need (:func:`buffer_words`). The mapping checks
(:mod:`mapping.groups`), the simulator, the loop-nest printout and the search share them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from einsum.cascade import Cascade

from .arch import Arch


def rank_related(c: Cascade, a: str, b: str) -> bool:
    """Ranks a and b traverse the same coordinates (equal, or a partition pair)."""
    if a == b:
        return True
    parts = c.partitions
    return (a in parts and b in parts[a]) or (b in parts and a in parts[b])


def rank_extent(c: Cascade, rank: str, ext: Mapping[str, int]) -> int:
    """Extent of ``rank`` in a tile where looped ranks have extents ``ext``."""
    if rank in ext:
        return ext[rank]
    if rank in c.partitions:
        o, i = c.partitions[rank]
        if o in ext or i in ext:
            return rank_extent(c, o, ext) * rank_extent(c, i, ext)
    return c.ranks[rank].size


def tensor_footprint(c: Cascade, tensor: str, ext: Mapping[str, int]) -> int:
    info = c.tensors[tensor]
    n = 1
    for d, r in enumerate(info.ranks):
        e = rank_extent(c, r, ext)
        if info.iterative_dim == d:
            e = min(e + 1, info.shape[d])
        n *= e
    return n


def indirect_tensors(c: Cascade, names: tuple[str, ...]) -> tuple[dict[str, list], dict[str, list]]:
    """The group's tensors accessed through index tensors (:mod:`einsum.indexing`), each with
    its ``(Einsum, access)`` pairs: inputs of the group read only through gathers
    (``K[IDX[g, j], e]``), and the targets of its scatters (``Y[IDX[t, k], d] += ..``)."""
    from einsum import expr as E

    ins, _, _ = group_tensors(c, names)
    gathered: dict[str, list] = {}
    direct: set[str] = set()
    scattered: dict[str, list] = {}
    for n in names:
        e = c.einsum(n)
        for a in E.accesses_in(e.stmt.rhs):
            if a.tensor in ins:
                if E.gathers(a):
                    gathered.setdefault(a.tensor, []).append((n, a))
                else:
                    direct.add(a.tensor)
        if e.scatter:
            scattered.setdefault(e.output, []).append((n, e.stmt.lhs))
    return {t: v for t, v in gathered.items() if t not in direct}, scattered


def indirect_rows(c: Cascade, acc: Any, ext: Mapping[str, int],
                  sorted_dims: Mapping[str, frozenset[int]] | None = None) -> tuple[int, int]:
    """(rows, words per row) one step moves through the index-tensor subscripts of ``acc``:
    a row per point of the indices those subscripts use (``IDX[g, j]``: G x J of the tile),
    each as wide as the tile of the tensor's other dimensions. One index tensor that is
    non-decreasing along its index j (``sorted_dims``, :func:`einsum.indexing.sorted_dims`)
    repeats rows: j's n points of a tile touch at most min(n, r) rows (r: the size of its
    range), and all ``tiles`` tiles of j together at most r + tiles - 1 (r runs, each tile
    boundary splitting one); the bound is charged, spread evenly over the tiles."""
    from einsum import expr as E

    info = c.tensors[acc.tensor]
    idx: dict[str, None] = {}
    row = 1
    subs = [s for s in acc.subscripts if isinstance(s, E.Access)]
    for d, s in enumerate(acc.subscripts):
        if isinstance(s, E.Access):
            idx.update(dict.fromkeys(E.indices_in(s)))
        else:
            row *= rank_extent(c, info.ranks[d], ext)
    sizes = {ix: rank_extent(c, c.rank_of_index(ix).name, ext) for ix in idx}
    if sorted_dims and len(subs) == 1:
        g = subs[0]
        for d in sorted_dims.get(g.tensor, ()):
            s = g.subscripts[d]
            if isinstance(s, E.Index) and sum(s.name in E.indices_in(x) for x in g.subscripts) == 1:
                vr = c.tensors[g.tensor].value_range
                n, r = sizes[s.name], c.ranks[vr].size if vr is not None else 0
                if vr is not None and n:
                    # the sorted run has <= r values, each tile boundary splits at most one:
                    # <= r + tiles - 1 rows over all tiles of j, charged evenly per tile
                    tiles = -(-c.index_size(s.name) // n)
                    sizes[s.name] = min(n, r, -(-(r + tiles - 1) // tiles))
    return math.prod(sizes.values()), row


def indirect_words(c: Cascade, uses: list, ext: Mapping[str, int], access_words: int = 1,
                   sorted_dims: Mapping[str, frozenset[int]] | None = None) -> int:
    """Words one step moves for a gathered or scattered tensor (its ``(Einsum, access)``
    pairs from :func:`indirect_tensors`): per row, whole accesses of ``access_words``."""
    total = 0
    for _, acc in uses:
        rows, row = indirect_rows(c, acc, ext, sorted_dims)
        total += rows * -(-row // access_words) * access_words
    return total


def tensor_class(c: Cascade, t: str) -> str:
    return c.tensors[t].kind


def group_tensors(c: Cascade, names: tuple[str, ...], all_groups_of: Mapping[str, str] | None = None
                  ) -> tuple[list[str], list[str], list[str]]:
    """(inputs read from outside, outputs needed outside, on-chip intermediates) of a group."""
    members = set(names)
    produced = {c.einsum(n).output for n in names}
    ins: list[str] = []
    for n in names:
        for t in c.einsum(n).reads:
            if t not in produced and t not in ins:
                ins.append(t)
    outs: list[str] = []
    inter: list[str] = []
    for t in dict.fromkeys(c.einsum(n).output for n in names):
        outside = t in c.outputs or any(t in e.reads for e in c.einsums if e.name not in members)
        (outs if outside else inter).append(t)
    return ins, outs, inter


def buffer_words(c: Cascade, arch: Arch, names: tuple[str, ...], ext: Mapping[str, int],
                 level_idx: int = 1, streamed: frozenset[str] = frozenset(),
                 hold: Mapping[str, set[str]] | None = None) -> int:
    """Words needed in the buffer for one step of a group (a streamed input needs two
    array-sized chunks, double-buffered, instead of its whole tile)."""
    lv = arch.levels[level_idx]
    ins, outs, inter = group_tensors(c, names)
    gathered, scattered = indirect_tensors(c, names)
    lanes = max(u.lanes for u in arch.units.values())
    bits = 0
    for t in ins + outs:
        k = lv.buffers
        if hold and t in hold:
            fp = tensor_footprint(c, t, {r: x for r, x in ext.items() if r not in hold[t]})
        elif t in gathered or (t in outs and t in scattered):
            # the rows of a step: a gather's source (a scatter's target) stays in memory; never
            # more than its tile (rows that repeat need not be staged twice)
            fp = min(indirect_words(c, gathered.get(t, []) + scattered.get(t, []), ext),
                     tensor_footprint(c, t, ext))
        else:
            fp = tensor_footprint(c, t, ext)
        if t in streamed:
            fp = min(fp, 2 * lanes)
        bits += k * fp * arch.bits(tensor_class(c, t))
    for t in inter:
        bits += tensor_footprint(c, t, ext) * arch.bits(tensor_class(c, t))
    return -(-bits // lv.word_bits)
