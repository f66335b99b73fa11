"""The default mapping: fused where fusing pays, placed where the data already is.

A config without a ``mapping:`` section gets a mapping derived here, not the naive one of
:mod:`mapping.loader` (one group per Einsum, so every intermediate goes through the backing
store). The derivation is deterministic, costs a dozen group simulations, and always
returns a mapping that :func:`mapping.loader.mapping_from_data` accepts.

The candidates
--------------
1. **Unfused**: one group per Einsum (per recurrence), sums of products on the 2-D array,
   the rest on the 1-D array, SCALE-Sim's spatial assignment, the largest tiles that fit.
2. **Fused**: the whole cascade as one group (when the cascade can be one group: the
   search's segment over every atom, :mod:`einarray.search.space`), the largest tiles that fit
   the on-chip buffer, each stage layout (``pipelined``, ``asap``, ``serial``), inputs
   held in the buffer across loops or not, and each of two placements:

   * *by kind*: sums of products on the 2-D array, everything else on the 1-D array;
   * *data-following* (FuseMax's binding, MICRO 2024 Sec. V): an element-wise or
     reduction Einsum runs on the 2-D array when it reads a tensor that a 2-D Einsum of
     the group left *resident* in the PEs and its iteration space covers that tensor's
     spatial ranks, so no operand crosses the array edge. A tensor is resident when it is
     the output of an output-stationary sum of products (its spatial ranks: the ranks of
     the indices on rows and columns), or of a 2-D element-wise Einsum whose output keeps
     both spatial ranks of a resident operand. Resident means each fold of the step's tile
     stays in the PEs until its consumers have run: the tile has no folds (the group's tiles
     of both spatial ranks are at most their spatial factors), or no member of the group
     reduces over a folded rank (then consumers run fold by fold, as FuseMax's four
     256-row passes over one K/V chunk do); otherwise the tensor streams through the
     buffer and its consumers stay on the 1-D array. A sum of products that reads a resident
     operand keeps it stationary (``is``/``ws`` with its spatial ranks on rows and
     columns), so only the other operand streams through the array. Members of a recurrence stay where their
     kind puts them (their running state lives in one unit). For the 1-pass attention cascade this
     gives exactly FuseMax's assignment: QK, LM, SLN, SLD, SLNV on the 2-D array; RM,
     PRM, SPD, RD, SPNV, RNV, AV on the 1-D array.

If the whole cascade cannot be one group, the fused candidate is the greedy left-to-right
cut into the longest segments that have a legal candidate. Every candidate is simulated in
full (:func:`sim.results.simulate`), and the one with the fewest cycles wins (ties: less
energy, then the earlier candidate in the order above). The result records which candidate
won and how many were tried, and every report says so (``mapping: default``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping

from einsum.errors import ConfigError
from einsum.memo import WarningMemo
from einsum.expr import accesses_in
from einsum.yamlsrc import Source
from mapping.dump import mapping_to_data
from mapping.groups import recurrences
from mapping.loader import mapping_from_data
from mapping.spec import Config, is_free

__all__ = ["DefaultChoice", "derive_default", "describe", "mapping_policy"]

PLACEMENTS = ("by-kind", "data-following")
_SRC = Source("<default mapping>")


@dataclass(frozen=True)
class DefaultChoice:
    """Which default won: ``policy`` is ``unfused``, ``fused`` (whole cascade in one
    group) or ``fused-segments`` (the greedy cut); ``placement`` and ``stages`` name the
    fused candidate's choices; ``candidates`` how many legal mappings were simulated."""

    policy: str
    placement: str | None
    stages: str | None
    candidates: int
    groups: int
    cycles: int
    unfused_cycles: int

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "placement": self.placement, "stages": self.stages,
                "candidates": self.candidates, "groups": self.groups, "cycles": self.cycles,
                "unfused_cycles": self.unfused_cycles}


def describe(choice: Mapping[str, Any] | None) -> str:
    """One line for reports, e.g. ``fused (1 group), data-following placement, pipelined stages``."""
    if not choice:
        return ""
    if choice["policy"] == "unfused":
        return "unfused (one group per Einsum)"
    g = choice["groups"]
    return (f"{'fused' if choice['policy'] == 'fused' else 'fused segments'} ({g} group{'s' * (g != 1)}), "
            f"{choice['placement']} placement, {choice['stages']} stages")


