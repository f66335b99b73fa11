"""Ragged partitions: ``partitions: {P: [P1, P0]}`` with P not a multiple of P0.

Semantics
---------
A partition names every ``p`` in ``0 .. P-1`` by the pair ``(p1, p0)`` with
``p = p1 * P0 + p0``. When P0 does not divide P there are ``P1 = ceil(P / P0)``
chunks and the last one is partial: it holds ``r = P - (P1 - 1) * P0`` elements. The
pairs with ``p1 * P0 + p0 >= P`` name no element. Every Einsum whose iteration space
holds both indices of a ragged pair iterates only the pairs that name an element, as if
it carried the filter ``where p1 * P0 + p0 < P``:

* a reduction over ``p0`` in the last chunk reduces its ``r`` elements (a max over
  fewer keys, a sum of fewer terms), never padding;
* a tensor with both dimensions (``BK[p1, p0, e]``) is stored padded to ``P1 x P0``;
  its padding holds 0 and is never read by a computation that counts (every reader
  that iterates the pair skips it; a subscript such as ``K[p1*P0 + p0, e]`` is never
  evaluated there, so it cannot run past K's end);
* recurrences over ``p1`` run ``P1`` steps, the last over the partial chunk.

So the reference (:mod:`einsum.interp`), the operation counts (:mod:`einsum.analysis`)
and the simulator's tile costs count exactly the ``P`` elements, not ``P1 * P0``. A
partition that divides is the special case ``r = P0`` (no mask, nothing changes).

An index over an alias of the chunk rank (``P0: M0`` in chunkwise retention: a key
inside the query's chunk) pairs with the chunk index the same way.

Counting
--------
The pairs of a box ``p1 in [a0, a1)``, ``p0 in [b0, b1)`` that name an element: every
chunk but the last is whole, so ``|[a0, a1) cap [0, P1-1)| * (b1 - b0)`` plus, when the
box holds the last chunk, ``max(0, min(b1, r) - b0)``. :func:`pair_points` is this
closed form; the tests check it against brute-force enumeration.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .cascade import Cascade


def ragged_pairs(c: Cascade) -> dict[str, tuple[str, str]]:
    """Partitions whose inner part does not divide the parent: parent -> (outer, inner)."""
    out = {}
    for parent, (o, i) in c.partitions.items():
        if c.ranks[o].size * c.ranks[i].size != c.ranks[parent].size:
            out[parent] = (o, i)
    return out


def last_chunk(c: Cascade, parent: str) -> int:
    """Elements in the last chunk of a partition of ``parent`` (its inner size when it divides)."""
    o, i = c.partitions[parent]
    n, inner = c.ranks[parent].size, c.ranks[i].size
    return n - (c.ranks[o].size - 1) * inner if n else 0


def masked_pairs(c: Cascade, indices: Iterable[str]) -> list[tuple[str, str, str]]:
    """The ragged pairs an iteration space over ``indices`` holds: (parent, outer index,
    inner index) for every ragged partition with its outer index and an index of its
    inner rank, or of an alias of it (``P0: M0``, a second index over the same chunk),
    in ``indices``."""
    have = list(dict.fromkeys(indices))
    out = []
    for parent, (o, i) in ragged_pairs(c).items():
        oi = c.ranks[o].index
        if oi not in have:
            continue
        for ix in have:
            if ix != oi and is_chunk_rank(c, c.rank_of_index(ix).name, i):
                out.append((parent, oi, ix))
    return out


def is_chunk_rank(c: Cascade, rank: str, inner: str) -> bool:
    """Is ``rank`` the chunk rank ``inner`` or an alias of it (transitively)?"""
    seen = set()
    while rank not in seen:
        if rank == inner:
            return True
        seen.add(rank)
        info = c.ranks[rank]
        if info.kind != "alias":
            return False
        rank = info.of
    return False


def pair_points(n: int, outer: int, inner: int, a: tuple[int, int], b: tuple[int, int]) -> int:
    """Pairs (p1, p0) in ``[a0, a1) x [b0, b1)`` with ``p1 * inner + p0 < n``, for a
    partition of ``n`` into ``outer = ceil(n / inner)`` chunks (see the module docstring)."""
    a0, a1 = max(a[0], 0), min(a[1], outer)
    b0, b1 = max(b[0], 0), min(b[1], inner)
    if a1 <= a0 or b1 <= b0 or n <= 0:
        return 0
    r = n - (outer - 1) * inner
    whole = max(0, min(a1, outer - 1) - a0)
    pts = whole * (b1 - b0)
    if a1 == outer:
        pts += max(0, min(b1, r) - b0)
    return pts


def chunk_points(c: Cascade, parent: str, a: tuple[int, int],
                 inner: list[tuple[int, int]]) -> int:
    """Points of chunks ``[a0, a1)`` of a ragged partition of ``parent`` times index ranges
    over the chunk (one range per index over the chunk rank or an alias of it): whole
    chunks contribute every point, the last chunk only the points below its length."""
    o, i = c.partitions[parent]
    n, outer, size = c.ranks[parent].size, c.ranks[o].size, c.ranks[i].size
    a0, a1 = max(a[0], 0), min(a[1], outer)
    if a1 <= a0 or n <= 0:
        return 0
    r = n - (outer - 1) * size
    whole = max(0, min(a1, outer - 1) - a0)
    full = last = 1
    for b0, b1 in inner:
        b0, b1 = max(b0, 0), min(b1, size)
        full *= max(0, b1 - b0)
        last *= max(0, min(b1, r) - b0)
    return whole * full + (last if a1 == outer else 0)


def space_points(c: Cascade, indices: Iterable[str],
                 ranges: Mapping[str, tuple[int, int]] | None = None) -> int:
    """Points of the iteration space over ``indices`` that name elements: the product of
    the index extents, with each ragged pair's ``outer x inner`` replaced by the pairs
    that name an element. ``ranges`` restricts indices to ``[lo, hi)`` (a tile); an
    index not in it spans its whole rank."""
    idx = list(dict.fromkeys(indices))
    rng = dict(ranges or {})

    def span(ix: str) -> tuple[int, int]:
        return rng.get(ix, (0, c.index_size(ix)))

    pts = 1
    paired: set[str] = set()
    chunks: dict[tuple[str, str], list[str]] = {}
    for parent, oi, ii in masked_pairs(c, idx):
        chunks.setdefault((parent, oi), []).append(ii)
    for (parent, oi), inners in chunks.items():
        pts *= chunk_points(c, parent, span(oi), [span(ii) for ii in inners])
        paired.update([oi, *inners])
    for ix in idx:
        if ix not in paired:
            lo, hi = span(ix)
            pts *= max(0, hi - lo)
    return pts


def tensor_elements(c: Cascade, tensor: str) -> int:
    """Elements of a tensor that name data: its padded size less the padding of every
    ragged partition among its dimensions (a chunk dimension, or a dimension over an alias
    of the chunk rank, next to the chunk-index dimension). A recurrence's iterative
    dimension holds a state per chunk boundary: every slot is data."""
    info = c.tensors[tensor]
    used: set[int] = set()
    n = 1
    for parent, (o, i) in ragged_pairs(c).items():
        if o not in info.ranks or info.ranks.index(o) == info.iterative_dim:
            continue
        dims = [d for d, r in enumerate(info.ranks)
                if d != info.iterative_dim and r != o and is_chunk_rank(c, r, i)]
        if not dims:
            continue
        n *= chunk_points(c, parent, (0, c.ranks[o].size), [(0, info.shape[d]) for d in dims])
        used.update([info.ranks.index(o), *dims])
    for d, s in enumerate(info.shape):
        if d not in used:
            n *= s
    return n
