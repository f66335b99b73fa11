"""Rank sizes from the shapes of input arrays, as :func:`numpy.einsum` takes them.

A cascade's ``ranks:`` section gives default sizes; arrays handed to ``einarray eval``
decide the sizes instead. Every dimension of an input names a rank; its length sets

* a base rank (``M: 128``) or a partition's part (``P0: 32``) directly,
* the rank an alias stands for (``P: M``: a K of 48 rows sets M = 48),

and everything computed from those follows when the cascade is loaded again with the
inferred sizes (``P1 = P / P0``, ``HP: "H + 2*halo"``, aliases). Sizes the user fixed
(``--rank``) win over the shapes. Two inputs that disagree about one rank, and an input
dimension whose rank is computed from others (``M: "GY*GX"``), whose size therefore
cannot be read off the array, are errors naming the arrays.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping

import numpy as np

from .cascade import Cascade
from .errors import ConfigError


def _target(c: Cascade, rank: str) -> tuple[str, list[str]]:
    """The rank whose size an input dimension of ``rank`` sets, and the alias chain."""
    chain = [rank]
    while c.ranks[rank].kind == "alias" and c.ranks[rank].of in c.ranks and rank not in chain[:-1]:
        rank = c.ranks[rank].of
        chain.append(rank)
    return rank, chain


def _where(t: str, d: int, chain: list[str], n: int) -> str:
    via = "" if len(chain) == 1 else f", an alias of {chain[-1]}"
    return f"{t} dimension {d} ({chain[0]}{via}) is {n}"


def sizes_from_shapes(c: Cascade, shapes: Mapping[str, tuple[int, ...]], *,
                      fixed: Collection[str] = (), file: str | None = None) -> dict[str, int]:
    """Rank sizes set by the shapes of the inputs (only inputs in ``shapes`` count).

    Ranks in ``fixed`` are left to the caller (the shapes are checked against them when
    the cascade is evaluated). Raises :class:`ConfigError` when an input has the wrong
    number of dimensions or two inputs disagree about a rank.
    """
    seen: dict[str, tuple[int, str]] = {}
    for t in c.inputs:
        if t not in shapes:
            continue
        info = c.tensors[t]
        shape = tuple(int(n) for n in shapes[t])
        if len(shape) != len(info.ranks):
            raise ConfigError(f"input {t!r} has {len(shape)} dimension{'s' * (len(shape) != 1)} "
                              f"{shape}, expected {len(info.ranks)} ({', '.join(info.ranks)})", file)
        for d, (r, n) in enumerate(zip(info.ranks, shape)):
            target, chain = _target(c, r)
            if target in fixed or c.ranks[target].kind == "derived":
                continue
            where = _where(t, d, chain, n)
            if target in seen and seen[target][0] != n:
                raise ConfigError(f"inputs disagree on the size of rank {target}: {seen[target][1]}, "
                                  f"but {where}", file)
            seen.setdefault(target, (n, where))
    return {r: n for r, (n, _) in seen.items()}


def check_computed_ranks(c: Cascade, shapes: Mapping[str, tuple[int, ...]], *,
                         file: str | None = None) -> None:
    """An input dimension of a rank computed from other ranks (``M: "GY*GX"``) must have
    the computed size: the shape cannot choose it."""
    for t in c.inputs:
        if t not in shapes:
            continue
        info = c.tensors[t]
        for d, (r, n) in enumerate(zip(info.ranks, shapes[t])):
            target, chain = _target(c, r)
            if c.ranks[target].kind == "derived" and int(n) != c.ranks[target].size:
                raise ConfigError(
                    f"{_where(t, d, chain, int(n))}, but rank {target} is computed from other ranks "
                    f"(its size is {c.ranks[target].size} here), so the shape cannot set it: give "
                    f"the ranks its size is computed from with --rank", file)


def fit_to_inputs(load: Callable[[Mapping[str, int]], Cascade], user: Mapping[str, int],
                  arrays: Mapping[str, Any], *, file: str | None = None) -> Cascade:
    """Load a cascade whose rank sizes follow the input arrays (``user`` sizes win).

    ``load(ranks)`` loads the cascade with rank overrides. A size the shapes imply that
    the cascade rejects (a P of 100 with chunks P0 of 32) is that error, saying which
    sizes came from the arrays.
    """
    c = load(user)
    shapes = {t: np.shape(a) for t, a in arrays.items()}
    inferred = sizes_from_shapes(c, shapes, fixed=set(user), file=file)
    changed = {r: n for r, n in inferred.items() if c.ranks[r].size != n}
    if changed:
        try:
            c = load({**inferred, **user})
        except ConfigError as exc:
            taken = ", ".join(f"{r}={n}" for r, n in sorted(changed.items()))
            raise ConfigError(f"{exc.message} (sizes taken from the input shapes in "
                              f"{file or 'the inputs'}: {taken}; --rank overrides them)",
                              exc.file, exc.line, exc.ypath) from None
    check_computed_ranks(c, shapes, file=file)
    return c
