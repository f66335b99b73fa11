"""The search's settings and constraints: the ``search:`` section (see :mod:`einarray.search`).

:func:`parse_search_section` validates the section into :class:`SearchSettings` (objective,
budget, seed, whether the hand mapping seeds the search, and the :class:`Constraints`);
a :class:`SearchProblem` is a loaded config with its settings. Constraints act in two
places: the space only generates choices that satisfy them (:mod:`.space`), and
:func:`violates` checks a candidate that the space did not generate (a hand mapping's
group). Each constraint keeps where it was written (``file:line ypath``), so a
constraint that leaves no legal mapping is named by :meth:`Constraints.items` in file order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from einsum.cascade import Cascade
from einsum.errors import ConfigError
from einsum.yamlsrc import Source, YPath
from mapping.arch import Arch
from mapping.spec import Config

OBJECTIVES = ("latency", "energy", "edp")
SEARCH_KEYS = ("objective", "budget", "seed", "seed_mapping", "constraints")
EINSUM_CONSTRAINT_KEYS = ("unit", "dataflow", "spatial", "loop_order", "max_tile", "tiles")
DEFAULT_BUDGET = 400


@dataclass(frozen=True)
class EinsumConstraint:
    name: str
    units: tuple[str, ...] | None = None
    dataflows: tuple[str, ...] | None = None
    rows: tuple[str, ...] | None = None
    cols: tuple[str, ...] | None = None
    loop_order: tuple[str, ...] | None = None
    max_tile: Mapping[str, int] = field(default_factory=dict)
    tiles: Mapping[str, int] = field(default_factory=dict)
    where: Mapping[str, str] = field(default_factory=dict)  # key -> "file:line ypath" text


@dataclass(frozen=True)
class Constraints:
    einsums: Mapping[str, EinsumConstraint] = field(default_factory=dict)
    fuse: tuple[tuple[tuple[str, ...], str], ...] = ()
    split: tuple[tuple[tuple[str, ...], str], ...] = ()

    def items(self) -> list[tuple[str, "Constraints"]]:
        """Every single constraint as (its location, a Constraints holding only it), by line."""
        out: list[tuple[str, Constraints]] = []
        for n, ec in self.einsums.items():
            for k, loc in ec.where.items():
                if k == "spatial":
                    kw: dict[str, Any] = {"rows": ec.rows, "cols": ec.cols}
                else:
                    kw = {_EC_FIELD[k]: getattr(ec, _EC_FIELD[k])}
                out.append((loc, Constraints({n: EinsumConstraint(n, **kw, where={k: loc})})))
        for f, loc in self.fuse:
            out.append((loc, Constraints(fuse=((f, loc),))))
        for sp, loc in self.split:
            out.append((loc, Constraints(split=((sp, loc),))))
        return sorted(out, key=lambda x: _line_of(x[0]))

    def __bool__(self) -> bool:
        return bool(self.einsums or self.fuse or self.split)


_EC_FIELD = {"unit": "units", "dataflow": "dataflows", "loop_order": "loop_order", "max_tile": "max_tile",
             "tiles": "tiles", "spatial": "rows"}


def _line_of(loc: str) -> int:
    m = re.match(r"[^ ]*:(\d+) ", loc)
    return int(m.group(1)) if m else 0


def _merge(parts: Iterable[Constraints]) -> Constraints:
    ein: dict[str, EinsumConstraint] = {}
    fuse: list = []
    split: list = []
    for p in parts:
        for n, ec in p.einsums.items():
            old = ein.get(n)
            if old is None:
                ein[n] = ec
                continue
            kw = {}
            for f in ("units", "dataflows", "rows", "cols", "loop_order"):
                kw[f] = getattr(ec, f) if getattr(ec, f) is not None else getattr(old, f)
            kw["max_tile"] = {**old.max_tile, **ec.max_tile}
            kw["tiles"] = {**old.tiles, **ec.tiles}
            ein[n] = EinsumConstraint(n, **kw, where={**old.where, **ec.where})
        fuse.extend(p.fuse)
        split.extend(p.split)
    return Constraints(ein, tuple(fuse), tuple(split))


@dataclass(frozen=True)
class SearchSettings:
    objective: str = "edp"
    budget: int = DEFAULT_BUDGET
    seed: int = 0
    seed_mapping: bool = True
    constraints: Constraints = field(default_factory=Constraints)


@dataclass
class SearchProblem:
    config: Config  # with the hand mapping when there is one (else the default mapping)
    settings: SearchSettings
    hand_mapping: dict | None  # the config's mapping: section (data), if any
    source: str


def _loc(src: Source, path: YPath) -> str:
    e = src.error(path, "")
    return str(e)[:-2] if str(e).endswith(": ") else str(e)


def parse_search_section(sec: Any, src: Source, base: YPath, c: Cascade, arch: Arch,
                         *, objective: str | None = None, budget: int | None = None,
                         seed: int | None = None) -> SearchSettings:
    """Validate a ``search:`` section (None: defaults); explicit arguments override it."""
    sec = {} if sec is None else sec
    if not isinstance(sec, dict):
        raise src.error(base, "expected a mapping like {objective: edp, budget: 400, constraints: {...}}")
    for k in sec:
        if k not in SEARCH_KEYS:
            raise src.error(base + (str(k),), f"unknown key {k!r} (allowed: {', '.join(SEARCH_KEYS)})")
    obj = objective if objective is not None else sec.get("objective", "edp")
    if obj not in OBJECTIVES:
        where = base + ("objective",) if objective is None else None
        msg = f"unknown objective {obj!r} (expected one of {', '.join(OBJECTIVES)})"
        raise src.error(where, msg) if where else ConfigError(f"--objective: {msg}")
    bud = budget if budget is not None else sec.get("budget", DEFAULT_BUDGET)
    if isinstance(bud, bool) or not isinstance(bud, int) or bud <= 0:
        msg = f"the budget must be a positive integer, got {bud!r}"
        if budget is None:
            raise src.error(base + ("budget",), msg)
        raise ConfigError(f"--budget: {msg}")
    sd = seed if seed is not None else sec.get("seed", 0)
    if isinstance(sd, bool) or not isinstance(sd, int):
        raise src.error(base + ("seed",), f"the seed must be an integer, got {sd!r}")
    sm = sec.get("seed_mapping", True)
    if not isinstance(sm, bool):
        raise src.error(base + ("seed_mapping",), f"expected true or false, got {sm!r}")
    cons = _parse_constraints(sec.get("constraints"), src, base + ("constraints",), c, arch)
    return SearchSettings(obj, bud, sd, sm, cons)


def _name_list(v: Any, src: Source, p: YPath, allowed: list[str], what: str) -> tuple[str, ...]:
    scalar = isinstance(v, str)
    if scalar:
        v = [v]
    if not isinstance(v, list) or not v:
        raise src.error(p, f"expected a {what} or a non-empty list of them")
    for j, x in enumerate(v):
        if x not in allowed:
            raise src.error(p if scalar else p + (j,),
                            f"{x!r} is not a {what} (expected one of {', '.join(allowed)})")
    return tuple(v)


def _parse_constraints(sec: Any, src: Source, base: YPath, c: Cascade, arch: Arch) -> Constraints:
    if sec is None:
        return Constraints()
    if not isinstance(sec, dict):
        raise src.error(base, "expected {EINSUM: {...}, fuse: [[A, B]], split: [[A, B]]}")
    names = [e.name for e in c.einsums]
    ein: dict[str, EinsumConstraint] = {}
    fuse: list = []
    split: list = []
    for key, v in sec.items():
        p = base + (str(key),)
        if key in ("fuse", "split"):
            if not isinstance(v, list) or not all(isinstance(x, list) for x in v):
                raise src.error(p, f"expected a list of lists of Einsum names, e.g. {key}: [[QK, LM]]")
            for i, lst in enumerate(v):
                if len(lst) < 2:
                    raise src.error(p + (i,), "expected at least two Einsum names")
                for j, n in enumerate(lst):
                    if n not in names:
                        raise src.error(p + (i, j), f"{n!r} is not an Einsum of {c.name} (Einsums: {', '.join(names)})")
                (fuse if key == "fuse" else split).append((tuple(lst), _loc(src, p + (i,))))
            continue
        if key not in names:
            raise src.error(p, f"{key!r} is not an Einsum of {c.name} (Einsums: {', '.join(names)}; "
                            "or fuse, split)")
        e = c.einsum(key)
        if not isinstance(v, dict):
            raise src.error(p, f"expected a mapping with some of {', '.join(EINSUM_CONSTRAINT_KEYS)}")
        ranks = []
        for ix in e.iter_indices:
            r = c.rank_of_index(ix).name
            if r not in ranks:
                ranks.append(r)
        kw: dict[str, Any] = {}
        where: dict[str, str] = {}
        for k, x in v.items():
            kp = p + (str(k),)
            if k not in EINSUM_CONSTRAINT_KEYS:
                raise src.error(kp, f"unknown key {k!r} (allowed: {', '.join(EINSUM_CONSTRAINT_KEYS)})")
            where[k] = _loc(src, kp)
            if k == "unit":
                kw["units"] = _name_list(x, src, kp, list(arch.units), "unit of this arch")
            elif k == "dataflow":
                kw["dataflows"] = _name_list(x, src, kp, ["os", "ws", "is"], "dataflow")
            elif k == "spatial":
                if not isinstance(x, dict):
                    raise src.error(kp, "expected {rows: [index, ...], cols: [index, ...]}")
                for d, lst in x.items():
                    if d not in ("rows", "cols"):
                        raise src.error(kp + (str(d),), f"unknown key {d!r} (allowed: rows, cols)")
                    kw[d] = _name_list(lst, src, kp + (d,), list(e.iter_indices), f"index of {key}")
            elif k == "loop_order":
                if not isinstance(x, list) or not x:
                    raise src.error(kp, "expected a list of rank names, outermost first")
                for j, r in enumerate(x):
                    if r not in ranks:
                        raise src.error(kp + (j,), f"{r!r} is not a rank of {key} (ranks: {', '.join(ranks)})")
                if len(set(x)) != len(x):
                    raise src.error(kp, "a rank appears twice")
                kw["loop_order"] = tuple(x)
            else:  # max_tile, tiles
                if not isinstance(x, dict) or not x:
                    raise src.error(kp, "expected {RANK: size}")
                d2 = {}
                for r, n in x.items():
                    if r not in ranks:
                        raise src.error(kp + (str(r),), f"{r!r} is not a rank of {key} (ranks: {', '.join(ranks)})")
                    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                        raise src.error(kp + (str(r),), f"expected a positive integer, got {n!r}")
                    d2[r] = n
                kw[k] = MappingProxyType(d2)
        ein[key] = EinsumConstraint(key, **kw, where=MappingProxyType(where))
    return Constraints(MappingProxyType(ein), tuple(fuse), tuple(split))


def violates(cons: Constraints, c: Cascade, buffer: str, members: tuple[str, ...], einsums: Mapping[str, Any],
         g: Mapping[str, Any]) -> bool:
    """Whether a group candidate (its Einsums' and its group's YAML sections) breaks one of
    ``cons`` (used for the hand mapping's groups, which the space did not generate)."""
    for n, ec in cons.einsums.items():
        if n not in members:
            continue
        d = einsums.get(n)
        if d is not None:
            if ec.units is not None and d["unit"] not in ec.units:
                return True
            sp = d.get("spatial", {})
            if ec.dataflows is not None and d.get("dataflow", "os") not in ec.dataflows:
                return True
            if ec.rows is not None and not set(sp.get("rows", {})) & set(ec.rows):
                return True
            if ec.cols is not None and not set(sp.get("cols", {})) & set(ec.cols):
                return True
        tiles = g.get("tiles", {}).get(buffer, {})
        for r, m in ec.max_tile.items():
            if tiles.get(r, c.ranks[r].size) > m:
                return True
        for r, m in ec.tiles.items():
            if tiles.get(r, c.ranks[r].size) != m:
                return True
        if ec.loop_order is not None:
            lo = g.get("loop_order", [])
            if [r for r in lo if r in ec.loop_order] != [r for r in ec.loop_order if r in lo]:
                return True
    return False


def _first_where(ec: EinsumConstraint | None, keys: tuple[str, ...]) -> str:
    if ec is None:
        return "the arch (no unit can run it)"
    for k in keys:
        if k in ec.where:
            return ec.where[k]
    return "the arch (no unit can run it)"
