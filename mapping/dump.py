"""A loaded mapping written back as a complete ``mapping:`` section.

:func:`mapping_to_data` is the inverse of :func:`mapping.loader.mapping_from_data`: every
Einsum's unit, dataflow and spatial factors and every group's members, tiles, loop order,
stages, deferrals, streamed and held inputs are spelled out, nothing is left to a default.
Loading the section again gives the same :class:`~mapping.spec.MappingSpec` (tested), so
a report that stores it reproduces its run even if a later einarray derives other
defaults.
"""

from __future__ import annotations

from typing import Any

from einsum.cascade import Cascade

from .arch import Arch
from .spec import MappingSpec

__all__ = ["mapping_to_data"]


def mapping_to_data(spec: MappingSpec, c: Cascade, arch: Arch) -> dict[str, Any]:
    """The complete ``mapping:`` section (plain data, YAML/JSON-ready) of ``spec``."""
    einsums: dict[str, Any] = {}
    for e in c.einsums:
        em = spec.einsums[e.name]
        d: dict[str, Any] = {"unit": em.unit}
        if arch.units[em.unit].is_2d and not em.free:
            d["dataflow"] = em.dataflow
            d["spatial"] = {"rows": {ix: int(f) for ix, f in em.rows},
                            "cols": {ix: int(f) for ix, f in em.cols}}
        einsums[e.name] = d
    groups = []
    for g in spec.groups:
        gd: dict[str, Any] = {
            "name": g.name,
            "einsums": list(g.einsums),
            "tiles": {g.buffer: {lp.rank: int(lp.tile) for lp in g.loops}},
            "loop_order": [lp.rank for lp in g.loops],
            "stages": [list(s) for s in g.stages],
        }
        if g.deferred:
            gd["deferred"] = {n: int(k) for n, k in g.deferred.items()}
        if g.streamed:
            gd["streamed"] = sorted(g.streamed)
        if g.hold:
            gd["hold"] = {t: g.loops[h].rank for t, h in g.hold.items()}
        groups.append(gd)
    return {"version": 1, "einsums": einsums, "groups": groups}
