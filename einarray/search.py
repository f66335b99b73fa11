"""Mapping search: find a good legal mapping of a cascade onto an architecture by itself.

``einarray search CONFIG.yaml`` reads a simulate config (``einsum:`` or ``workload:``,
``arch:``, optionally a hand-written ``mapping:`` and a ``search:`` section) and returns
the best mapping it finds as a ``mapping:`` section to paste, with its figures and the
Pareto set of latency against energy.

The space
---------
* **Fusion.** The cascade is cut into *atoms* that can never be split: a recurrence (its
  strongly connected component) together with its initial value, and every Einsum lying
  between the first and last Einsum of such a component in cascade order. A *group* of
  the mapping is a contiguous run of atoms (a *segment*); a mapping is a partition of the
  atom sequence into segments. Einsums in one group are fused; tensors crossing groups
  spill to the backing store.
* **Per Einsum** (every Einsum that does arithmetic): the unit (every unit that has each
  op the Einsum needs and an energy for it); on the 2-D array, for a sum of products, the
  dataflow and the spatial assignment: ``os`` puts two output indices on rows and
  columns, ``ws``/``is`` put a reduced and an output index of the stationary operand
  (``ws``: the second operand, ``is``: the first) on rows and columns (either way
  round); each spatial index gets factor ``min(array dimension, extent)`` and, where it
  differs, the balanced factor ``ceil(extent / folds)`` with the same number of folds
  (less fill and drain).
* **Per group**: the tile of every rank at the on-chip buffer (the full extent, halvings
  ``ceil(n / 2^k)`` and three-quarter points ``ceil(3n / 2^(k+2))``, so divisors and
  non-divisors with partial last tiles); recurrence ranks have tile 1; a rank that a
  member reduces while another member reads the result is not tiled (the fused consumer
  needs the complete reduction). The loop order (permutations of the tiled ranks; at most
  24 are tried for a group with more than four). Whether inputs that do not depend on
  every loop are held in the buffer across the loops (``hold``). The stage layout:
  ``serial`` (one Einsum per stage), ``asap`` (each Einsum in the earliest stage after its
  producers; the 2-D and 1-D arrays work in parallel within a stage) or ``pipelined``
  (``asap`` with the tail of the step on the second unit deferred one step so that it
  overlaps the next step's head, as FuseMax does).

Cheap checks prune before simulating: unit capabilities and spatial factors are legal by
construction, tiles whose step footprint exceeds the buffer are dropped, and the group is
validated by :mod:`mapping.spec` (any :class:`~einsum.errors.ConfigError` = illegal).

Evaluation and exactness
------------------------
The simulator runs groups one after another from a common start, so a mapping's cycles
and energy are sums over its groups. Each candidate group is simulated alone (the
simulator's group loop and result collection, :func:`sim.results.collect`), and the best
partition is found by dynamic programming over segments keeping, per prefix, the Pareto
set of (cycles, energy): exact for latency, energy and EDP (both increase with either
figure). When every candidate of every segment fits in the budget the search is
*exhaustive* and returns the true optimum. Otherwise it is a heuristic: every segment's
starting point (largest tiles that fit, default units and spatial mapping, pipelined
stages) is evaluated, then greedy coordinate descent (one choice at a time, every value
tried) runs on the segments of the currently best partition and, once those are at a
local optimum, on the most promising other segments, with random restarts, until the
budget (simulated candidates) is spent; the most fused segment gets the first descent
sweep, since its starting point underestimates it most. Single-Einsum groups are first
ranked with the closed-form model of :mod:`einarray.analytic` and simulated best-first.
Everything is deterministic for a given ``--seed``. The best mapping and the Pareto
points (the 40 fastest) are re-validated with :func:`mapping.spec.mapping_from_data` and re-simulated in
full; the figures reported are those of the full simulation.

A hand-written ``mapping:`` in the config *seeds* the search (``seed_mapping: false``
turns this off): each of its groups that is a segment is evaluated as one more candidate
of that segment, so the result is never worse than the hand mapping.

The ``search:`` section
-----------------------
::

    search:
      objective: edp            # latency | energy | edp (default edp)
      budget: 400               # simulated candidates (default 400)
      seed: 0                   # random seed of the heuristic (default 0)
      seed_mapping: true        # also try the config's own mapping: (default true)
      constraints:
        QK:                     # per Einsum
          unit: array2d         # a unit or a list of allowed units
          dataflow: [os, ws]    # allowed dataflows (implies the 2-D array)
          spatial: {rows: [m], cols: [p0]}   # the index on rows / cols is one of these
          loop_order: [M, P1]   # relative order (outermost first) of these ranks in
                                # the loops of QK's group; untiled ranks are not loops
          max_tile: {M: 256}    # QK's group tiles M by at most 256
          tiles: {M: 256}       # QK's group tiles M by exactly 256
        fuse: [[QK, LM]]        # these Einsums share a group
        split: [[LM, RM]]       # these Einsums are in different groups

Constraints are always honoured. An unknown Einsum, rank, index, unit or key is a
:class:`~einsum.errors.ConfigError` naming its YAML path; a constraint that leaves no
legal mapping is a ConfigError naming the first constraint (in file order) after which
no legal mapping is left.

Public API: :func:`load_search_config`, :func:`parse_search_section`,
:func:`search` (returns a :class:`SearchResult`), :func:`mapping_yaml`,
:class:`SearchSettings`, :data:`OBJECTIVES`.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import yaml

from einsum.cascade import Cascade, Einsum
from einsum.errors import ConfigError, format_ypath
from einsum.expr import accesses_in, indices_in
from einsum.yamlsrc import Source, YPath
from mapping.arch import Arch
from mapping.config import config_from_sections, load_section
from mapping.spec import (Config, EinsumMap, Group, MappingSpec, default_spatial, default_unit,
                          make_group, buffer_words, group_tensors, is_free, mapping_from_data, rank_related,
                          recurrences)
from einsum.yamlsrc import load as load_yaml

OBJECTIVES = ("latency", "energy", "edp")
SEARCH_KEYS = ("objective", "budget", "seed", "seed_mapping", "constraints")
EINSUM_CONSTRAINT_KEYS = ("unit", "dataflow", "spatial", "loop_order", "max_tile", "tiles")
CONFIG_KEYS = ("einsum", "workload", "arch", "mapping", "description", "search")
DEFAULT_BUDGET = 400
MAX_ORDERS = 24
STAGE_VARIANTS = ("pipelined", "asap", "serial")
_SRC = Source("<search candidate>")


# ----------------------------------------------------------------------------------
# settings and constraints
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


# ----------------------------------------------------------------------------------
# loading
@dataclass
class SearchProblem:
    config: Config  # with the hand mapping when there is one (else the default mapping)
    settings: SearchSettings
    hand_mapping: dict | None  # the config's mapping: section (data), if any
    source: str


def _run_config_key(data: Any) -> YPath | None:
    """The section that makes ``data`` a run config (``include``, ``mappings``, ``report`` or a
    model workload), or None."""
    if not isinstance(data, dict):
        return None
    w = data.get("workload")
    if isinstance(w, dict) and "model" in w:
        return ("workload", "model")
    k = next((k for k in ("include", "mappings", "report") if k in data), None)
    return None if k is None else (k,)


def is_run_config(path: str | Path) -> bool:
    """True for a config of ``einarray run`` (a model workload, include, mappings or report),
    which ``einarray search`` searches layer by layer rather than as one cascade."""
    p = Path(path)
    return p.is_file() and _run_config_key(load_yaml(p)[0]) is not None


def load_search_config(path: str | Path, *, objective: str | None = None, budget: int | None = None,
                       seed: int | None = None, sets: list[str] | None = None) -> SearchProblem:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config file not found", str(path))
    data, src = load_yaml(p)
    if not isinstance(data, dict):
        raise src.error((), "expected a mapping with einsum or workload, arch, mapping and search sections")
    k = _run_config_key(data)
    if k is not None:
        raise src.error(k, f"{format_ypath(k)} makes this a run config (einarray run), which is searched "
                        "layer by layer (einarray search CONFIG, or einarray.flow.search_layer); "
                        f"load_search_config takes one cascade ({', '.join(CONFIG_KEYS)})")
    for k in data:
        if k not in CONFIG_KEYS:
            raise src.error((str(k),), f"unknown section {k!r} (allowed: {', '.join(CONFIG_KEYS)})")
    sections: dict[str, tuple[Any, Source, YPath]] = {}
    for k in ("einsum", "workload", "arch", "mapping"):
        s = load_section(data, src, k, p.parent)
        if s is not None:
            sections[k] = s
    return problem_from_sections(sections, src, p.parent, data.get("search"), str(p), objective=objective,
                                 budget=budget, seed=seed, sets=sets)


def problem_from_sections(sections: dict[str, tuple[Any, Source, YPath]], src: Source, base_dir: Path,
                          search_sec: Any, source: str, *, objective: str | None = None,
                          budget: int | None = None, seed: int | None = None,
                          sets: list[str] | None = None, search_src: Source | None = None) -> SearchProblem:
    """A search problem from loaded sections; a hand mapping that no longer fits (for example
    after a sweep shrank the array) is dropped as a seed rather than failing the search."""
    hand = copy.deepcopy(sections["mapping"][0]) if "mapping" in sections else None
    try:
        cfg = config_from_sections(sections, src, base_dir, sets=sets, source=source)
    except ConfigError as exc:
        if hand is None or not exc.ypath or exc.ypath[0] != "mapping":
            raise
        rest = {k: v for k, v in sections.items() if k != "mapping"}
        cfg = config_from_sections(rest, src, base_dir, sets=sets, source=source)
        hand = None
    settings = parse_search_section(search_sec, search_src or src, ("search",), cfg.cascade, cfg.arch,
                                    objective=objective, budget=budget, seed=seed)
    return SearchProblem(cfg, settings, hand, source)


# ----------------------------------------------------------------------------------
# candidates
@dataclass(frozen=True)
class Cand:
    cycles: Fraction
    energy: float  # pJ without leakage
    einsums: Mapping[str, Any]  # YAML sections of the members
    group: Mapping[str, Any]  # YAML group section
    origin: str = "search"  # search | seed


@dataclass
class Dim:
    key: tuple
    values: list[Any]
    labels: list[str]


class Segment:
    def __init__(self, i: int, j: int, members: tuple[str, ...]):
        self.i, self.j, self.members = i, j, members
        self.dims: list[Dim] = []
        self.front: list[Cand] = []
        self.best: Cand | None = None
        self.best_choice: tuple | None = None  # best candidate reached through the choice space
        self.best_choice_v = float("inf")
        self.cur: tuple | None = None
        self.converged = False
        self.restarts = 0
        self.ranked: list[tuple] | None = None
        self.ranked_pos = 0
        self.empty_reason: str | None = None
        self.illegal_reason: str | None = None
        self.raw = 0

    @property
    def name(self) -> str:
        return self.members[0] if len(self.members) == 1 else f"{self.members[0]}-{self.members[-1]}"


def _tile_values(n: int) -> list[int]:
    vals = {n}
    k = 1
    while (1 << k) <= 2 * n:
        vals.add(-(-n // (1 << k)))
        vals.add(-(-3 * n // (1 << (k + 1))))
        k += 1
    return sorted((v for v in vals if 1 <= v <= n), reverse=True)


class Searcher:
    """The search over one :class:`SearchProblem` (see the module docstring)."""

    def __init__(self, problem: SearchProblem, *, progress: Callable[[int, int], None] | None = None,
                 use_analytic: bool = True):
        self.problem = problem
        cfg = problem.config
        self.cfg = cfg
        self.c: Cascade = cfg.cascade
        self.arch: Arch = cfg.arch
        self.counts = cfg.counts
        self.s = problem.settings
        self.cons = self.s.constraints
        self.rng = random.Random(self.s.seed)
        self.progress = progress
        self.use_analytic = use_analytic
        self.names = [e.name for e in self.c.einsums]
        self.buf = self.arch.levels[1]
        self.evals = 0  # simulated candidates
        self.pruned = 0  # dropped by cheap checks
        self.illegal = 0  # rejected by mapping validation
        self.cache: dict[str, Cand | None] = {}
        self.free = {e.name: is_free(e, self.counts[e.name]) for e in self.c.einsums}
        self.free_map = {n: EinsumMap(n, default_unit(self.arch, self.c.einsum(n), self.counts[n]),
                                      "os", (), (), True) for n in self.names}
        self.rec_ranks = self._recurrence_ranks()
        self.atoms = self._atoms()
        self.map_options = {n: self._map_options(n) for n in self.names if not self.free[n]}
        self.segments: dict[tuple[int, int], Segment] = {}
        self.exhaustive = False
        self.last_illegal: str | None = None
        self.cloud: list[tuple[float, float]] = []  # (latency s, energy pJ) of combined mappings

    # -- structure ------------------------------------------------------------------
    def _recurrence_ranks(self) -> dict[str, str]:
        out = {}
        for comp in recurrences(self.c):
            for n in comp:
                e = self.c.einsum(n)
                if e.kind == "update":
                    out[n] = self.c.rank_of_index(e.iter_var).name
        return out

    def _atoms(self) -> list[tuple[str, ...]]:
        pos = {n: i for i, n in enumerate(self.names)}
        spans: list[tuple[int, int]] = []
        for comp in recurrences(self.c):
            ms = set(comp)
            for n in comp:  # with the initial values of what the component updates
                out = self.c.einsum(n).output
                ms.update(p.name for p in self.c.producers(out))
            spans.append((min(pos[m] for m in ms), max(pos[m] for m in ms)))
        for t in self.c.tensors:
            ps = self.c.producers(t)
            if len(ps) > 1:
                spans.append((min(pos[p.name] for p in ps), max(pos[p.name] for p in ps)))
        spans.sort()
        merged: list[list[int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        atoms: list[tuple[str, ...]] = []
        i = 0
        for a, b in merged + [[len(self.names), len(self.names)]]:
            while i < a:
                atoms.append((self.names[i],))
                i += 1
            if a < len(self.names):
                atoms.append(tuple(self.names[a:b + 1]))
                i = b + 1
        return atoms

    def _operand_indices(self, e: Einsum) -> list[set[str]]:
        out: dict[str, set[str]] = {}
        for acc in accesses_in(e.stmt.rhs):
            s = out.setdefault(acc.tensor, set())
            for sub in acc.subscripts:
                s.update(indices_in(sub))
        return [out[t] for t in e.reads if t in out]

    def _map_options(self, n: str) -> list[tuple[dict, str]]:
        """(YAML section, label) of every unit/dataflow/spatial choice of Einsum n."""
        e, oc = self.c.einsum(n), self.counts[n]
        ec = self.cons.einsums.get(n)
        needed = {a for a, v in oc.counts.items() if v}
        out: list[tuple[dict, str]] = []
        units = [u for u in self.arch.units if needed <= set(self.arch.units[u].ops)
                 and needed <= set(self.arch.energy.get(u, {}))]
        if ec and ec.units is not None:
            units = [u for u in units if u in ec.units]
        spatial_cons = ec is not None and (ec.rows is not None or ec.cols is not None or ec.dataflows is not None)
        size = {ix: self.c.index_size(ix) for ix in e.iter_indices}
        for u in units:
            unit = self.arch.units[u]
            if not unit.is_2d:
                if not spatial_cons:
                    out.append(({"unit": u}, u))
                continue
            if not oc.counts.get("mac"):
                if not spatial_cons:
                    out.append(({"unit": u}, u))
                continue
            outs = [ix for ix in e.lhs_indices if ix != e.iter_var and size[ix] > 1]
            red = [ix for ix in e.reduced if size[ix] > 1]
            ops = self._operand_indices(e)
            pairs: list[tuple[str, str | None, str | None]] = []
            for a, b in itertools.permutations(outs, 2):
                pairs.append(("os", a, b))
            if len(outs) == 1:
                pairs += [("os", outs[0], None), ("os", None, outs[0])]
            for df, opi in (("ws", 1), ("is", 0)):
                if opi >= len(ops):
                    continue
                for r in red:
                    for o in outs:
                        if r in ops[opi] and o in ops[opi]:
                            pairs += [(df, r, o), (df, o, r)]
            if not pairs:
                if not spatial_cons:
                    out.append(({"unit": u}, u))
                continue
            for df, r, cix in pairs:
                if ec is not None:
                    if ec.dataflows is not None and df not in ec.dataflows:
                        continue
                    if ec.rows is not None and r not in ec.rows:
                        continue
                    if ec.cols is not None and cix not in ec.cols:
                        continue

                def facs(ix: str | None, D: int) -> list[int | None]:
                    if ix is None:
                        return [None]
                    full = min(D, size[ix])
                    bal = -(-size[ix] // -(-size[ix] // D))
                    return [full] if bal == full else [full, bal]
                for fr in facs(r, unit.rows):
                    for fc in facs(cix, unit.cols):
                        sp: dict[str, Any] = {}
                        if r is not None:
                            sp["rows"] = {r: fr}
                        if cix is not None:
                            sp["cols"] = {cix: fc}
                        lab = f"{u} {df} rows={r}:{fr} cols={cix}:{fc}"
                        out.append(({"unit": u, "dataflow": df, "spatial": sp}, lab))
        return out

    def group_ranks(self, members: tuple[str, ...]) -> list[str]:
        iranks: list[str] = []
        for n in members:
            for ix in self.c.einsum(n).iter_indices:
                r = self.c.rank_of_index(ix).name
                if r not in iranks:
                    iranks.append(r)
        return iranks

    def _build_segment(self, i: int, j: int, cons: Constraints) -> Segment:
        members = tuple(n for a in self.atoms[i:j] for n in a)
        seg = Segment(i, j, members)
        dims: list[Dim] = []
        for n in members:
            if self.free[n]:
                continue
            opts = self.map_options[n] if cons is self.cons else self._map_options_for(n, cons)
            if not opts:
                ec = cons.einsums.get(n)
                seg.empty_reason = (f"no unit/dataflow/spatial choice of {n} satisfies "
                                    f"{_first_where(ec, ('unit', 'dataflow', 'spatial'))}")
                return seg
            dims.append(Dim(("map", n), [o for o, _ in opts], [lab for _, lab in opts]))
        iranks = self.group_ranks(members)
        rec = {self.rec_ranks[n] for n in members if n in self.rec_ranks}
        rec = {r for r in rec if self.c.ranks[r].size > 1}
        cand = [r for r in iranks if not any(rank_related(self.c, r, o) and o != r for o in iranks)]
        # a rank that one member reduces while another member reads the result: not tiled
        inner_reduced: set[str] = set()
        for n in members:
            e = self.c.einsum(n)
            if any(e.output in self.c.einsum(m).reads for m in members if m != n):
                inner_reduced.update(self.c.rank_of_index(ix).name for ix in e.reduced)
        group_cons = [cons.einsums[n] for n in members if n in cons.einsums]
        tileable: list[str] = []
        for r in cand:
            size = self.c.ranks[r].size
            if r in rec:
                vals = [1]
            elif r in inner_reduced or size == 1:
                vals = [size]
            else:
                vals = _tile_values(size)
            for ec in group_cons:
                if r in ec.max_tile:
                    vals = [v for v in vals if v <= ec.max_tile[r]]
                    if not vals:
                        seg.empty_reason = (f"{ec.where['max_tile']}: no tile of {r} in group "
                                            f"{'+'.join(members)} is at most {ec.max_tile[r]}")
                        return seg
                if r in ec.tiles:
                    vals = [v for v in vals if v == ec.tiles[r]]
                    if not vals:
                        seg.empty_reason = (f"{ec.where['tiles']}: rank {r} cannot have tile "
                                            f"{ec.tiles[r]} in group {'+'.join(members)}")
                        return seg
            if r not in rec and len(vals) > 1:
                dims.append(Dim(("tile", r), vals, [str(v) for v in vals]))
                tileable.append(r)
            elif r not in rec and vals != [size]:
                dims.append(Dim(("tile", r), vals, [str(v) for v in vals]))
                tileable.append(r)
        for ec in group_cons:
            for r in list(ec.max_tile) + list(ec.tiles):
                if r not in cand:
                    seg.empty_reason = f"{ec.where.get('max_tile') or ec.where.get('tiles')}: rank {r} " \
                                       f"cannot be tiled in group {'+'.join(members)}"
                    return seg
        looping = tileable + sorted(rec, key=iranks.index)
        orders = self._orders(looping, group_cons)
        if orders is None:
            ec = next(ec for ec in group_cons if ec.loop_order is not None)
            seg.empty_reason = f"{ec.where['loop_order']}: no loop order of group {'+'.join(members)} satisfies it"
            return seg
        if len(orders) > 1:
            dims.append(Dim(("order",), orders, [">".join(o) for o in orders]))
        seg.fixed_order = orders[0]  # type: ignore[attr-defined]
        ins, _, _ = group_tensors(self.c, members)
        if ins and looping:
            dims.append(Dim(("hold",), [False, True], ["no", "yes"]))
        non_free = [n for n in members if not self.free[n]]
        if len(non_free) > 1:
            dims.append(Dim(("stages",), list(STAGE_VARIANTS), list(STAGE_VARIANTS)))
        seg.dims = dims
        seg.raw = math.prod(len(d.values) for d in dims)
        return seg

    def _map_options_for(self, n: str, cons: Constraints) -> list:
        saved = self.cons
        self.cons = cons
        try:
            return self._map_options(n)
        finally:
            self.cons = saved

    def _orders(self, ranks: list[str], group_cons: list[EinsumConstraint]) -> list[tuple[str, ...]] | None:
        if not ranks:
            return [()]
        if len(ranks) <= 4:
            perms = list(itertools.permutations(ranks))
        else:
            rng = random.Random(len(ranks))
            perms = [tuple(ranks), tuple(reversed(ranks))]
            while len(perms) < 5 * MAX_ORDERS:
                p = list(ranks)
                rng.shuffle(p)
                if tuple(p) not in perms:
                    perms.append(tuple(p))
        keep = []
        for p in perms:
            ok = True
            for ec in group_cons:
                if ec.loop_order is not None:
                    sub = [r for r in p if r in ec.loop_order]
                    want = [r for r in ec.loop_order if r in p]
                    if sub != want:
                        ok = False
            if ok:
                keep.append(p)
        if not keep:
            return None
        return keep[:MAX_ORDERS]

    # -- emission -------------------------------------------------------------------
    def emit(self, seg: Segment, choice: tuple) -> tuple[dict, dict]:
        val = {d.key: d.values[k] for d, k in zip(seg.dims, choice)}
        einsums = {n: copy.deepcopy(val[("map", n)]) for n in seg.members if ("map", n) in val}
        iranks = self.group_ranks(seg.members)
        tiles = {k[1]: v for k, v in val.items() if k[0] == "tile"}
        rec = sorted({self.rec_ranks[n] for n in seg.members if n in self.rec_ranks
                      and self.c.ranks[self.rec_ranks[n]].size > 1}, key=iranks.index)
        for r in rec:
            tiles[r] = 1
        order = val.get(("order",), getattr(seg, "fixed_order", ()))
        looped = [r for r in order if tiles.get(r, self.c.ranks[r].size) < self.c.ranks[r].size or r in rec]
        tsec = {r: t for r, t in tiles.items() if t < self.c.ranks[r].size or r in rec}
        g: dict[str, Any] = {"name": seg.name, "einsums": list(seg.members),
                             "tiles": {self.buf.name: {r: tsec[r] for r in iranks if r in tsec}}}
        if looped:
            g["loop_order"] = looped
        if val.get(("hold",)):
            ins, _, _ = group_tensors(self.c, seg.members)
            held = [t for t in ins if any(not self._related(t, r) for r in looped)]
            if held:
                g["hold"] = held
        variant = val.get(("stages",), "serial")
        units = {n: (einsums[n]["unit"] if n in einsums else self.free_map[n].unit) for n in seg.members}
        if variant != "serial":
            stages, deferred = self._stages(seg.members, units, variant == "pipelined")
            g["stages"] = stages
            if deferred:
                g["deferred"] = deferred
        return einsums, g

    def _related(self, t: str, r: str) -> bool:
        return any(rank_related(self.c, r, tr) for tr in self.c.tensors[t].ranks)

    def _stages(self, members: tuple[str, ...], units: Mapping[str, str], pipelined: bool
                ) -> tuple[list[list[str]], list[str]]:
        c = self.c
        prod: dict[str, list[str]] = {}
        for n in members:
            prod.setdefault(c.einsum(n).output, []).append(n)
        mset = set(members)

        def same_step_producers(n: str) -> list[str]:
            e = c.einsum(n)
            out = []
            for t in e.reads:
                for m in prod.get(t, []):
                    if m == n or self.free[m]:
                        continue
                    if t in e.carried and c.einsum(m).kind == "update":
                        continue
                    out.append(m)
            return out

        deferred: set[str] = set()
        if pipelined:
            head = next((units[n] for n in members if not self.free[n]), None)
            for n in reversed(members):
                if self.free[n] or units[n] == head:
                    continue
                consumers = [m for m in members if n in same_step_producers(m)]
                if all(m in deferred for m in consumers):
                    deferred.add(n)
        level: dict[str, int] = {}
        for n in members:
            if self.free[n] or n in deferred:
                level[n] = 0
                continue
            lv = 0
            for m in same_step_producers(n):
                if m in deferred:
                    continue
                lv = max(lv, level[m] + (0 if units[m] == units[n] else 1))
            level[n] = lv
        nst = max(level.values()) + 1 if level else 1
        stages = [[n for n in members if level[n] == k] for k in range(nst)]
        stages = [s for s in stages if s]
        return stages, [n for n in members if n in deferred]

    # -- evaluation -----------------------------------------------------------------
    def _emaps(self, einsums: Mapping[str, Any]) -> dict[str, EinsumMap]:
        out = dict(self.free_map)
        for n, d in einsums.items():
            e = self.c.einsum(n)
            u = self.arch.units[d["unit"]]
            df = d.get("dataflow", "os")
            if u.is_2d:
                sp = d.get("spatial")
                if sp is None:
                    rows, cols = default_spatial(e, df, u.rows, u.cols,
                                                  {ix: self.c.index_size(ix) for ix in e.iter_indices})
                else:
                    rows = tuple((ix, f) for ix, f in sp.get("rows", {}).items())
                    cols = tuple((ix, f) for ix, f in sp.get("cols", {}).items())
            else:
                rows, cols = (), ()
            out[n] = EinsumMap(n, d["unit"], df, rows, cols, False)
        return out

    def evaluate(self, seg: Segment, einsums: Mapping[str, Any], g: Mapping[str, Any], origin: str = "search"
                 ) -> Cand | None:
        """Simulate one group candidate (cached); None when pruned or illegal."""
        key = json.dumps([einsums, g], sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        # cheap check: the step footprint must fit the buffer
        tiles = dict(g.get("tiles", {}).get(self.buf.name, {}))
        hold = {t: set(g.get("loop_order", [])) for t in g.get("hold", [])}
        cap = self.buf.capacity_words
        if cap is not None and buffer_words(self.c, self.arch, seg.members, tiles, hold=hold) > cap:
            self.pruned += 1
            self.cache[key] = None
            return None
        emaps = self._emaps(einsums)
        try:
            group = make_group(_SRC, self.c, self.arch, emaps, self.counts, g["name"], seg.members,
                                dict(g), ("mapping", "groups", 0))
        except ConfigError as exc:
            self.illegal += 1
            self.last_illegal = exc.message
            seg.illegal_reason = exc.message
            self.cache[key] = None
            return None
        cyc, energy = simulate_group(self.cfg, emaps, group)
        self.evals += 1
        if self.progress is not None:
            self.progress(self.evals, self.s.budget)
        cand = Cand(cyc, energy, MappingProxyType(dict(einsums)), MappingProxyType(dict(g)), origin)
        self.cache[key] = cand
        self._add(seg, cand)
        return cand

    def eval_choice(self, seg: Segment, choice: tuple) -> Cand | None:
        e, g = self.emit(seg, choice)
        c = self.evaluate(seg, e, g)
        if c is not None and (seg.best_choice is None or self.proxy(c) < seg.best_choice_v):
            seg.best_choice, seg.best_choice_v = choice, self.proxy(c)
        return c

    def _add(self, seg: Segment, cand: Cand) -> None:
        if seg.best is None or self.proxy(cand) < self.proxy(seg.best):
            seg.best = cand
        seg.front = _pareto(seg.front + [cand], key=lambda x: (x.cycles, x.energy))

    def proxy(self, cand: Cand) -> float:
        cyc = float(cand.cycles)
        e = cand.energy + self.arch.leakage_pj_per_cycle * cyc
        return {"latency": cyc, "energy": e, "edp": cyc * e}[self.s.objective]

    def objective(self, cycles: int, energy: float) -> float:
        lat = cycles / self.arch.clock_hz
        return {"latency": lat, "energy": energy, "edp": energy * lat}[self.s.objective]

    @property
    def left(self) -> int:
        return self.s.budget - self.evals

    # -- segments under constraints ---------------------------------------------------
    def _segments(self, cons: Constraints) -> dict[tuple[int, int], Segment]:
        atom_of = {n: k for k, a in enumerate(self.atoms) for n in a}
        segs = {}
        for i in range(len(self.atoms)):
            for j in range(i + 1, len(self.atoms) + 1):
                ok = True
                for lst, _ in cons.fuse:
                    ks = [atom_of[n] for n in lst]
                    inside = [i <= k < j for k in ks]
                    if any(inside) and not all(inside):
                        ok = False
                for lst, _ in cons.split:
                    ks = [atom_of[n] for n in lst]
                    if sum(i <= k < j for k in ks) > 1:
                        ok = False
                if not ok:
                    continue
                seg = self._build_segment(i, j, cons)
                segs[(i, j)] = seg
        return segs

    def _reachable(self, segs: Mapping[tuple[int, int], Any], ok: Callable[[Any], bool]) -> bool:
        n = len(self.atoms)
        reach = [False] * (n + 1)
        reach[0] = True
        for j in range(1, n + 1):
            reach[j] = any(reach[i] and (i, j) in segs and ok(segs[(i, j)]) for i in range(j))
        return reach[n]

    def _blame(self, why: str) -> ConfigError:
        """The first constraint (file order) after which no legal mapping is left."""
        items = self.cons.items()
        for k in range(len(items)):
            sub = _merge(c for _, c in items[:k + 1])
            segs = self._segments(sub)
            if not self._reachable(segs, lambda s: s.empty_reason is None):
                return ConfigError(f"{items[k][0]}: this constraint leaves no legal mapping ({why})")
            if not self._feasible(segs, sub):
                return ConfigError(f"{items[k][0]}: this constraint leaves no legal mapping ({why})")
        return ConfigError(f"no legal mapping found: {why}")

    def _feasible(self, segs: Mapping[tuple[int, int], Segment], cons: Constraints) -> bool:
        """Whether some segmentation has a legal candidate in every segment (few tries each)."""
        saved_cons = self.cons
        self.cons = cons
        try:
            legal = {}
            for key, seg in segs.items():
                if seg.empty_reason is not None:
                    continue
                legal[key] = any(self.evaluate(seg, *self.emit(seg, ch)) is not None
                                 for ch in itertools.islice(self._start_points(seg), 8))
            return self._reachable(legal, lambda x: x)
        finally:
            self.cons = saved_cons

    # -- the search -------------------------------------------------------------------
    def _start_points(self, seg: Segment) -> Iterable[tuple]:
        """Starting choices: default units/spatial, largest tiles that fit, each stage layout."""
        base = []
        for d in seg.dims:
            if d.key[0] == "map":
                n = d.key[1]
                e, oc = self.c.einsum(n), self.counts[n]
                du = default_unit(self.arch, e, oc)
                ks = [k for k, v in enumerate(d.values) if v["unit"] == du] or [0]
                base.append(min(ks, key=lambda k: (self._spatial_estimate(n, d.values[k]), k)))
            else:
                base.append(0)
        base = self._fit_tiles(seg, base)
        sk = next((k for k, d in enumerate(seg.dims) if d.key == ("stages",)), None)
        if sk is None:
            yield tuple(base)
        else:
            for v in range(len(seg.dims[sk].values)):
                b = list(base)
                b[sk] = v
                yield tuple(b)
        for _ in range(4):
            yield self._random_point(seg)

    def _spatial_estimate(self, n: str, v: Mapping[str, Any]) -> int:
        """Folds x streaming cycles (+ fill/drain) of Einsum n on the whole iteration space."""
        sp = v.get("spatial")
        if not sp:
            return 0
        e = self.c.einsum(n)
        size = {ix: self.c.index_size(ix) for ix in e.iter_indices}
        placed = {**sp.get("rows", {}), **sp.get("cols", {})}
        folds = math.prod(-(-size[ix] // f) for ix, f in placed.items())
        T = math.prod(x for ix, x in size.items() if ix not in placed)
        return folds * T + sum(placed.values())

    def _fit_tiles(self, seg: Segment, choice: list[int]) -> list[int]:
        cap = self.buf.capacity_words
        choice = list(choice)
        tk = [k for k, d in enumerate(seg.dims) if d.key[0] == "tile"]
        if cap is None or not tk:
            return choice
        for _ in range(200):
            e, g = self.emit(seg, tuple(choice))
            tiles = g.get("tiles", {}).get(self.buf.name, {})
            if buffer_words(self.c, self.arch, seg.members, tiles) <= cap:
                break
            # shrink the largest tile that can still shrink
            opts = [k for k in tk if choice[k] < len(seg.dims[k].values) - 1]
            if not opts:
                break
            k = max(opts, key=lambda k: (seg.dims[k].values[choice[k]], -k))
            choice[k] += 2 if choice[k] + 2 < len(seg.dims[k].values) else 1  # halve (skip the 3/4 point)
        return choice

    def _random_point(self, seg: Segment) -> tuple:
        ch = [self.rng.randrange(len(d.values)) for d in seg.dims]
        return tuple(self._fit_tiles(seg, ch))

    def _all_choices(self, seg: Segment) -> Iterable[tuple]:
        return itertools.product(*[range(len(d.values)) for d in seg.dims])

    def run(self) -> "SearchResult":
        t0 = time.perf_counter()
        segs = self._segments(self.cons)
        if not self._reachable(segs, lambda s: s.empty_reason is None):
            raise self._blame(next((s.empty_reason for s in segs.values() if s.empty_reason), "empty space"))
        self.segments = {k: s for k, s in segs.items() if s.empty_reason is None}
        self._seed_hand()
        total_raw = sum(s.raw for s in self.segments.values())
        self.space_size = self._space_size()
        self.exhaustive = total_raw <= self.s.budget
        if self.exhaustive:
            for seg in self.segments.values():
                for ch in self._all_choices(seg):
                    self.eval_choice(seg, ch)
                seg.converged = True
        else:
            self._heuristic()
        front = self._combine()
        if not front:
            raise self._blame(self.last_illegal or "every candidate is illegal")
        res = self._finish(front, time.perf_counter() - t0)
        return res

    def _seed_hand(self) -> None:
        hand = self.problem.hand_mapping
        if hand is None or not self.s.seed_mapping:
            return
        spec = self.cfg.mapping
        atom_start = {}
        k = 0
        for ai, a in enumerate(self.atoms):
            atom_start[a[0]] = ai
        esec = (hand.get("einsums") or {}) if isinstance(hand, dict) else {}
        gsecs = [g for g in (hand.get("groups") or []) if isinstance(g, dict)] if isinstance(hand, dict) else []
        for g in spec.groups:
            i = atom_start.get(g.einsums[0])
            if i is None:
                continue
            j, n = i, 0
            while j < len(self.atoms) and n < len(g.einsums):
                n += len(self.atoms[j])
                j += 1
            seg = self.segments.get((i, j))
            if seg is None or seg.members != g.einsums:
                continue
            raw = next((x for x in gsecs if str(x.get("name")) == g.name), None)
            gd: dict[str, Any] = dict(copy.deepcopy(raw)) if raw is not None else {}
            gd["name"] = seg.name
            gd["einsums"] = list(seg.members)
            einsums = {}
            for n2 in seg.members:
                if self.free[n2]:
                    continue
                d = dict(copy.deepcopy(esec.get(n2) or {}))
                em = spec.einsums[n2]
                d["unit"] = em.unit
                if self.arch.units[em.unit].is_2d and self.counts[n2].counts.get("mac"):
                    d["dataflow"] = em.dataflow
                    d["spatial"] = {"rows": dict(em.rows), "cols": dict(em.cols)}
                    if not em.rows:
                        del d["spatial"]["rows"]
                    if not em.cols:
                        del d["spatial"]["cols"]
                else:
                    d.pop("spatial", None)
                    d.pop("dataflow", None)
                einsums[n2] = d
            if "tiles" not in gd:
                gd["tiles"] = {self.buf.name: {lp.rank: lp.tile for lp in g.loops}}
                gd["loop_order"] = [lp.rank for lp in g.loops]
            if self._violates(seg, einsums, gd):
                continue
            self.evaluate(seg, einsums, gd, origin="seed")

    def _violates(self, seg: Segment, einsums: Mapping[str, Any], g: Mapping[str, Any]) -> bool:
        for n, ec in self.cons.einsums.items():
            if n not in seg.members:
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
            tiles = g.get("tiles", {}).get(self.buf.name, {})
            for r, m in ec.max_tile.items():
                if tiles.get(r, self.c.ranks[r].size) > m:
                    return True
            for r, m in ec.tiles.items():
                if tiles.get(r, self.c.ranks[r].size) != m:
                    return True
            if ec.loop_order is not None:
                lo = g.get("loop_order", [])
                if [r for r in lo if r in ec.loop_order] != [r for r in ec.loop_order if r in lo]:
                    return True
        return False

    def _space_size(self) -> int:
        n = len(self.atoms)
        cnt = [0] * (n + 1)
        cnt[0] = 1
        for j in range(1, n + 1):
            cnt[j] = sum(cnt[i] * self.segments[(i, j)].raw for i in range(j) if (i, j) in self.segments)
        return cnt[n]

    # heuristic ----------------------------------------------------------------------
    def _heuristic(self) -> None:
        segs = sorted(self.segments.values(), key=lambda s: (s.j - s.i, s.i))
        if self.use_analytic:
            from .analytic import rank_candidates
            for seg in segs:
                if seg.raw <= 20000 and sum(not self.free[n] for n in seg.members) == 1:
                    seg.ranked = rank_candidates(self, seg)
        # phase 1: a legal starting point in every segment
        for seg in segs:
            if self.left <= 0:
                break
            if seg.ranked is not None:
                self._ranked_step(seg, 2)
                continue
            for ch in self._start_points(seg):
                if self.left <= 0:
                    break
                if self.eval_choice(seg, ch) is not None:
                    break
            seg.cur = seg.best_choice
        # phase 2: first one descent pass on the most fused group (the whole cascade when it
        # is legal: fusion is where the large wins are, and its starting point is the one
        # that most underestimates it), then the segments that matter most
        whole = max((s for s in segs if s.best is not None and s.ranked is None),
                    key=lambda s: (s.j - s.i, -s.i), default=None)
        if whole is not None and whole.j - whole.i > 1 and self.left > 0:
            self._descent_pass(whole)
        stall = 0
        while self.left > 0 and stall < 3:
            target = self._next_target()
            before = self.evals
            if target is None:
                pending = [s for s in segs if s.best is None and not s.converged]
                if not pending:
                    break
                self._random_tries(pending[0])
            elif target.ranked is not None:
                self._ranked_step(target, 16)
            else:
                self._descent_pass(target)
            stall = stall + 1 if self.evals == before else 0

    def _random_tries(self, seg: Segment) -> None:
        for _ in range(6):
            if self.left <= 0:
                return
            if self.eval_choice(seg, self._random_point(seg)) is not None:
                seg.cur = seg.best_choice
                return
        seg.converged = True

    def _ranked_step(self, seg: Segment, k: int) -> None:
        assert seg.ranked is not None
        done = 0
        while seg.ranked_pos < len(seg.ranked) and done < k and self.left > 0:
            ch = seg.ranked[seg.ranked_pos]
            seg.ranked_pos += 1
            if self.eval_choice(seg, ch) is not None:
                done += 1
        if seg.ranked_pos >= len(seg.ranked):
            seg.converged = True

    def _next_target(self) -> Segment | None:
        n = len(self.atoms)
        inf = float("inf")
        # forward/backward best (cycles, energy) pairs by the objective, greedily
        def val(p):
            return self.objective(math.ceil(p[0]), p[1] + self.arch.leakage_pj_per_cycle * math.ceil(p[0]))
        fwd: list[tuple | None] = [None] * (n + 1)
        fwd[0] = (Fraction(0), 0.0)
        for j in range(1, n + 1):
            for i in range(j):
                s = self.segments.get((i, j))
                if s is None or s.best is None or fwd[i] is None:
                    continue
                p = (fwd[i][0] + s.best.cycles, fwd[i][1] + s.best.energy)
                if fwd[j] is None or val(p) < val(fwd[j]):
                    fwd[j] = p
        bwd: list[tuple | None] = [None] * (n + 1)
        bwd[n] = (Fraction(0), 0.0)
        for i in range(n - 1, -1, -1):
            for j in range(i + 1, n + 1):
                s = self.segments.get((i, j))
                if s is None or s.best is None or bwd[j] is None:
                    continue
                p = (bwd[j][0] + s.best.cycles, bwd[j][1] + s.best.energy)
                if bwd[i] is None or val(p) < val(bwd[i]):
                    bwd[i] = p
        best, best_v = None, inf
        for (i, j), s in sorted(self.segments.items()):
            if s.converged or s.best is None or fwd[i] is None or bwd[j] is None:
                continue
            p = (fwd[i][0] + s.best.cycles + bwd[j][0], fwd[i][1] + s.best.energy + bwd[j][1])
            v = val(p)
            if v < best_v:
                best, best_v = s, v
        return best

    def _descent_pass(self, seg: Segment) -> None:
        """One sweep of coordinate descent from ``seg.cur`` (every value of every choice,
        coordinates in a seeded random order); a sweep that gains nothing restarts from a
        random point (three times) and then marks the segment converged."""
        if seg.cur is None:
            seg.cur = seg.best_choice
        if seg.cur is None or not seg.dims:
            seg.converged = True
            return
        cur = list(seg.cur)
        c0 = self.eval_choice(seg, tuple(cur))
        cur_v = self.proxy(c0) if c0 is not None else float("inf")
        start = cur_v
        order = list(range(len(seg.dims)))
        self.rng.shuffle(order)
        for k in order:
            best_v, best_val = cur_v, cur[k]
            for v in range(len(seg.dims[k].values)):
                if v == cur[k]:
                    continue
                if self.left <= 0:
                    break
                ch = list(cur)
                ch[k] = v
                c = self.eval_choice(seg, tuple(ch))
                if c is not None and self.proxy(c) < best_v:
                    best_v, best_val = self.proxy(c), v
            cur[k], cur_v = best_val, best_v
        if cur_v < start:
            seg.cur = tuple(cur)
            return
        if seg.restarts < 3 and self.left > 0:
            seg.restarts += 1
            for _ in range(6):
                ch = self._random_point(seg)
                if self.eval_choice(seg, ch) is not None:
                    seg.cur = ch
                    return
        seg.converged = True

    # -- combination ------------------------------------------------------------------
    def _combine(self) -> list[tuple[Fraction, float, tuple]]:
        n = len(self.atoms)
        fronts: list[list[tuple[Fraction, float, tuple]]] = [[] for _ in range(n + 1)]
        fronts[0] = [(Fraction(0), 0.0, ())]
        for j in range(1, n + 1):
            pts = []
            for i in range(j):
                s = self.segments.get((i, j))
                if s is None or not s.front or not fronts[i]:
                    continue
                for c0, e0, path in fronts[i]:
                    for cand in s.front:
                        pts.append((c0 + cand.cycles, e0 + cand.energy, path + (cand,)))
            if j == n:  # every combination reaching the end: the cloud behind the front
                step = max(1, len(pts) // 2000)
                leak = self.arch.leakage_pj_per_cycle
                self.cloud = [(math.ceil(p[0]) / self.arch.clock_hz, p[1] + leak * math.ceil(p[0]))
                              for p in pts[::step]]
            fronts[j] = _thin(_pareto(pts, key=lambda p: (p[0], p[1])), 256, self)
        return fronts[n]

    def _finish(self, front, seconds: float) -> "SearchResult":
        leak = self.arch.leakage_pj_per_cycle

        def fig(p):
            cyc = math.ceil(p[0])
            return cyc, p[1] + leak * cyc
        pts = sorted(front, key=lambda p: (self.objective(*fig(p)), p[0]))
        from sim.results import simulate
        best = bsec = bres = None
        for p in pts:  # the best point whose whole mapping validates
            sec = assemble(self.c, p[2])
            try:
                cfg = self.config_for(sec)
            except ConfigError as exc:
                self.illegal += 1
                self.last_illegal = exc.message
                continue
            best, bsec, bres = p, sec, simulate(cfg)
            break
        if best is None:
            raise self._blame(self.last_illegal or "every candidate is illegal")
        checked = []
        for p in sorted(front, key=lambda p: p[0])[:40]:
            if p is best:
                checked.append((p, bsec, bres))
                continue
            sec = assemble(self.c, p[2])
            try:
                cfg = self.config_for(sec)
            except ConfigError:
                continue
            checked.append((p, sec, simulate(cfg)))
        if not any(p is best for p, _, _ in checked):
            checked.append((best, bsec, bres))
            checked.sort(key=lambda x: x[0][0])
        hand = None
        if self.problem.hand_mapping is not None:
            hand = simulate(self.cfg)
        return SearchResult(
            objective=self.s.objective, budget=self.s.budget, seed=self.s.seed,
            exhaustive=self.exhaustive, space_size=self.space_size, evaluations=self.evals,
            pruned=self.pruned, illegal=self.illegal, seconds=seconds, mapping=bsec, result=bres,
            predicted={"cycles": fig(best)[0], "energy_pj": fig(best)[1]},
            pareto=[(sec, r) for _, sec, r in checked], hand_result=hand,
            seeded=any(c.origin == "seed" for c in best[2]),
            segments=len(self.segments), atoms=[list(a) for a in self.atoms],
            workload=self.c.name, arch=self.arch.name, instances=self.cfg.instances, cloud=self.cloud)

    def config_for(self, sec: Mapping[str, Any]) -> Config:
        """Validate an assembled mapping section with :func:`mapping.spec.mapping_from_data`."""
        data = json.loads(json.dumps(sec))
        m = mapping_from_data(data, _SRC, ("mapping",), self.c, self.arch, self.counts)
        return Config(self.c, self.arch, m, self.cfg.instances, self.counts, self.cfg.source)


def _first_where(ec: EinsumConstraint | None, keys: tuple[str, ...]) -> str:
    if ec is None:
        return "the arch (no unit can run it)"
    for k in keys:
        if k in ec.where:
            return ec.where[k]
    return "the arch (no unit can run it)"


def _pareto(items: list, key: Callable[[Any], tuple]) -> list:
    items = sorted(items, key=key)
    out = []
    best_e = float("inf")
    for it in items:
        k = key(it)
        if k[1] < best_e:
            out.append(it)
            best_e = k[1]
    return out


def _thin(front: list, cap: int, s: Searcher) -> list:
    if len(front) <= cap:
        return front
    leak = s.arch.leakage_pj_per_cycle
    keep = {0, len(front) - 1}
    best = min(range(len(front)), key=lambda k: s.objective(math.ceil(front[k][0]),
                                                             front[k][1] + leak * math.ceil(front[k][0])))
    keep.add(best)
    step = len(front) / (cap - 3)
    keep.update(int(k * step) for k in range(cap - 3))
    return [front[k] for k in sorted(keep)]


# ----------------------------------------------------------------------------------
def simulate_group(cfg: Config, emaps: Mapping[str, EinsumMap], group: Group) -> tuple[Fraction, float]:
    """(cycles as an exact fraction, energy in pJ without leakage) of one group run alone."""
    from sim.engine import GroupSim, Sim
    from sim.results import collect

    c = cfg.cascade
    rest = tuple(n for n in (e.name for e in c.einsums) if n not in group.einsums)
    groups = (group,) + ((Group("_rest", rest, (), tuple((n,) for n in rest), MappingProxyType({}),
                                group.buffer),) if rest else ())
    sub = Config(c, cfg.arch, MappingSpec(MappingProxyType(dict(emaps)), groups), cfg.instances, cfg.counts)
    sim = Sim(sub, fast=True)
    GroupSim(sim, group).run()
    end = max(sim.state)
    sim.group_cycles[group.name] = end
    v = sim.counters.v
    sim.group_dram[group.name] = (sum(x for k, x in v.items() if k[0] == "dram_read"),
                                  sum(x for k, x in v.items() if k[0] == "dram_write"))
    if rest:
        sim.group_cycles["_rest"] = Fraction(0)
        sim.group_dram["_rest"] = (0, 0)
    if end == 0:
        return Fraction(0), 0.0
    res = collect(sub, sim)
    return end, res["energy_pj"]["total"] - res["energy_pj"]["leakage"]


def assemble(c: Cascade, cands: Iterable[Cand]) -> dict[str, Any]:
    """A ``mapping:`` section from one candidate per group."""
    einsums: dict[str, Any] = {}
    groups = []
    for cand in cands:
        for n, d in cand.einsums.items():
            einsums[n] = copy.deepcopy(dict(d))
        groups.append(copy.deepcopy(dict(cand.group)))
    order = [e.name for e in c.einsums]
    return {"version": 1, "einsums": {n: einsums[n] for n in order if n in einsums}, "groups": groups}


def _flow(obj: Any) -> Any:
    """Nested data with short lists/dicts in YAML flow style."""
    class Flow(dict):
        pass

    class FlowList(list):
        pass

    def flow(x: Any) -> Any:
        if isinstance(x, dict):
            return Flow({k: flow(v) for k, v in x.items()})
        if isinstance(x, list):
            return FlowList([flow(v) for v in x])
        return x

    def conv(x: Any, depth: int) -> Any:
        # mapping -> {einsums: {NAME: flow}, groups: [{key: flow}]}
        m = dict(x["mapping"])
        if "einsums" in m:
            m["einsums"] = {k: flow(v) for k, v in m["einsums"].items()}
        if "groups" in m:
            m["groups"] = [{k: flow(v) for k, v in g.items()} for g in m["groups"]]
        return {"mapping": m}

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(),
                                                                 flow_style=True))
    Dumper.add_representer(FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v,
                                                                      flow_style=True))
    return conv(obj, 0), Dumper


def mapping_yaml(section: Mapping[str, Any], header: str | None = None) -> str:
    """The mapping as a YAML document ``mapping: ...`` to paste into a config."""
    data, dumper = _flow({"mapping": json.loads(json.dumps(section))})
    text = yaml.dump(data, Dumper=dumper, sort_keys=False, width=110, default_flow_style=False)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


# ----------------------------------------------------------------------------------
@dataclass
class SearchResult:
    objective: str
    budget: int
    seed: int
    exhaustive: bool
    space_size: int
    evaluations: int
    pruned: int
    illegal: int
    seconds: float
    mapping: dict[str, Any]
    result: dict[str, Any]  # full simulation of the best mapping
    predicted: dict[str, Any]
    pareto: list[tuple[dict[str, Any], dict[str, Any]]]  # (mapping, full simulation), by latency
    hand_result: dict[str, Any] | None
    seeded: bool
    segments: int
    atoms: list[list[str]]
    workload: str
    arch: str
    instances: int
    cloud: list[tuple[float, float]] = field(default_factory=list)  # other mappings (predicted)

    @property
    def figures(self) -> dict[str, Any]:
        return figures(self.result)

    def summary(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "arch": self.arch, "instances": self.instances,
            "objective": self.objective, "budget": self.budget, "seed": self.seed,
            "exhaustive": self.exhaustive, "space_size": self.space_size, "evaluations": self.evaluations,
            "pruned": self.pruned, "illegal": self.illegal, "seconds": self.seconds,
            "evaluations_per_s": self.evaluations / self.seconds if self.seconds else 0.0,
            "segments": self.segments, "atoms": self.atoms, "seeded_from_hand_mapping": self.seeded,
            "best": {**self.figures, "mapping": self.mapping},
            "hand": figures(self.hand_result) if self.hand_result is not None else None,
            "pareto": [{**figures(r), "groups": [g["name"] for g in m["groups"]]} for m, r in self.pareto],
        }


def figures(res: Mapping[str, Any]) -> dict[str, Any]:
    return {"cycles": int(res["cycles"]), "latency_s": res["latency_s"], "energy_pj": res["energy_pj"]["total"],
            "edp": res["edp"], "utilization": {u: d["pe_util"] for u, d in res["utilization"].items()}}


def search(problem: SearchProblem, *, progress: Callable[[int, int], None] | None = None,
           use_analytic: bool = True) -> SearchResult:
    """Run the search; raises ConfigError when no legal mapping satisfies the constraints."""
    return Searcher(problem, progress=progress, use_analytic=use_analytic).run()


__all__ = ["OBJECTIVES", "SearchSettings", "SearchProblem", "SearchResult", "Constraints",
           "load_search_config", "problem_from_sections", "parse_search_section", "search",
           "mapping_yaml", "assemble", "simulate_group", "figures"]