def mapping_policy(origin: str, choice: Mapping[str, Any] | None) -> str:
    """One line saying which mapping ran: ``given`` or ``searched`` as such; for a default,
    the candidate that won (:func:`describe`), or that there was nothing to fuse."""
    if origin != "default":
        return origin
    return describe(choice) or "single Einsum (nothing to fuse)"


def _resident_units(s, members: tuple[str, ...], base: Mapping[str, dict], g: Mapping[str, Any]
                    ) -> dict[str, dict]:
    """The data-following placement of ``members`` in group ``g`` (see the module docstring)."""
    c, arch = s.c, s.arch
    tiles = dict((g.get("tiles") or {}).get(s.buf.name, {}))

    reduced = {c.rank_of_index(ix).name for n in members for ix in c.einsum(n).reduced}

    def fits(sp: Mapping[str, Any]) -> bool:
        """Each fold of the step's output tile stays in the PEs until its consumers ran: no
        folds, or no member of the group reduces over a folded rank (a consumer of such a
        reduction would need every fold at once)."""
        folded = {c.rank_of_index(ix).name for part in ("rows", "cols") for ix, f in (sp.get(part) or {}).items()
                  if tiles.get(c.rank_of_index(ix).name, c.index_size(ix)) > f}
        return not (folded & reduced)

    two_d = next((u for u, unit in arch.units.items() if unit.is_2d), None)
    out = dict(base)
    if two_d is None:
        return out
    unit2 = arch.units[two_d]
    resident: dict[str, frozenset[str]] = {}  # tensor -> its ranks held in the PEs
    in_recurrence = {n for comp in recurrences(c) for n in comp}
    for n in members:
        if s.free[n]:
            continue
        e, oc = c.einsum(n), s.counts[n]
        sec = out.get(n)
        if sec is None:
            continue
        out_ranks = {c.rank_of_index(ix).name for ix in e.lhs_indices}
        if oc.counts.get("mac"):
            # a sum of products keeps a resident operand stationary where it lies
            stat = next(((t, resident[t]) for t in e.reads if t in resident), None)
            if stat is not None and sec["unit"] == two_d:
                t, ranks = stat
                ops = [acc.tensor for acc in accesses_in(e.stmt.rhs)]
                df = "is" if ops and ops[0] == t else "ws"
                for opt, _ in s.map_options[n]:
                    sp = opt.get("spatial") or {}
                    placed = [c.rank_of_index(ix).name for part in ("rows", "cols") for ix in (sp.get(part) or {})]
                    if opt.get("dataflow") == df and set(placed) == ranks and len(placed) == 2:
                        out[n] = sec = dict(opt)
                        break
            if sec["unit"] == two_d and sec.get("dataflow", "os") == "os":
                sp = sec.get("spatial") or {}
                ranks = {c.rank_of_index(ix).name for part in ("rows", "cols") for ix in (sp.get(part) or {})}
                if len(ranks) == 2 and ranks <= out_ranks and fits(sp):
                    resident[e.output] = frozenset(ranks)
            continue
        needed = {a for a, v in oc.counts.items() if v}
        if n in in_recurrence:  # its state lives on one unit; the 1-D array carries it
            continue
        if not (needed <= set(unit2.ops) and needed <= set(arch.energy.get(two_d, {}))):
            continue
        iter_ranks = {c.rank_of_index(ix).name for ix in e.iter_indices}
        src_ranks = next((resident[t] for t in e.reads if t in resident and resident[t] <= iter_ranks), None)
        if src_ranks is None:
            continue
        opts = [v for v in s.map_options[n] if v[0]["unit"] == two_d]
        if not opts:
            continue
        out[n] = dict(opts[0][0])
        if src_ranks <= out_ranks:
            resident[e.output] = src_ranks
    return out


STAGE_LAYOUTS = ("balanced", "pipelined", "asap", "serial")


