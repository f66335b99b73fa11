"""Loading a ``mapping:`` section into a :class:`~mapping.spec.MappingSpec`
(:func:`mapping_from_data`; a whole config file: :mod:`mapping.config`).

A mapping says, per Einsum, which unit runs it and how it is spread over the array,
and, per *fused group* of Einsums, the tile loop nest at the on-chip buffer::

    mapping:
      version: 1
      einsums:
        QK: {unit: array2d, dataflow: os, spatial: {rows: [m], cols: [p0]}}
        RM: {unit: array1d}
      groups:                       # Einsums in one group are fused: their intermediates
        - name: attention           # stay on chip; tensors crossing groups spill to DRAM
          einsums: [QK, LM, RM, ...]
          tiles: {GB: {M: 256, P1: 1}}       # tile size per rank at the buffer level
          loop_order: [M, P1]                # outermost first
          stages: [[QK, LM, RD, RNV], [RM], [SLN, SLD, PRM, SPD], [SLNV, SPNV]]
          deferred: [RD, RNV, AV]            # run one step later (software pipelining)

Einsums in no group get a group of their own (they spill their output to DRAM). Spatial
ranks may carry a factor (``rows: {m: 128}``); without one the factor is the array
dimension. What the section leaves out comes from :mod:`mapping.defaults`; each group is
made and checked by :mod:`mapping.groups`.

Illegal mappings are :class:`~einsum.errors.ConfigError` s naming the YAML path: a
unit the arch lacks or that lacks an op the Einsum needs, a rank not in the Einsum, a
spatial factor larger than the array (and the illegal groups of :mod:`mapping.groups`).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Mapping

from einsum.analysis import OpCounts
from einsum.cascade import Cascade, Einsum
from einsum.yamlsrc import Source, YPath

from .arch import Arch
from .defaults import default_spatial, default_unit
from .footprint import group_tensors
from .groups import _err, make_group, recurrences
from .spec import DATAFLOWS, EinsumMap, MappingSpec, is_free

def _index_list(src: Source, v: Any, path: YPath, e: Einsum, unit_dim: int, dim_name: str
                ) -> tuple[tuple[str, int], ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    items: list[tuple[Any, Any]]
    if isinstance(v, list):
        items = [(x, None) for x in v]
    elif isinstance(v, dict):
        items = list(v.items())
    else:
        raise _err(src, path, f"expected a list of indices or a mapping index: factor, got {v!r}")
    out = []
    for j, (ix, f) in enumerate(items):
        p = path + ((j,) if isinstance(v, list) else (str(ix),))
        if not isinstance(ix, str) or ix not in e.iter_indices:
            raise _err(src, p, f"{ix!r} is not a rank of {e.name} (ranks: {', '.join(e.iter_indices)})")
        if f is None:
            f = unit_dim
        if isinstance(f, bool) or not isinstance(f, int) or f <= 0:
            raise _err(src, p, f"spatial factor must be a positive integer, got {f!r}")
        if f > unit_dim:
            raise _err(src, p, f"spatial factor {f} is larger than the array's {unit_dim} {dim_name}")
        out.append((ix, f))
    prod = math.prod(f for _, f in out)
    if prod > unit_dim:
        raise _err(src, path, f"spatial factors multiply to {prod}, more than the array's {unit_dim} {dim_name}")
    return tuple(out)


def mapping_from_data(sec: Any, src: Source, base: YPath, c: Cascade, arch: Arch,
                      counts: Mapping[str, OpCounts]) -> MappingSpec:
    sec = {} if sec is None else sec
    if not isinstance(sec, dict):
        raise _err(src, base, "expected a mapping section with einsums and/or groups")
    for k in sec:
        if k not in ("version", "einsums", "groups", "description"):
            raise _err(src, base + (str(k),), f"unknown key {k!r} (allowed: version, einsums, groups, description)")
    if sec.get("version", 1) != 1:
        raise _err(src, base + ("version",), f"unsupported version {sec.get('version')!r} (this einarray reads 1)")
    esec = sec.get("einsums", {}) or {}
    if not isinstance(esec, dict):
        raise _err(src, base + ("einsums",), "expected a mapping of Einsum name to its mapping")
    names = [e.name for e in c.einsums]
    for k in esec:
        if k not in names:
            raise _err(src, base + ("einsums", str(k)), f"{k!r} is not an Einsum of {c.name} "
                       f"(Einsums: {', '.join(names)})")
    emaps: dict[str, EinsumMap] = {}
    for e in c.einsums:
        oc = counts[e.name]
        p = base + ("einsums", e.name)
        d = esec.get(e.name, {}) or {}
        if not isinstance(d, dict):
            raise _err(src, p, "expected a mapping with unit, dataflow, spatial")
        for k in d:
            if k not in ("unit", "dataflow", "spatial"):
                raise _err(src, p + (str(k),), f"unknown key {k!r} (allowed: unit, dataflow, spatial)")
        free = is_free(e, oc)
        unit = d["unit"] if "unit" in d else default_unit(arch, e, oc, warn=not free)
        if unit not in arch.units:
            raise _err(src, p + ("unit",), f"unknown unit {unit!r} (this arch has: {', '.join(arch.units)})")
        u = arch.units[unit]
        if not free:
            for a, v in oc.counts.items():
                if v and a not in u.ops:
                    if "unit" not in d:  # the default: no unit of the arch has every op
                        have = "; ".join(f"{k} has {', '.join(x.ops)}" for k, x in arch.units.items())
                        raise arch.error((), f"no unit of arch {arch.name} can run {e.name} "
                                         f"(mapping {'.'.join(map(str, p))}): it needs op {a!r} ({have})")
                    raise _err(src, p + ("unit",), f"{unit} cannot run {e.name}: it needs op {a!r} "
                               f"(the unit supports: {', '.join(u.ops)})")
                if v and a not in arch.energy.get(unit, {}):
                    raise arch.error(("energy", unit), f"energy table has no {a!r} action for {unit}, "
                                     f"which {e.name} uses (mapping {'.'.join(map(str, p))})")
        df = d.get("dataflow", "os")
        if df not in DATAFLOWS:
            raise _err(src, p + ("dataflow",), f"unknown dataflow {df!r} (expected one of os, ws, is)")
        sp = d.get("spatial")
        if sp is not None and not u.is_2d:
            raise _err(src, p + ("spatial",), f"spatial rows/cols apply to the 2-D array, not {unit}")
        if u.is_2d:
            if sp is None:
                rows, cols = default_spatial(e, df, u.rows, u.cols, {ix: c.index_size(ix) for ix in e.iter_indices})
            else:
                if not isinstance(sp, dict):
                    raise _err(src, p + ("spatial",), "expected {rows: [...], cols: [...]}")
                for k in sp:
                    if k not in ("rows", "cols"):
                        raise _err(src, p + ("spatial", str(k)), f"unknown key {k!r} (allowed: rows, cols)")
                rows = _index_list(src, sp.get("rows"), p + ("spatial", "rows"), e, u.rows, "rows")
                cols = _index_list(src, sp.get("cols"), p + ("spatial", "cols"), e, u.cols, "columns")
                both = {ix for ix, _ in rows} & {ix for ix, _ in cols}
                if both:
                    raise _err(src, p + ("spatial",), f"{sorted(both)[0]!r} is mapped to both rows and cols")
        else:
            rows, cols = (), ()
        emaps[e.name] = EinsumMap(e.name, unit, df, rows, cols, free, p)

    # groups
    gsec = sec.get("groups", []) or []
    if not isinstance(gsec, list):
        raise _err(src, base + ("groups",), "expected a list of fused groups")
    placed: dict[str, int] = {}
    raw_groups: list[tuple[str, list[str], dict, YPath]] = []
    for gi, g in enumerate(gsec):
        p = base + ("groups", gi)
        if not isinstance(g, dict):
            raise _err(src, p, "expected a group with name, einsums, tiles, loop_order, stages, deferred")
        for k in g:
            if k not in ("name", "einsums", "tiles", "loop_order", "stages", "deferred", "streamed", "hold"):
                raise _err(src, p + (str(k),), f"unknown key {k!r} (allowed: name, einsums, tiles, "
                           "loop_order, stages, deferred, streamed, hold)")
        mem = g.get("einsums")
        if mem == "rest":
            mem = [n for n in names if n not in placed and not any(
                n in (x.get("einsums") or []) for x in gsec[gi + 1:] if isinstance(x, dict)
                and isinstance(x.get("einsums"), list))]
        if not isinstance(mem, list) or not mem:
            raise _err(src, p + ("einsums",), "expected a non-empty list of Einsum names (or 'rest')")
        for j, n in enumerate(mem):
            if n not in names:
                raise _err(src, p + ("einsums", j), f"{n!r} is not an Einsum of {c.name} (Einsums: {', '.join(names)})")
            if n in placed:
                raise _err(src, p + ("einsums", j), f"{n} is already in group {placed[n]}")
            placed[n] = gi
        raw_groups.append((str(g.get("name", f"g{gi}")), sorted(mem, key=names.index), g, p))
    # Einsums in no group: a group per recurrence (its strongly connected component),
    # otherwise a group of one, in cascade order
    sccs = recurrences(c)
    scc_of = {n: comp for comp in sccs for n in comp}
    for comp in sccs:
        gis = {placed.get(n) for n in comp}
        if len(gis) > 1:
            n0 = next(n for n in comp if n in placed)
            raise _err(src, raw_groups[placed[n0]][3] + ("einsums",),
                       f"the recurrence {', '.join(comp)} must be in one group (a recurrence cannot spill "
                       "between its iterations)")
    groups_all: list[tuple[str, list[str], dict, YPath]] = []
    used = set()
    for n in names:
        if n in used:
            continue
        if n in placed:
            rg = raw_groups[placed[n]]
            groups_all.append(rg)
            used.update(rg[1])
        elif n in scc_of:
            mem = sorted(scc_of[n], key=names.index)
            groups_all.append(("+".join(mem), mem, {}, base))
            used.update(mem)
        else:
            groups_all.append((n, [n], {}, base))
            used.add(n)
    groups = tuple(make_group(src, c, arch, emaps, counts, name, tuple(mem), g, p)
                   for name, mem, g, p in groups_all)
    # group order must respect dependencies (a group reads only earlier groups' outputs)
    done: set[str] = set(c.inputs)
    for g in groups:
        ins, outs, inter = group_tensors(c, g.einsums)
        for t in ins:
            if t not in done:
                raise _err(src, g.ypath or base, f"group {g.name} reads {t} before the group producing it runs; "
                           "put producer and consumer in one group or reorder")
        done.update(outs)
        done.update(inter)
    return MappingSpec(MappingProxyType(emaps), groups)
