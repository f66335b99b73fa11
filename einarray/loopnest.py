"""A mapping printed as a loop nest per memory level, in the style of Timeloop's ``map.txt``.

::

    DRAM [ Q K V AV ]
    for instance in [0:144)                        batch x heads, one after another
      group attention: BK BV QK LM RM.init RM ... AV
      GB [ Q:12608 K:12608 V:12608 AV:12608 | QK:38809 ... (words per step) ]
      for M in [0:1) tile 197
        for P1 in [0:1) tile 197
          stage 0
            array2d  QK   os   spatial-Y m:197  spatial-X p0:197  temporal e:64
            array1d  RD   deferred 1 step  lanes 256  points 197
          ...

Per level: the backing store holds the cascade's inputs and outputs and every tensor that
crosses groups; the on-chip buffer holds a group's step tiles (inputs, outputs and the
intermediates that never leave the chip; ``held`` inputs stay across the loops named), and
the innermost loops are each Einsum's spatial (rows = Y, columns = X) and temporal extents
on its unit within one step. The numbers are the mapping's, not the simulator's.
"""

from __future__ import annotations

import math
from typing import Iterable

from mapping.spec import Config, Group
from mapping.footprint import group_tensors, rank_related, tensor_footprint

__all__ = ["loop_nest"]


def _step_extents(cfg: Config, g: Group) -> dict[str, int]:
    return {lp.rank: lp.tile for lp in g.loops}


def _index_extent(cfg: Config, g: Group, ix: str) -> int:
    c = cfg.cascade
    r = c.rank_of_index(ix).name
    for lp in g.loops:
        if lp.rank == r:
            return lp.tile
    return c.index_size(ix)


def _fmt_tensors(items: Iterable[tuple[str, int]]) -> str:
    return " ".join(f"{t}:{n:,}" for t, n in items)


def loop_nest(cfg: Config, *, title: str | None = None, origin: str | None = None) -> str:
    """The mapping of ``cfg`` as text (see the module docstring)."""
    c, arch = cfg.cascade, cfg.arch
    dram, buf = arch.levels[0].name, arch.levels[1].name
    group_of = {n: g.name for g in cfg.mapping.groups for n in g.einsums}
    crossing = [t for t in c.tensors if t not in c.inputs and t not in c.outputs and any(
        group_of[e.name] != group_of[p.name] for e in c.einsums if t in e.reads
        for p in c.einsums if p.output == t)]
    lines = []
    head = title or f"mapping of {c.name} on {arch.name}"
    if origin:
        head += f" ({origin})"
    lines.append(head)
    lines.append("")
    lines.append(f"{dram} [ {' '.join(list(c.inputs) + list(c.outputs) + crossing)} ]")
    lines.append("-" * max(20, len(lines[-1])))
    ind = ""
    if cfg.instances > 1:
        lines.append(f"for instance in [0:{cfg.instances})    independent instances, one after another")
        ind = "  "
    for g in cfg.mapping.groups:
        ins, outs, inter = group_tensors(c, g.einsums)
        ext = _step_extents(cfg, g)
        held = {t: g.loops[h].rank for t, h in g.hold.items()}
        lines.append(f"{ind}group {g.name}: {' '.join(g.einsums)}")
        io = [(t, tensor_footprint(c, t, {r: x for r, x in ext.items()
                                          if not (t in held and _held_over(g, held[t], r))})) for t in ins + outs]
        kept = [(t, tensor_footprint(c, t, ext)) for t in inter]
        extra = []
        if held:
            extra.append("held: " + ", ".join(f"{t} across {r}" for t, r in held.items()))
        if g.streamed:
            extra.append("streamed: " + ", ".join(sorted(g.streamed)))
        lines.append(f"{ind}{buf} [ {_fmt_tensors(io)}" + (f" | on chip: {_fmt_tensors(kept)}" if kept else "")
                     + " ] words per step" + (f"; {'; '.join(extra)}" if extra else ""))
        depth = ind
        for lp in g.loops:
            lines.append(f"{depth}for {lp.rank} in [0:{lp.trips}) tile {lp.tile}"
                         + (f" (last {lp.extent(lp.trips - 1)})" if lp.size % lp.tile else ""))
            depth += "  "
        for si, stage in enumerate(g.stages):
            work = [n for n in stage if not cfg.mapping.einsums[n].free]
            if not work:
                continue
            lines.append(f"{depth}stage {si}")
            for n in work:
                lines.append(f"{depth}  {_einsum_line(cfg, g, n)}")
    return "\n".join(lines) + "\n"


def _held_over(g: Group, rank: str, r: str) -> bool:
    """Whether a tensor held across the loop over ``rank`` (and all loops inside it) is also
    held across the loop over ``r``."""
    pos = [i for i, lp in enumerate(g.loops) if lp.rank == rank]
    return bool(pos) and any(lp.rank == r for lp in g.loops[pos[0]:])


def _einsum_line(cfg: Config, g: Group, n: str) -> str:
    c = cfg.cascade
    e = c.einsum(n)
    em = cfg.mapping.einsums[n]
    unit = cfg.arch.units[em.unit]
    lag = g.deferred.get(n, 0)
    parts = [f"{em.unit:8s} {n:6s}"]
    if lag:
        parts.append(f"deferred {lag} step{'s' * (lag > 1)}")
    ext = {ix: _index_extent(cfg, g, ix) for ix in e.iter_indices}
    if unit.is_2d and (em.rows or em.cols) and cfg.counts[n].counts.get("mac"):
        spatial = {ix for ix, _ in em.rows + em.cols}
        parts.append(em.dataflow)
        for label, dims in (("spatial-Y", em.rows), ("spatial-X", em.cols)):
            for ix, f in dims:
                folds = -(-ext[ix] // f)
                parts.append(f"{label} {ix}:{f}" + (f" x{folds} folds" if folds > 1 else ""))
        temporal = [f"{ix}:{x}" for ix, x in ext.items() if ix not in spatial and x > 1]
        if temporal:
            parts.append("temporal " + " ".join(temporal))
    else:
        pts = math.prod(ext.values()) if ext else 1
        parts.append(f"lanes {unit.lanes}  points {pts:,}")
    return "  ".join(parts)
