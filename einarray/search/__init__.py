"""Mapping search: find a good legal mapping of a cascade onto an architecture by itself.

``einarray search CONFIG.yaml`` reads a simulate config (``einsum:`` or ``workload:``,
``arch:``, optionally a hand-written ``mapping:`` and a ``search:`` section) and returns
the best mapping it finds as a ``mapping:`` section to paste, with its figures and the
Pareto set of latency against energy.

The package, by responsibility:

* :mod:`.constraints`: the ``search:`` section (objective, budget, seed, constraints), its
  validation and the :class:`SearchProblem`;
* :mod:`.space`: what a mapping can be (atoms, segments, choices per segment) and how a
  choice becomes a group's YAML sections;
* :mod:`.model`: what a candidate costs (validated and costed alone by the caller's
  :class:`Evaluator`, cached), the ``mapping:`` section of a combination and the
  :class:`SearchResult`;
* :mod:`.strategies`: the :class:`Searcher` (exhaustive where the budget allows, else
  seeded starting points, coordinate descent and restarts) and the combination of the
  segments' Pareto fronts;
* here: loading a search config, :func:`search` and :func:`mapping_yaml`.

The package imports nothing from :mod:`sim` (as :mod:`mapping.nest_search` takes its
``evaluate``): the caller passes an :class:`Evaluator` whose callables simulate a candidate
group alone, simulate a mapping found in full and (optionally) rank a segment's choices by a
closed form; the app's is :data:`einarray.search_eval.SIMULATOR`.

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
:class:`Evaluator`, :class:`SearchSettings`, :data:`OBJECTIVES`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from einsum.errors import ConfigError, format_ypath
from einsum.yamlsrc import Source, YPath
from einsum.yamlsrc import load as load_yaml
from mapping.config import config_from_sections, load_section

from .constraints import OBJECTIVES, Constraints, SearchProblem, SearchSettings, parse_search_section
from .model import Cand, Evaluator, SearchResult, assemble, figures
from .strategies import Searcher

CONFIG_KEYS = ("einsum", "workload", "arch", "mapping", "description", "search")


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


def search(problem: SearchProblem, evaluator: Evaluator, *, progress: Callable[[int, int], None] | None = None,
           use_analytic: bool = True, full_results: bool = True) -> SearchResult:
    """Run the search, costing candidates with ``evaluator`` (the app's:
    :data:`einarray.search_eval.SIMULATOR`); raises ConfigError when no legal mapping
    satisfies the constraints.

    ``full_results=False`` simulates in full only the best mapping: the result's ``pareto``
    holds just that one and ``hand_result`` is None (what a run needs of a layer's search:
    its mapping; the search's own report shows the Pareto points)."""
    return Searcher(problem, evaluator, progress=progress, use_analytic=use_analytic,
                    full_results=full_results).run()


__all__ = ["OBJECTIVES", "SearchSettings", "SearchProblem", "SearchResult", "Constraints", "Searcher", "Cand",
           "Evaluator", "load_search_config", "problem_from_sections", "parse_search_section", "search",
           "mapping_yaml", "assemble", "figures"]
