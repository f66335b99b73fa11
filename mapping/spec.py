"""Mapping specs (the ``mapping:`` section) and the :class:`Config` they make with a cascade
and an arch (loading a config file: :mod:`mapping.config`).

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

Einsums in no group get a group of their own (they spill their output to DRAM). Without
``tiles`` a group's tiles are the largest that fit the buffer (halving the largest tile
until the footprint fits; a reduced rank only after the others where splitting it would
cost the array's fill and drain, see ``_default_tiles``). Without ``stages`` every Einsum of a group is its own stage in
cascade order (no overlap between units). Spatial ranks may carry a factor
(``rows: {m: 128}``); without one the factor is the array dimension.

Default units: sums of products go to the 2-D array, everything else to the 1-D array
(when there is one). Default spatial mapping follows SCALE-Sim's assignment: OS
rows <- first output index, cols <- second output index; WS rows <- reduced index,
cols <- last output index; IS rows <- reduced index, cols <- first output index.

Illegal mappings are :class:`~einsum.errors.ConfigError` s naming the YAML path: a
unit the arch lacks or that lacks an op the Einsum needs, a rank not in the Einsum or
group, a spatial factor larger than the array, tiles that do not fit the buffer, a
fused consumer that needs a complete reduction over a rank the group tiles, a stage
order that reads a value before it is produced.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from einsum.analysis import OpCounts
from einsum.cascade import Cascade, Einsum
from einsum.errors import ConfigError, EinarrayWarning
from einsum.yamlsrc import Source, YPath

from .arch import Arch
from .footprint import buffer_words, group_tensors, indirect_tensors, rank_related

DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True)
class EinsumMap:
    name: str
    unit: str
    dataflow: str = "os"
    rows: tuple[tuple[str, int], ...] = ()  # (index, spatial factor)
    cols: tuple[tuple[str, int], ...] = ()
    free: bool = False  # no arithmetic (a relayout such as BK = K[p1*P0+p0, e], or an init)
    ypath: YPath = ()


@dataclass(frozen=True)
class Loop:
    rank: str
    tile: int
    size: int

    @property
    def index(self) -> str:
        return self.rank.lower()

    @property
    def trips(self) -> int:
        return -(-self.size // self.tile)

    def extent(self, i: int) -> int:
        return min(self.tile, self.size - i * self.tile)


@dataclass(frozen=True)
class Group:
    name: str
    einsums: tuple[str, ...]  # cascade order
    loops: tuple[Loop, ...]  # outermost first
    stages: tuple[tuple[str, ...], ...]
    deferred: Mapping[str, int]  # Einsum -> steps it runs late
    buffer: str
    ypath: YPath = ()
    streamed: frozenset[str] = frozenset()  # inputs streamed through the buffer during a step
    hold: Mapping[str, int] = field(default_factory=dict)  # input -> first loop (0-based) it is held across


@dataclass(frozen=True)
class MappingSpec:
    einsums: Mapping[str, EinsumMap]
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Config:
    cascade: Cascade
    arch: Arch
    mapping: MappingSpec
    instances: int = 1  # independent repetitions (batch x heads), outermost and serialised
    counts: Mapping[str, OpCounts] = field(default_factory=dict)
    source: str | None = None
    # where the mapping came from: "given" (a mapping: section, even a partial one),
    # "default" (derived: see einarray.default_mapping) or "searched" (einarray search)
    mapping_origin: str = "default"
    # how many of the instances are independent, so that several cores may run them at once
    # (a model's batch; its layers' repeats are blocks in sequence, heads a preset does not
    # tell apart); None: all of them (a workload's own instances)
    parallel: int | None = None


# ----------------------------------------------------------------------------------
def _err(src: Source, path: YPath, msg: str) -> ConfigError:
    return src.error(path, msg)


def is_free(e: Einsum, oc: OpCounts) -> bool:
    return e.kind == "init" or not any(v for v in oc.counts.values())


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


def default_unit(arch: Arch, e: Einsum, oc: OpCounts, *, warn: bool = False) -> str:
    """Sums of products go to the 2-D array, the rest to the 1-D array, but only to a unit
    that has every op the Einsum needs (a LayerNorm variance ``sum(x*x)/D`` needs a divide
    the 2-D array may lack); if no unit has them all, the usual choice is returned and the
    caller reports the missing op. With ``warn`` a fallback away from the usual unit is an
    :class:`~einsum.errors.EinarrayWarning` naming the Einsum, the missing ops and the unit
    it runs on instead (a sum of products on the 1-D array is slower by the ratio of the
    lane counts, e.g. 1024 / 32 on a 32 x 32 array with a 32-lane vector unit)."""
    needed = {a for a, v in oc.counts.items() if v}
    prefer = ["array2d", "array1d"] if oc.counts.get("mac") else ["array1d", "array2d"]
    units = [u for u in prefer if u in arch.units]
    for u in units:
        if needed <= set(arch.units[u].ops):
            if warn and u != units[0]:
                usual = arch.units[units[0]]
                missing = sorted(needed - set(usual.ops))
                what = "a sum of products" if oc.counts.get("mac") else "element-wise work"
                warnings.warn(
                    f"{e.name} ({what}) runs on {u} ({arch.units[u].lanes} lanes), not on {units[0]} "
                    f"({usual.lanes} lanes), because {units[0]} of arch {arch.name} lacks op"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; add "
                    f"{'them' if len(missing) > 1 else 'it'} to arch.{units[0]}.ops or set "
                    f"mapping.einsums.{e.name}.unit", EinarrayWarning, stacklevel=2)
            return u
    return units[0] if units else "array2d"


def default_spatial(e: Einsum, df: str, R: int, C: int, sizes: Mapping[str, int] | None = None):
    """SCALE-Sim's assignment generalised to any Einsum: OS rows <- first output index,
    cols <- last output index; WS rows <- reduced index, cols <- last output index; IS
    rows <- reduced index, cols <- first output index. With more than two output (or
    reduced) indices, those of extent 1 (a chunk index with a single chunk) are skipped so
    they never occupy a dimension."""
    sizes = sizes or {}
    lhs = [ix for ix in e.lhs_indices if ix != e.iter_var]
    if len(lhs) > 2:  # a GEMM (two output indices) keeps SCALE-Sim's assignment exactly
        lhs = [ix for ix in lhs if sizes.get(ix, 2) > 1] or lhs
    red = list(e.reduced)
    if len(red) > 1:
        red = [ix for ix in red if sizes.get(ix, 2) > 1] or red
    if df == "os" or not red:
        rows = lhs[:1]
        cols = lhs[-1:] if len(lhs) > 1 else []
    elif df == "ws":
        rows, cols = red[:1], lhs[-1:]
    else:
        rows, cols = red[:1], lhs[:1]
    return tuple((ix, R) for ix in rows), tuple((ix, C) for ix in cols)


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


def recurrences(c: Cascade) -> list[list[str]]:
    """Einsums that loop over an iterative rank, one list per strongly connected component
    of the dependency graph, in cascade order: the groups of
    :meth:`~einsum.cascade.Cascade.schedule` with more than one member or whose one member
    reads its own output (so mapping needs no graph library of its own)."""
    out = []
    for comp in c.schedule():
        e = c.einsum(comp[0])
        if len(comp) > 1 or e.output in e.reads:
            out.append(sorted(comp, key=lambda n: c.einsum(n).position))
    return sorted(out, key=lambda comp: c.einsum(comp[0]).position)


def _recurrence_ranks(c: Cascade, mem: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for comp in recurrences(c):
        if set(comp) <= set(mem):
            var = next(c.einsum(n).iter_var for n in comp if c.einsum(n).kind == "update")
            out.setdefault(c.rank_of_index(var).name, []).extend(comp)
    return out


def make_group(src: Source, c: Cascade, arch: Arch, emaps: Mapping[str, EinsumMap],
                counts: Mapping[str, OpCounts], name: str, mem: tuple[str, ...], g: dict, p: YPath) -> Group:
    es = [c.einsum(n) for n in mem]
    iranks: list[str] = []
    for e in es:
        for ix in e.iter_indices:
            r = c.rank_of_index(ix).name
            if r not in iranks:
                iranks.append(r)
    buf = arch.levels[1]
    ssec0 = g.get("streamed", []) or []
    if not isinstance(ssec0, list):
        raise _err(src, p + ("streamed",), "expected a list of input tensor names")
    ins0, _, _ = group_tensors(c, mem)
    for j, t in enumerate(ssec0):
        if t not in ins0:
            raise _err(src, p + ("streamed", j), f"{t!r} is not an input of group {name} (inputs: {', '.join(ins0)})")
    streamed = frozenset(ssec0)
    tsec = g.get("tiles")
    tiles: dict[str, int] = {}
    if tsec is not None:
        if not isinstance(tsec, dict):
            raise _err(src, p + ("tiles",), "expected {LEVEL: {RANK: size}}")
        for lvname, rt in tsec.items():
            lp = p + ("tiles", str(lvname))
            if lvname not in [l.name for l in arch.levels]:
                raise _err(src, lp, f"unknown memory level {lvname!r} (levels: {', '.join(l.name for l in arch.levels)})")
            if lvname == arch.levels[0].name:
                raise _err(src, lp, f"{lvname} is the backing store; tiles are given for on-chip levels")
            if not isinstance(rt, dict):
                raise _err(src, lp, "expected {RANK: tile size}")
            for r, v in rt.items():
                rp = lp + (str(r),)
                if r not in iranks:
                    raise _err(src, rp, f"{r!r} is not a rank of group {name} (ranks: {', '.join(iranks)})")
                if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    raise _err(src, rp, f"a tile size must be a positive integer, got {v!r}")
                if v > c.ranks[r].size:
                    raise _err(src, rp, f"tile {v} is larger than rank {r} ({c.ranks[r].size})")
                if lvname == buf.name:
                    tiles[r] = v
                elif v > tsec.get(buf.name, {}).get(r, c.ranks[r].size):
                    raise _err(src, rp, f"an inner-level tile ({v}) cannot exceed the {buf.name} tile of {r}")
    lo = g.get("loop_order")
    if lo is not None:
        if not isinstance(lo, list):
            raise _err(src, p + ("loop_order",), "expected a list of rank names, outermost first")
        for j, r in enumerate(lo):
            if r not in iranks:
                raise _err(src, p + ("loop_order", j), f"{r!r} is not a rank of group {name} (ranks: {', '.join(iranks)})")
        if len(set(lo)) != len(lo):
            raise _err(src, p + ("loop_order",), "a rank appears twice")
    rec = _recurrence_ranks(c, mem)
    if tsec is None:
        tiles = _default_tiles(src, c, arch, mem, iranks, p, fixed={r: 1 for r in rec}, streamed=streamed,
                               emaps=emaps, counts=counts)
    order = list(lo) if lo is not None else []
    for r in iranks:
        if r not in order and tiles.get(r, c.ranks[r].size) < c.ranks[r].size and r not in rec:
            order.append(r)
    for r in rec:
        if r not in order and c.ranks[r].size > 1:
            order.append(r)
    for r, comp in rec.items():
        if c.ranks[r].size > 1 and tiles.get(r, c.ranks[r].size) != 1:
            raise _err(src, p + ("tiles",) if tsec is not None else p,
                       f"the recurrence {', '.join(comp)} over {r.lower()} needs a tile of 1 on rank {r} "
                       f"(one iteration per step), got {tiles.get(r, c.ranks[r].size)}")
    for r in order:
        for n in mem:
            e = c.einsum(n)
            for ix in e.iter_indices:
                er = c.rank_of_index(ix).name
                if er != r and rank_related(c, er, r) and r in c.partitions and \
                        tiles.get(r, c.ranks[r].size) < c.ranks[r].size:
                    raise _err(src, p + ("loop_order",) if lo is not None else p + ("tiles",),
                               f"{n} iterates {ix} (a part of {r}); tile and loop over {er} instead of {r}")
    loops = []
    for r in order:
        t = tiles.get(r, c.ranks[r].size)
        loops.append(Loop(r, t, c.ranks[r].size))
    for i, a in enumerate(loops):
        for b in loops[i + 1:]:
            if rank_related(c, a.rank, b.rank):
                raise _err(src, p + ("loop_order",), f"ranks {a.rank} and {b.rank} traverse the same "
                           "coordinates; loop over the parts only")
    hsec = g.get("hold", {}) or {}
    if isinstance(hsec, list):
        hsec = {t: (loops[0].rank if loops else None) for t in hsec}
    if not isinstance(hsec, dict):
        raise _err(src, p + ("hold",), "expected {TENSOR: RANK} (hold the tensor across the loop over RANK "
                   "and all loops inside it) or a list of tensors (held across every loop)")
    hold: dict[str, int] = {}
    _, outs0, _ = group_tensors(c, mem)
    targets = [t for t in indirect_tensors(c, mem)[1] if t in outs0]
    for t, r in hsec.items():
        hp = p + ("hold", str(t))
        if t not in ins0 and t not in targets:
            raise _err(src, hp, f"{t!r} is not an input of group {name} (inputs: {', '.join(ins0)}"
                       + (f"; scatter targets: {', '.join(targets)}" if targets else "") + ")")
        if r is None:
            hold[t] = 0  # no loops (or null): held across every loop
            continue
        pos = [i for i, lp in enumerate(loops) if lp.rank == r]
        if not pos:
            raise _err(src, hp, f"{r!r} is not a loop of group {name} (loops: {', '.join(lp.rank for lp in loops)})")
        hold[t] = pos[0]
    ext = {lp.rank: lp.tile for lp in loops}
    need = buffer_words(c, arch, mem, ext, streamed=streamed, hold={
        t: {lp.rank for lp in loops[h:]} for t, h in hold.items()})
    cap = buf.capacity_words
    if cap is not None and need > cap and hold:
        # the hold alone overflows: re-load the tensors per step instead, and say so
        plain = buffer_words(c, arch, mem, ext, streamed=streamed)
        if plain <= cap:
            held = ", ".join(f"{t} across the loop over {loops[h].rank}" for t, h in hold.items())
            warnings.warn(str(_err(src, p + ("hold",), (
                f"holding {held} needs {need * buf.word_bits // 8} bytes in {buf.name}, which holds "
                f"{buf.capacity_bytes}; falling back to no hold: {' and '.join(hold)} are reloaded from "
                f"{arch.levels[0].name} each time the loop over "
                f"{' or '.join(dict.fromkeys(loops[h].rank for h in hold.values()))} advances "
                f"(the step then needs {plain * buf.word_bits // 8} bytes)"))),
                EinarrayWarning, stacklevel=2)
            hold, need = {}, plain
    if cap is not None and need > cap:
        raise _err(src, p + ("tiles",) if tsec is not None else p,
                   f"tiles of group {name} need {need * buf.word_bits // 8} bytes in {buf.name} "
                   f"({'double-buffered ' if buf.double_buffer else ''}inputs/outputs + intermediates) "
                   f"but it holds {buf.capacity_bytes}")

    # stages
    ssec = g.get("stages")
    if ssec is None:
        stages = tuple((n,) for n in mem)
    else:
        if not isinstance(ssec, list) or not all(isinstance(s, list) for s in ssec):
            raise _err(src, p + ("stages",), "expected a list of lists of Einsum names")
        seen: list[str] = []
        for si, s in enumerate(ssec):
            for j, n in enumerate(s):
                if n not in mem:
                    raise _err(src, p + ("stages", si, j), f"{n!r} is not in group {name}")
                if n in seen:
                    raise _err(src, p + ("stages", si, j), f"{n} appears twice")
                seen.append(n)
        missing = [n for n in mem if n not in seen]
        if missing:
            raise _err(src, p + ("stages",), f"Einsums of the group missing from stages: {', '.join(missing)}")
        stages = tuple(tuple(s) for s in ssec)
    dsec = g.get("deferred", []) or []
    if isinstance(dsec, list):
        dsec = {n: 1 for n in dsec} if all(isinstance(n, str) for n in dsec) else dsec
    if not isinstance(dsec, dict):
        raise _err(src, p + ("deferred",), "expected a list of Einsum names or {NAME: steps}")
    for n, lag in dsec.items():
        if n not in mem:
            raise _err(src, p + ("deferred", str(n)), f"{n!r} is not in group {name}")
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 1:
            raise _err(src, p + ("deferred", str(n)), f"a deferral is a number of steps >= 1, got {lag!r}")
    group = Group(name, mem, tuple(loops), stages, MappingProxyType(dict(dsec)), buf.name, p, streamed,
                  MappingProxyType(hold))
    _check_group_order(src, c, emaps, group, p)
    _check_final_reads(src, c, group, p)
    return group


def _default_tiles(src: Source, c: Cascade, arch: Arch, mem: tuple[str, ...], iranks: list[str],
                   p: YPath, fixed: Mapping[str, int], streamed: frozenset[str] = frozenset(),
                   emaps: Mapping[str, EinsumMap] | None = None,
                   counts: Mapping[str, OpCounts] | None = None) -> dict[str, int]:
    """The largest tiles that fit the buffer: halve the largest tile until the step's
    footprint fits, in the order an architect gives up reuse:

    0. any rank whose split costs no extra compute: a rank of the output, while an
       output-stationary sum of products on the 2-D array keeps its array full (the
       tile stays at least its spatial factor) and fed (the operand a step reloads, one
       output tile x K, takes no longer than the step's compute at the backing store's
       bandwidth ``bw``: row and column tiles ``>= R C / bw``); a reduced rank (K) once the output
       tile's partial sums can stay in the PEs between K tiles
       (:meth:`mapping.arch.ComputeUnit.psum_chains`), or on any other unit;
    1. a reduced rank whose K tiles each pay the array's fill and drain, while a K tile
       streams at least four times as long as the fill and drain take (``4 (R + C - 2)``
       cycles: at most 25 % overhead);
    2. anything else (tiles below the array or starved by the backing store, shorter K
       tiles).

    So K stays whole wherever a split would cost fill and drain and the output tile can
    still shrink; largest tile first within a class. A rank on the array's rows or columns
    is cut to a multiple of its spatial factor (whole folds; only the rank's last tile is
    partial), so tiling adds no folds: ``sum of ceil(tile / factor) = ceil(size / factor)``.
    """
    buf = arch.levels[1]
    cap = buf.capacity_words
    # only ranks that no partition parent/part duplicates may be tiled
    cand = [r for r in iranks if not any(rank_related(c, r, o) and o != r for o in iranks)]
    tiles = {r: c.ranks[r].size for r in cand}
    tiles.update(fixed)
    if cap is None:
        return dict(fixed)
    # never tile a rank whose complete reduction a fused consumer needs
    reduced = set()
    for n in mem:
        e = c.einsum(n)
        if len(mem) > 1:
            reduced.update(c.rank_of_index(ix).name for ix in e.reduced)
    # sums of products on a 2-D array with fill and drain: their spatial floors and K ranks
    floor: dict[str, int] = {}
    sops: list[tuple[EinsumMap, set[str]]] = []
    u2 = arch.units.get("array2d")
    for n in mem:
        em = (emaps or {}).get(n)
        if em is None or em.unit != "array2d" or not (em.rows or em.cols) or em.free:
            continue
        if counts is not None and not counts[n].counts.get("mac"):
            continue
        for ix, f in em.rows + em.cols:
            r = c.rank_of_index(ix).name
            floor[r] = max(floor.get(r, 1), f)
        if u2.fill_drain and u2.timing == "systolic" and em.dataflow == "os":
            sops.append((em, {c.rank_of_index(ix).name for ix in c.einsum(n).reduced}))

    bw = arch.levels[0].read_bw

    def ext_of(ix: str) -> int:
        return tiles.get(c.rank_of_index(ix).name, c.index_size(ix))

    def k_split_pays(r: str) -> bool:
        for em, ks in sops:
            if r in ks:
                folds = math.prod(-(-ext_of(ix) // f) for ix, f in em.rows + em.cols)
                if not u2.psum_chains(em.dataflow, folds):
                    return True
        return False

    def stays_fed(r: str, t: int) -> bool:
        """Would tile ``t`` of rank ``r`` keep every OS array it spreads over full and fed?"""
        for em, _ in sops:
            xs = []
            for ix, f in em.rows + em.cols:
                x = t if c.rank_of_index(ix).name == r else ext_of(ix)
                if c.rank_of_index(ix).name == r and x < f:
                    return False
                xs.append(x)
            if any(c.rank_of_index(ix).name == r for ix, _ in em.rows + em.cols) and \
                    min(xs) < Fraction(u2.lanes) / bw:
                return False
        return t >= floor.get(r, 1)

    def phase(r: str) -> int:
        half = -(-tiles[r] // 2)
        if any(r in ks for _, ks in sops):
            if not k_split_pays(r):
                return 0
            return 1 if half >= 4 * (u2.rows + u2.cols - 2) else 2
        return 0 if stays_fed(r, half) else 2

    while buffer_words(c, arch, mem, {r: t for r, t in tiles.items() if t < c.ranks[r].size},
                       streamed=streamed) > cap:
        options = [r for r in tiles if tiles[r] > 1 and r not in reduced and r not in fixed]
        if not options:
            raise src.error(p, f"the workload fits no mapping: even 1-element tiles of group "
                            f"{'+'.join(mem)} exceed {buf.name} ({buf.capacity_bytes} bytes)")
        r = min(options, key=lambda r: (phase(r), -tiles[r], iranks.index(r)))
        half = -(-tiles[r] // 2)
        f = floor.get(r, 1)
        # a rank spread over the array keeps whole folds: a multiple of its spatial factor
        tiles[r] = max(f, half // f * f) if half > f else half
    return {r: t for r, t in tiles.items() if t < c.ranks[r].size}


def einsum_depth(c: Cascade, g: Group, n: str) -> int:
    """Deepest loop of the group whose rank the Einsum iterates (-1: none)."""
    e = c.einsum(n)
    ranks = [c.rank_of_index(ix).name for ix in e.iter_indices]
    d = -1
    for i, lp in enumerate(g.loops):
        if any(rank_related(c, lp.rank, r) for r in ranks):
            d = i
    return d


def einsum_role(c: Cascade, g: Group, n: str) -> str:
    """'inner' (every step), 'pre' (before its inner loops) or 'post' (after them)."""
    depth = einsum_depth(c, g, n)
    if depth == len(g.loops) - 1:
        return "inner"
    e = c.einsum(n)
    deeper = {c.einsum(m).output for m in g.einsums if einsum_depth(c, g, m) > depth}
    return "post" if any(t in deeper for t in e.reads) else "pre"


def _check_group_order(src: Source, c: Cascade, emaps: Mapping[str, EinsumMap], g: Group, p: YPath) -> None:
    stage_of = {n: (si, j) for si, s in enumerate(g.stages) for j, n in enumerate(s)}
    prod = {c.einsum(n).output: [m for m in g.einsums if c.einsum(m).output == c.einsum(n).output]
            for n in g.einsums}
    looped = {lp.rank for lp in g.loops if lp.trips > 1}
    for n in g.einsums:
        e = c.einsum(n)
        role = einsum_role(c, g, n)
        for t in e.reads:
            if t not in prod:
                continue
            for m in prod[t]:
                if m == n:
                    continue
                y = c.einsum(m)
                carried = t in e.carried and y.kind == "update"
                ydepth = einsum_depth(c, g, m)
                # a consumer needing a complete reduction over a tiled rank
                for ix in y.reduced:
                    r = c.rank_of_index(ix).name
                    bad = [lp for lp in g.loops if lp.trips > 1 and rank_related(c, lp.rank, r)]
                    if bad and not carried and not (role == "post" and
                                                     einsum_depth(c, g, n) < g.loops.index(bad[0])):
                        raise _err(src, p + ("loop_order",) if g.ypath else p,
                                   f"fused pair {m} -> {n} is incompatible with the loop order: {n} needs "
                                   f"the complete reduction of {m} over {ix}, but group {g.name} tiles rank "
                                   f"{bad[0].rank} (tile {bad[0].tile} of {bad[0].size}); spill {t} to DRAM "
                                   f"(separate groups) or do not tile {bad[0].rank}")
                if einsum_role(c, g, m) == "post" and role != "post" and not carried:
                    raise _err(src, p, f"{n} reads {t}, which {m} produces only after the inner loops")
                if carried or e.kind == "init":
                    # value from the previous iteration: its producer must not be later in this step
                    if m in g.deferred and n not in g.deferred and not _before(stage_of, emaps, m, n):
                        raise _err(src, p + ("stages",), f"{n} reads the previous {t}, which the deferred "
                                   f"{m} produces later in the step; move {m} to an earlier stage")
                    continue
                ln, lm = g.deferred.get(n, 0), g.deferred.get(m, 0)
                if ln > lm:
                    continue  # the consumer runs steps after its producer
                if ln < lm:
                    raise _err(src, p + ("deferred",), f"{n} reads {t} of the same step, but its producer "
                               f"{m} is deferred by {lm} step(s); defer {n} at least as much")
                if role == "post" and einsum_role(c, g, m) != "post":
                    continue
                if not _before(stage_of, emaps, m, n):
                    raise _err(src, p + ("stages",), f"{n} reads {t} before {m} produces it: put {m} in an "
                               "earlier stage, or earlier in the same stage on the same unit")


def _check_final_reads(src: Source, c: Cascade, g: Group, p: YPath) -> None:
    """A member that iterates a rank the group loops over cannot read a recurrence's state at
    a fixed iteration other than the initial one (``RM[m,P]``, the final value): inside the
    loop that value does not exist yet. The reader needs a second pass (a later group)."""
    from einsum.expr import Num, accesses_in, indices_in

    looped = [lp for lp in g.loops if lp.trips > 1]
    updates = {c.einsum(m).output: m for m in g.einsums if c.einsum(m).kind == "update"}
    for n in g.einsums:
        e = c.einsum(n)
        mine = {c.rank_of_index(ix).name for ix in e.iter_indices}
        for acc in accesses_in(e.stmt.rhs):
            m = updates.get(acc.tensor)
            if m is None or m == n:
                continue
            r = c.rank_of_index(c.einsum(m).iter_var).name
            lp = next((lp for lp in looped if rank_related(c, lp.rank, r)
                       and any(rank_related(c, lp.rank, x) for x in mine)), None)
            if lp is None:
                continue
            ranks = c.tensors[acc.tensor].ranks
            pos = next((i for i, tr in enumerate(ranks) if rank_related(c, tr, r)), None)
            if pos is None or pos >= len(acc.subscripts):
                continue
            sub = acc.subscripts[pos]
            if indices_in(sub) or (isinstance(sub, Num) and sub.value == 0):
                continue
            raise _err(src, p + ("einsums",) if g.ypath else p,
                       f"{n} reads the final {acc.tensor} of the recurrence {m} over "
                       f"{c.einsum(m).iter_var}, but group {g.name} loops over {lp.rank} and {n} runs "
                       f"inside that loop, before the recurrence ends; put {n} in a later group "
                       f"(spilling {acc.tensor}) or do not tile {lp.rank}")


def _before(stage_of, emaps, m: str, n: str) -> bool:
    if emaps[m].free:
        return True  # a relayout view or an initial value: available from the start
    sm, sn = stage_of[m], stage_of[n]
    if sm[0] < sn[0]:
        return True
    return sm[0] == sn[0] and emaps[m].unit == emaps[n].unit and sm[1] < sn[1]