def _balanced_stages(s, members: tuple[str, ...], units: Mapping[str, str]
                     ) -> tuple[list[list[str]], list[str]]:
    """FuseMax's stage layout, derived: the second unit's Einsums that wait (directly or
    through one another) for head-unit work of a later stage are deferred one step, so
    they overlap the next step's first stage; the others run as late as their consumers
    allow, beside the head unit's work of the same stage (see the module docstring)."""
    c = s.c
    prod: dict[str, list[str]] = {}
    for n in members:
        prod.setdefault(c.einsum(n).output, []).append(n)
    work = [n for n in members if not s.free[n]]

    def producers(n: str) -> list[str]:
        e = c.einsum(n)
        return [m for t in e.reads for m in prod.get(t, [])
                if m != n and not s.free[m] and not (t in e.carried and c.einsum(m).kind == "update")]

    head = units[work[0]] if work else None
    level: dict[str, int] = {}
    for n in work:  # as soon as possible
        level[n] = max((level[m] + (units[m] != units[n]) for m in producers(n)), default=0)
    deferred: set[str] = set()
    for n in work:
        if units[n] != head and any((units[m] == head and level[m] > 0) or m in deferred
                                    for m in producers(n)):
            deferred.add(n)
    for n in deferred:
        level[n] = 0
    for n in work:  # recompute without the deferred Einsums' constraints
        if n not in deferred:
            level[n] = max((level[m] + (units[m] != units[n]) for m in producers(n) if m not in deferred),
                           default=0)
    last = max((level[n] for n in work if n not in deferred), default=0)
    consumers = {n: [m for m in work if n in producers(m) and m not in deferred] for n in work}
    for n in reversed(work):  # the second unit as late as possible
        if units[n] == head or n in deferred:
            continue
        latest = min((level[m] - (units[m] != units[n]) for m in consumers[n]), default=last)
        level[n] = max(level[n], latest)
    for n in members:
        if s.free[n]:
            level[n] = 0
    used = sorted(set(level.values()))
    stages = [[n for n in members if level[n] == k] for k in used]
    return stages, [n for n in members if n in deferred]


Key = tuple[str, str, bool]  # (placement, stage layout, hold inputs)


def _fused_candidates(s, seg) -> dict[Key, tuple[dict, dict]]:
    """The legal fused candidates ``{(placement, stages, hold): (einsums, group)}`` of a segment."""
    base_choice = next(iter(s._start_points(seg)))
    dims = {d.key: k for k, d in enumerate(seg.dims)}
    out: dict[Key, tuple[dict, dict]] = {}
    seen = set()
    for placement in PLACEMENTS:
        for stages in STAGE_LAYOUTS:
            for hold in (True, False):
                ch = list(base_choice)
                if ("stages",) in dims:
                    ch[dims[("stages",)]] = seg.dims[dims[("stages",)]].values.index(
                        "pipelined" if stages == "balanced" else stages)
                elif stages != "serial":
                    continue
                if ("hold",) in dims:
                    ch[dims[("hold",)]] = seg.dims[dims[("hold",)]].values.index(hold)
                elif not hold:
                    continue
                einsums, g = s.emit(seg, tuple(s._fit_tiles(seg, ch)))
                if placement == "data-following":
                    placed = _resident_units(s, seg.members, einsums, g)
                    if placed == einsums:
                        continue
                    einsums = placed
                if ("stages",) in dims and stages != "serial":
                    units = {n: (einsums[n]["unit"] if n in einsums else s.free_map[n].unit)
                             for n in seg.members}
                    if stages == "balanced":
                        st, dfr = _balanced_stages(s, seg.members, units)
                    else:
                        st, dfr = s._stages(seg.members, units, stages == "pipelined")
                    g = {k: v for k, v in g.items() if k not in ("stages", "deferred")}
                    g["stages"] = st
                    if dfr:
                        g["deferred"] = dfr
                key = json.dumps([einsums, g], sort_keys=True)
                if key in seen or s.evaluate(seg, einsums, g) is None:
                    continue
                seen.add(key)
                out[(placement, stages, hold)] = (einsums, g)
    return out


