"""Fused groups: a group's tile loop nest at the on-chip buffer, made from its entry of
``mapping.groups`` and checked (:func:`make_group`), where each member runs in that nest
(:func:`einsum_depth`, :func:`einsum_role`), and the recurrences that must stay in one group
(:func:`recurrences`). Einsums in one group are fused: their intermediates stay on chip;
tensors crossing groups spill to DRAM.

Without ``stages`` every Einsum of a group is its own stage in cascade order (no overlap
between units); without ``tiles`` the tiles are :func:`mapping.defaults._default_tiles`.

Illegal groups are :class:`~einsum.errors.ConfigError` s naming the YAML path: a rank not in
the group, tiles that do not fit the buffer, a fused consumer that needs a complete
reduction over a rank the group tiles, a stage order that reads a value before it is
produced.
"""

from __future__ import annotations

import warnings
from types import MappingProxyType
from typing import Mapping

from einsum.analysis import OpCounts
from einsum.cascade import Cascade
from einsum.errors import ConfigError, EinarrayWarning
from einsum.yamlsrc import Source, YPath

from .arch import Arch
from .defaults import _default_tiles
from .footprint import buffer_words, group_tensors, indirect_tensors, rank_related
from .spec import EinsumMap, Group, Loop

def _err(src: Source, path: YPath, msg: str) -> ConfigError:
    return src.error(path, msg)


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
