"""The sweep point evaluator: one design point -> its figures (a plain, picklable function).

:func:`evaluate_point` applies a :class:`~einarray.sweep.PointTask`'s overrides to the
base config data, builds the config with :func:`mapping.spec.config_from_sections` (the
base file's ``einsum``/``workload``, ``arch`` and ``mapping`` sections, each inline or
included relative to the base file), and either simulates the config's mapping with
:func:`sim.results.simulate` or, when the sweep has a ``search:`` key (``task.search``),
runs :func:`einarray.search.search` and reports the best mapping's figures. The base
file's own ``search:`` section (constraints, defaults) applies to that search; the
sweep's ``search: {objective, budget, seed}`` overrides its keys. The base file's
``mapping:`` seeds the search (dropped if an override makes it illegal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from einsum.errors import ConfigError
from einsum.yamlsrc import Source, load as load_yaml

from .sweep import PointTask, apply_overrides

SECTIONS = ("einsum", "workload", "arch", "mapping")


def _metrics(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cycles": int(res["cycles"]), "latency_s": res["latency_s"], "energy_pj": res["energy_pj"]["total"],
        "edp": res["edp"], "instances": res["instances"],
    }
    for u, d in res["utilization"].items():
        out[f"utilization_{u}"] = d["pe_util"]
        out[f"busy_{u}"] = d["busy"]
    dram = next(iter(res["traffic"].values()))
    out["dram_bytes"] = dram["bytes"]
    return out


def evaluate_point(task: PointTask) -> dict[str, Any]:
    """Figures of one sweep point: latency_s, energy_pj, edp, cycles, utilization_<unit>,
    busy_<unit>, dram_bytes (and, when searched, the search's statistics and mapping)."""
    from mapping.spec import load_section

    data = apply_overrides(task.base_data, task.overrides)
    try:  # the base file's line numbers, for located errors (overrides keep the paths)
        _, src = load_yaml(task.base_file)
    except ConfigError:
        src = Source(task.base_file)
    base_dir = Path(task.base_dir)
    if not isinstance(data, dict):
        raise ConfigError("the base config must be a YAML mapping", task.base_file)
    sections = {}
    for k in SECTIONS:
        s = load_section(data, src, k, base_dir)
        if s is not None:
            sections[k] = s
    search_sec = data.get("search")
    if task.search is None:
        from mapping.spec import config_from_sections
        from sim.results import simulate

        cfg = config_from_sections(sections, src, base_dir, source=task.base_file)
        return _metrics(simulate(cfg))
    from .search import mapping_yaml, problem_from_sections, search

    if search_sec is not None and not isinstance(search_sec, dict):
        raise src.error(("search",), "expected a mapping like {objective: edp, budget: 400}")
    merged = dict(search_sec or {})
    merged.update(dict(task.search))
    problem = problem_from_sections(sections, src, base_dir, merged, task.base_file)
    res = search(problem)
    out = _metrics(res.result)
    out.update({"search_objective": res.objective, "search_evaluations": res.evaluations,
                "search_exhaustive": res.exhaustive, "search_seconds": res.seconds,
                "search_seeded": res.seeded, "mapping_yaml": mapping_yaml(res.mapping)})
    return out


__all__ = ["evaluate_point"]