def _plan(s) -> list[dict[Key, tuple[dict, dict]]] | None:
    """The whole cascade as one segment, else the greedy cut into the longest legal segments
    (None when some atom has no legal fused candidate at all)."""
    segs = s._segments(s.cons)
    n = len(s.atoms)
    plan = []
    i = 0
    while i < n:
        for j in range(n, i, -1):
            seg = segs.get((i, j))
            if seg is None or seg.empty_reason is not None:
                continue
            cands = _fused_candidates(s, seg)
            if cands:
                plan.append(cands)
                i = j
                break
        else:
            return None
    return plan


def derive_default(cfg: Config) -> tuple[Config, DefaultChoice | None]:
    """``cfg`` with the derived default mapping, and which candidate won; ``cfg`` unchanged
    (and None) when its mapping was given or searched, or when at most one of the cascade's
    Einsums computes (nothing to fuse)."""
    if cfg.mapping_origin != "default":
        return cfg, None
    if sum(not is_free(e, cfg.counts[e.name]) for e in cfg.cascade.einsums) <= 1:
        return cfg, None  # (before importing the search: a GEMM's start-up pays for none of it)
    from .search_cache import layer_key

    def derive() -> tuple[Any, DefaultChoice]:
        best_cfg, choice = _derive(cfg)
        return best_cfg.mapping, choice

    # an identical layer (a model's repeated blocks, a study's shared layers) reuses it
    mapping, choice = _DERIVED.get(layer_key(cfg, "derive_default"), derive)
    return replace(cfg, mapping=mapping), choice


#: derived defaults of this process, by layer digest (everything the derivation reads)
_DERIVED = WarningMemo(256)


def _derive(cfg: Config) -> tuple[Config, "DefaultChoice"]:
    from sim.results import simulate

    from .search.constraints import SearchProblem, SearchSettings
    from .search.model import assemble
    from .search.strategies import Searcher
    from .search_eval import SIMULATOR

    s = Searcher(SearchProblem(cfg, SearchSettings(objective="latency", budget=10**9), None,
                               cfg.source or ""), SIMULATOR, use_analytic=False)
    base = simulate(cfg)
    base_cycles = int(base["cycles"])
    groups0 = len(cfg.mapping.groups)
    best_key = (base_cycles, float(base["energy_pj"]["total"]))
    best_cfg, best = cfg, DefaultChoice("unfused", None, None, 1, groups0, base_cycles, base_cycles)
    plan = _plan(s)
    tried = 1
    keys = sorted({k for part in (plan or []) for k in part},
                  key=lambda k: (PLACEMENTS.index(k[0]), STAGE_LAYOUTS.index(k[1]) if k[1] in STAGE_LAYOUTS else 0,
                                 not k[2]))
    for key in keys:
        parts = []
        for part in plan or []:
            alt = [k for k in part if k[0] == key[0]] or list(part)
            parts.append(part[key] if key in part else part[alt[0]])
        sec = assemble(s.c, [_cand(e, g) for e, g in parts])
        try:
            mapping = mapping_from_data(json.loads(json.dumps(sec)), _SRC, ("mapping",), s.c, s.arch, s.counts)
        except ConfigError:
            continue
        cand_cfg = replace(cfg, mapping=mapping)
        res = simulate(cand_cfg)
        tried += 1
        k2 = (int(res["cycles"]), float(res["energy_pj"]["total"]))
        if k2 < best_key:
            best_key, best_cfg = k2, cand_cfg
            best = DefaultChoice("fused" if len(parts) == 1 else "fused-segments", key[0], key[1], 0,
                                 len(mapping.groups), k2[0], base_cycles)
    return best_cfg, replace(best, candidates=tried)


def _cand(einsums: dict, g: dict):
    from fractions import Fraction
    from types import MappingProxyType

    from .search.model import Cand

    return Cand(Fraction(0), 0.0, MappingProxyType(dict(einsums)), MappingProxyType(dict(g)))


def mapping_section(cfg: Config) -> dict[str, Any]:
    """The complete mapping section of ``cfg`` (for report.json)."""
    return mapping_to_data(cfg.mapping, cfg.cascade, cfg.arch)
