"""The Python API: what the CLI does, as calls that return typed results.

``import einarray`` exposes these names (loaded on first use, so the import stays cheap)::

    load_config(path)            a run config -> RunSpec (one layer per cascade or model layer)
    run(config)                  simulate every layer -> RunResult (.summary, .layers, .to_json())
    simulate(config)             one simulate config -> SimResult (the CLI's simulate --json)
    search(config)               search the mapping of one cascade -> einarray.search.SearchResult
    evaluate(cascade, inputs)    the NumPy reference of a cascade -> {tensor name: array}
    Cascade.from_yaml(source)    load a cascade file or library cascade by name

Errors in a config are :class:`einsum.errors.ConfigError` naming file, line and YAML path,
as the CLI prints them. docs/api.md has one example per name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from einsum.cascade import Cascade

if TYPE_CHECKING:
    import numpy as np

    from einarray.flow import RunSpec
    from einarray.search.model import SearchResult
    from mapping.spec import Config


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


def _json(data: Mapping[str, Any]) -> str:
    from einarray.report import dumps

    return dumps(dict(data))


@dataclass(frozen=True)
class LayerResult:
    """One layer of a run (a row of the run's ``layers.csv``); ``repeat`` layers of this
    shape per inference, simulated as ``instances`` independent repetitions."""

    name: str
    cascade: str
    repeat: int
    instances: int
    cycles: int
    latency_s: float
    energy_pj: float
    edp: float
    dram_bytes: float
    utilization: Mapping[str, float]  # busy PE-cycles / (PEs x all cycles), per unit
    mapping_origin: str  # default | searched | given
    data: Mapping[str, Any]  # the layer's full record in report.json

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> LayerResult:
        return cls(name=d["name"], cascade=d["cascade"], repeat=int(d["repeat"]), instances=int(d["instances"]),
                   cycles=int(d["cycles"]), latency_s=float(d["latency_s"]), energy_pj=float(d["energy_pj"]),
                   edp=float(d["edp"]), dram_bytes=float(d["dram_bytes"]),
                   utilization=_frozen(d["utilization"]), mapping_origin=str(d.get("mapping_origin", "")),
                   data=_frozen(d))


@dataclass(frozen=True)
class Summary:
    """The totals of a run over its layers, per batch (``batch`` inferences)."""

    cycles: int
    latency_s: float
    energy_pj: float
    edp: float
    throughput_inf_per_s: float
    energy_per_inference_pj: float
    average_power_w: float
    dram_bytes: float
    macs: int
    utilization: Mapping[str, float]
    binding: str  # which unit ran which Einsums (one line)


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` returns: the summary, the layers and the data of ``report.json``."""

    name: str
    arch: str
    batch: int
    summary: Summary
    layers: tuple[LayerResult, ...]
    report: Mapping[str, Any]  # everything einarray run writes to report.json

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> RunResult:
        """The result of a run from its ``report.json`` data (``json.load`` of the file, or
        what :func:`einarray.flow.run` returns)."""
        s = report["summary"]
        summary = Summary(cycles=int(report["cycles"]), latency_s=float(report["latency_s"]),
                          energy_pj=float(report["energy_pj"]["total"]), edp=float(report["edp"]),
                          throughput_inf_per_s=float(s["throughput_inf_per_s"]),
                          energy_per_inference_pj=float(s["energy_per_inference_pj"]),
                          average_power_w=float(s["average_power_w"]), dram_bytes=float(s["dram_bytes"]),
                          macs=int(s["macs"]), utilization=_frozen(s["utilization"]),
                          binding=str(s.get("binding", "")))
        return cls(name=report["name"], arch=report["arch"]["name"], batch=int(report["batch"]),
                   summary=summary, layers=tuple(LayerResult._from(d) for d in report["layers"]),
                   report=_frozen(report))

    def to_json(self) -> str:
        """The run as JSON, the same text ``einarray run`` writes to ``report.json``."""
        return _json(self.report)


@dataclass(frozen=True)
class SimResult:
    """What :func:`simulate` returns: the headline figures and the full result."""

    workload: str
    arch: str
    cycles: int
    latency_s: float
    energy_pj: float
    edp: float
    mapping_origin: str  # default | searched | given
    data: Mapping[str, Any]  # the full result, as ``einarray simulate --json`` prints it

    def to_json(self) -> str:
        return _json(self.data)


def load_config(path: str | Path, *, ranks: Mapping[str, int] | None = None,
                sets: list[str] | None = None) -> RunSpec:
    """Load and validate a run config: a model (``workload: {model: ...}``) or one cascade
    (``workload: {cascade: ...}`` or ``einsum:``) with ``arch:`` and optional ``mapping:``,
    ``include:``, ``search:``. ``ranks`` overrides rank sizes in every layer that has them,
    ``sets`` are ``SECTION.key=VALUE`` overrides as for ``einarray run --set``.
    Each ``RunSpec.layers[i].config`` is a config :func:`simulate` takes."""
    from einarray.flow import load_run

    return load_run(path, ranks=ranks, sets=sets)


def run(config: str | Path | RunSpec, *, ranks: Mapping[str, int] | None = None,
        sets: list[str] | None = None, progress: bool = False) -> RunResult:
    """Simulate every layer of a run config (a path, or what :func:`load_config` returned)
    as ``einarray run`` does, without writing files; layers without a mapping get the
    derived default, and a ``search:`` section searches each distinct layer once.
    ``progress`` draws the CLI's bars on a terminal."""
    from einarray.flow import RunSpec, run as run_flow

    if isinstance(config, RunSpec):
        if ranks or sets:
            raise TypeError("ranks and sets apply when loading: pass a path, or load_config(path, ranks=...)")
        spec = config
    else:
        spec = load_config(config, ranks=ranks, sets=sets)
    return RunResult.from_report(run_flow(spec, progress=progress))


def simulate(config: str | Path | Config, *, ranks: Mapping[str, int] | None = None,
             sets: list[str] | None = None) -> SimResult:
    """Simulate one config (einsum or workload, arch and optional mapping sections; a path
    or a :class:`mapping.spec.Config`) as ``einarray simulate`` does: without a mapping the
    derived default runs."""
    from einarray.default_mapping import derive_default, mapping_policy
    from mapping.config import load_config as load_sim_config
    from mapping.spec import Config
    from sim.results import simulate as simulate_config

    if isinstance(config, Config):
        if ranks or sets:
            raise TypeError("ranks and sets apply when loading: pass a path")
        cfg = config
    else:
        cfg = load_sim_config(config, ranks=ranks, sets=sets)
    cfg, choice = derive_default(cfg)
    res = simulate_config(cfg)
    res["mapping_origin"] = cfg.mapping_origin
    res["mapping_policy"] = mapping_policy(cfg.mapping_origin, choice.as_dict() if choice else None)
    return SimResult(workload=cfg.cascade.name, arch=cfg.arch.name, cycles=int(res["cycles"]),
                     latency_s=float(res["latency_s"]), energy_pj=float(res["energy_pj"]["total"]),
                     edp=float(res["edp"]), mapping_origin=cfg.mapping_origin,
                     data=_frozen(json.loads(_json(res))))


def search(config: str | Path, *, objective: str | None = None, budget: int | None = None,
           seed: int | None = None, sets: list[str] | None = None) -> SearchResult:
    """Search the mapping of one cascade (a config with einsum or workload, arch, optional
    mapping and ``search:`` sections) as ``einarray search`` does; the keywords override the
    search section. For every layer of a model, use :func:`run` with a ``search:`` section."""
    from einarray.search import load_search_config, search as run_search
    from einarray.search_eval import SIMULATOR

    return run_search(load_search_config(config, objective=objective, budget=budget, seed=seed, sets=sets),
                      SIMULATOR)


def evaluate(cascade: str | Path | Cascade, inputs: Mapping[str, Any] | None = None, *,
             ranks: Mapping[str, int] | None = None, params: Mapping[str, float] | None = None,
             seed: int = 0) -> dict[str, np.ndarray]:
    """The NumPy reference of a cascade (a :class:`Cascade`, a file or a library name) on
    ``inputs`` ({input name: array}; default: random inputs drawn with ``seed``), as
    ``einarray eval`` does: rank sizes follow the arrays' shapes when the cascade is given
    by name or file (``ranks`` win). Returns every tensor, outputs included."""
    from einsum.interp import evaluate as evaluate_cascade, random_inputs
    from einsum.load import load_cascade
    from einsum.shapes import fit_to_inputs

    if isinstance(cascade, Cascade):
        if ranks or params:
            raise TypeError("ranks and params apply when loading: pass a file or library name")
        c = cascade
    elif inputs is None:
        c = load_cascade(cascade, ranks=ranks, params=params)
    else:
        c = fit_to_inputs(lambda r: load_cascade(cascade, ranks=r, params=params), dict(ranks or {}), inputs)
    if inputs is None:
        inputs = random_inputs(c, seed)
    return evaluate_cascade(c, inputs, file=None)


__all__ = ["Cascade", "LayerResult", "RunResult", "SimResult", "Summary", "evaluate", "load_config", "run",
           "search", "simulate"]
