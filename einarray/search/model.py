"""The cost model of :mod:`einarray.search`: what a candidate costs, and the result.

The simulator runs groups one after another from a common start, so a mapping's cycles
and energy are sums over its groups. Each candidate group is costed alone by the caller's
:class:`Evaluator` (the search imports nothing from :mod:`sim`; the app passes
:data:`einarray.search_eval.SIMULATOR`, which runs the simulator's group loop and result
collection), and the best partition is found by dynamic programming over segments keeping,
per prefix, the Pareto set of (cycles, energy): exact for latency, energy and EDP (both
increase with either figure).

A group candidate is first checked cheaply (its step footprint must fit the buffer), then
validated as :mod:`mapping.groups` validates a group (:func:`mapping.groups.make_group`; a
:class:`~einsum.errors.ConfigError` makes it illegal) and costed alone
(:attr:`Evaluator.group`); results are cached by the candidate's sections.
:meth:`CandidateModel.proxy` is the objective of a candidate's (cycles, energy) with
leakage; :func:`assemble` makes a ``mapping:`` section of one candidate per group, and
:class:`SearchResult` holds the full simulations (:attr:`Evaluator.full`) of the mappings found.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from einsum.cascade import Cascade
from einsum.errors import ConfigError
from einsum.yamlsrc import Source
from mapping.defaults import default_spatial
from mapping.groups import make_group
from mapping.loader import mapping_from_data
from mapping.spec import Config, EinsumMap, Group
from mapping.footprint import buffer_words

from .constraints import SearchProblem
from .space import SearchSpace, Segment

_SRC = Source("<search candidate>")


@dataclass(frozen=True)
class Evaluator:
    """What the search asks of its caller, so that it need not import the simulator.

    ``group(cfg, emaps, group)``: (cycles as an exact fraction, energy in pJ without leakage)
    of one validated candidate group of ``cfg``'s cascade run alone, the other Einsums mapped
    by ``emaps``; ``full(cfg)``: the full result of a mapping found (the dict of
    :func:`sim.results.simulate`: ``cycles``, ``latency_s``, ``energy_pj``, ``edp``,
    ``utilization``, ...); ``rank(searcher, segment)``: optional, every choice of a
    single-Einsum segment best first by a cheap model, or None where it does not apply
    (used unless ``use_analytic=False``)."""

    group: Callable[[Config, Mapping[str, EinsumMap], Group], tuple[Fraction, float]]
    full: Callable[[Config], dict[str, Any]]
    rank: Callable[[Any, Segment], list[tuple] | None] | None = None


@dataclass(frozen=True)
class Cand:
    cycles: Fraction
    energy: float  # pJ without leakage
    einsums: Mapping[str, Any]  # YAML sections of the members
    group: Mapping[str, Any]  # YAML group section
    origin: str = "search"  # search | seed


class CandidateModel(SearchSpace):
    """A :class:`~.space.SearchSpace` whose candidates are costed by ``evaluator.group``
    (counted against the budget, cached, kept per segment as its best and its Pareto front)."""

    def __init__(self, problem: SearchProblem, evaluator: Evaluator, *,
                 progress: Callable[[int, int], None] | None = None):
        super().__init__(problem)
        self.evaluator = evaluator
        self.progress = progress
        self.evals = 0  # simulated candidates
        self.pruned = 0  # dropped by cheap checks
        self.illegal = 0  # rejected by mapping validation
        self.cache: dict[str, Cand | None] = {}
        self.last_illegal: str | None = None

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
        """Cost one group candidate (cached); None when pruned or illegal."""
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
        cyc, energy = self.evaluator.group(self.cfg, emaps, group)
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

    def config_for(self, sec: Mapping[str, Any]) -> Config:
        """Validate an assembled mapping section with :func:`mapping.loader.mapping_from_data`."""
        data = json.loads(json.dumps(sec))
        m = mapping_from_data(data, _SRC, ("mapping",), self.c, self.arch, self.counts)
        return Config(self.c, self.arch, m, self.cfg.instances, self.counts, self.cfg.source,
                      parallel=self.cfg.parallel)


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


def _thin(front: list, cap: int, s: CandidateModel) -> list:
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
