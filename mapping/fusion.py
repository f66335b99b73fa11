"""Fusion on a hierarchy arch: the intermediates a cascade keeps in an on-chip level between its
Einsums (``mapping.on_chip: {TENSOR: LEVEL}``), whole or a tile at a time, and the legality of
keeping them there (:func:`on_chip`, :func:`check_tiles`). The Einsums' own nests are
:mod:`mapping.nest_mapping`'s; what fusion saves is counted by :mod:`sim.nest` (the kept tensor's
chain of levels starts at its level) and run by :mod:`sim.nest_cascade`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from einsum.cascade import Cascade
from einsum.yamlsrc import Source, YPath

from .hierarchy import Hierarchy
from .nest_mapping import NestConfig, _entry, level_words, tile_words


def on_chip(m: Any, msrc: Source, mb: YPath, casc: Cascade, arch: Hierarchy) -> dict[str, int]:
    """The cascade mapping's ``on_chip: {TENSOR: LEVEL}``: intermediates (written by one Einsum,
    read by a later one, not an output of the cascade) that stay in an on-chip level between
    the Einsums instead of going through the outermost one: fused. In a level of several
    instances each holds its part of the tensor, so the Einsums must partition it alike
    (:func:`check_tiles`). Returns tensor -> level index."""
    d, p = _entry(m, msrc, mb, "on_chip", "{TENSOR: LEVEL}")
    if d is None:
        return {}
    written = {e.output: k for k, e in enumerate(casc.einsums)}
    read = {t: [k for k, e in enumerate(casc.einsums) if t in e.reads] for t in written}
    names = [lv.name for lv in arch.levels]
    out = {}
    for t, lvl in d.items():
        if t not in written or not any(k > written[t] for k in read[t]) or t in casc.outputs:
            inter = [x for x in written if x not in casc.outputs and any(k > written[x] for k in read[x])]
            raise msrc.error(p + (str(t),), f"{t!r} is not an intermediate of the cascade (one Einsum writes it, "
                             f"a later one reads it, the cascade does not output it): {', '.join(inter) or 'none'}")
        if lvl not in names[1:]:
            raise msrc.error(p + (t,), f"expected an on-chip level ({', '.join(names[1:])}), got {lvl!r}")
        out[t] = names.index(lvl)  # a level of several instances: tiled over them (check_tiles)
    return out


def _outer(cfg: NestConfig, i: int) -> tuple[tuple[str, int, str], ...]:
    """The loops above level ``i`` of ``cfg``: (rank, factor, "" / "X" / "Y"), outermost first."""
    return tuple((r, f, d) for lm in cfg.levels[:i] for d, lst in (("", lm.temporal), ("X", lm.spatial_x),
                                                                  ("Y", lm.spatial_y)) for r, f in lst if f > 1)


def check_tiles(casc: Cascade, cfgs: list, jobs: list, rooted: Mapping[str, int], arch: Hierarchy,
                 msrc: Source, mb: YPath) -> None:
    """A tensor kept on chip may be tiled by the loops above its level (:func:`_root`): then the
    cascade runs tile by tile, each Einsum on one tile of it before the next, so every Einsum that
    writes or reads it must tile it alike (the same loops above the level), a vector-unit Einsum
    between two such tensors must see them tiled alike, and none may reduce over a tiled rank
    except by summing (a sum of products accumulates its partial sums over the tiles; a vector
    unit's max or sum would see one tile only). Every tensor kept in a level is taken as live
    while any Einsum runs: each Einsum's own tiles there plus the others' tiles must fit."""
    tiled: dict[str, tuple] = {}  # tensor -> (its loops above its level, the Einsum that set them)
    for cfg in cfgs:
        for t, i in cfg.roots.items():
            op = next(o for o in cfg.operands if o.name == t)
            loops = tuple(x for x in _outer(cfg, i) if x[0] in op.ranks)  # none: whole there
            if t in tiled and tiled[t][0] != loops:
                fmt = (lambda ls: ", ".join(f"{r} {f}" + (f" ({d})" if d else "") for r, f, d in ls) or "none")
                raise msrc.error(mb + ("einsums", cfg.einsum.name, "nest"), f"{t} stays in {arch.levels[i].name} tile "
                                 f"by tile, so every Einsum that writes or reads it must tile it alike above "
                                 f"{arch.levels[i].name}: {tiled[t][1]} has loops {fmt(tiled[t][0])}, "
                                 f"{cfg.einsum.name} has {fmt(loops)}")
            tiled.setdefault(t, (loops, cfg.einsum.name))
            spread = [(r, f) for r, f, d in _outer(cfg, i) if d]
            if spread and not loops:  # whole, yet spatial loops above spread the Einsum over instances
                raise msrc.error(mb + ("einsums", cfg.einsum.name, "nest"), f"{t} stays whole in "
                                 f"{arch.levels[i].name}, but {cfg.einsum.name} spreads over its instances by "
                                 f"{', '.join(f'{r} {f}' for r, f in spread)} above it, so each would hold a part "
                                 f"or a partial sum of it: spread {t}'s own ranks over them (tile it), alike in every "
                                 "Einsum that touches it")
    # the words each kept tensor holds in its level at a time: a SoP Einsum's tile of it, or for a
    # tensor only the vector unit touches, its words over the factors of its job's tiling
    held: dict[str, int] = {}
    for cfg in cfgs:
        for t, i in cfg.roots.items():
            held[t] = tile_words(cfg.levels, i, next(o for o in cfg.operands if o.name == t))
    for job in jobs:
        loops = next((tiled[vt.name][0] for vt in job.tensors if vt.name in tiled and tiled[vt.name][0]), ())
        for vt in job.tensors:
            if vt.name in rooted and vt.name not in held:
                ranks = set(casc.tensors[vt.name].ranks)
                held[vt.name] = -(-vt.words // math.prod(f for r, f, _ in loops if r in ranks))
    for i in sorted(set(rooted.values())):
        lv = arch.levels[i]
        here = {t: held[t] for t, j in rooted.items() if j == i and t in held}
        for cfg in cfgs:  # while an Einsum runs, every tensor kept there is (conservatively) live
            own = level_words(cfg.levels, i, cfg.operands, cfg.levels[i].keep, lv.double_buffered)
            other = sum(w for t, w in here.items() if t not in {o.name for o in cfg.operands})
            if lv.capacity_words is not None and own + other > lv.capacity_words:
                raise msrc.error(mb + ("on_chip",), f"while {cfg.einsum.name} runs, {lv.name} holds its own tiles "
                                 f"({own} words) and the other tensors kept there "
                                 f"({', '.join(t for t in here if t not in {o.name for o in cfg.operands})}: "
                                 f"{other} words): more than its capacity of {lv.capacity_words}")
        if jobs and lv.capacity_words is not None and sum(here.values()) > lv.capacity_words:
            raise msrc.error(mb + ("on_chip",), f"the tensors kept in {lv.name} ({', '.join(here)}) hold "
                             f"{sum(here.values())} words at a time, more than its capacity of {lv.capacity_words}")
    for job in jobs:
        e = casc.einsum(job.einsum)
        units = arch.levels[arch.vector.level].instances
        for vt in job.tensors:
            if rooted.get(vt.name) == arch.vector.level and units > 1 and vt.name in tiled:
                n = math.prod(f for _, f, d in tiled[vt.name][0] if d)
                if n != units:
                    raise msrc.error(mb + ("on_chip", vt.name), f"{e.name} runs on the vector unit's {units} "
                                     f"instances, each on its part, but {vt.name} is spread over {n} of them: "
                                     f"spread it over all {units}")
        seen = {tiled[vt.name][0] for vt in job.tensors if vt.name in tiled and tiled[vt.name][0]}
        if len(seen) > 1:
            raise msrc.error(mb + ("on_chip",), f"{e.name} runs on the vector unit between on-chip tensors tiled "
                             f"differently ({', '.join(vt.name for vt in job.tensors if vt.name in tiled)}): tile "
                             "them alike")
        red = {ix.upper() for ix in e.reduced}
        split = sorted({r for ls in seen for r, _, _ in ls} & red)
        if split:
            raise msrc.error(mb + ("on_chip",), f"{e.name} ({e.reduce_op or 'sum'} over {', '.join(split)}) runs on the "
                             f"vector unit, which would see one tile of {', '.join(split)} at a time: tile only "
                             "ranks it does not reduce")
