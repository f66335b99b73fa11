"""One sweep point: its config, its identity and its figures (plain, picklable functions).

A sweep's base is any config ``einarray run`` or ``einarray simulate`` accepts: sections
inline or included (``include:``, ``arch: NAME``, a path), one cascade (``workload:
{cascade: ...}`` or ``einsum:``) or a whole model (``workload: {model: ...}``).
:func:`resolve_base` loads it once, with its includes and shipped names resolved, into
sections; a grid key ``SECTION.path`` (``arch.array2d.rows``, ``workload.ranks.M``) then
sets a value inside one section, exactly like ``einarray run --set SECTION.path=VALUE``.
A key naming a whole section with a string (``arch: [fusemax, systolic-16x16]``) loads
that section by name or path, as in a config file.

:func:`prepare` builds one point (the same loaders as ``einarray run``) without simulating
it; the sweep prepares every point before the first one runs, so a bad value is reported
up front. :func:`evaluate_point` then runs it: :func:`einarray.flow.run` of the point's
run config (every layer; a ``search:`` section, the base's or the sweep's, maps every
layer by search, as in ``run``), or for one cascade with a search, :func:`einarray.search.search`
seeded with the base's ``mapping:`` (dropped if an override makes it illegal), reporting
the search's statistics and the mapping found. The sweep's ``search: {objective, budget,
seed}`` overrides the keys of the base's ``search:`` section.

:func:`config_digest` is what a point's result depends on besides its overrides: the
resolved sections and the content of every file they name (cascades, model presets), so
a resumed sweep never reuses a result computed from another config.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from einsum.yamlsrc import Source, YPath, load as load_yaml

Sections = dict[str, tuple[Any, Source, YPath]]
NAMED_SECTIONS = ("einsum", "workload", "arch", "mapping")  # a string value loads the section


@dataclass(frozen=True)
class PointTask:
    """Everything one sweep point needs; picklable, a plain function argument."""

    index: int
    point_id: str  # identity: parameters, config digest and einarray version
    overrides: tuple[tuple[str, Any], ...]
    sections: Mapping[str, tuple[Any, Source, YPath]]  # the base, includes and names resolved
    source: Source  # the base file's own Source (errors about the whole config)
    base_file: str
    search: Mapping[str, Any] | None = None
    evaluator: str = "einarray.points:evaluate_point"
    params_id: str = ""  # the overrides alone
    config_digest: str = ""  # everything but the overrides and the version
    version: str = ""

    def point_sections(self) -> Sections:
        """The base sections with this point's overrides applied (copies)."""
        return apply_section_overrides(self.sections, self.overrides, self.source, Path(self.base_file).parent)

    def data(self) -> dict[str, Any]:
        """This point's config as plain data ``{section: value}``."""
        return {k: v[0] for k, v in self.point_sections().items()}


def resolve_base(path: str | Path) -> tuple[Sections, Source]:
    """A run/simulate config with its includes and shipped names resolved into sections."""
    from .flow import _load_tree

    p = Path(path)
    sections, src, _ = _load_tree(p, (p.resolve(),))
    return sections, src


def _set(cur: Any, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    last = parts[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value


def apply_section_overrides(sections: Mapping[str, tuple[Any, Source, YPath]],
                            overrides: Iterable[tuple[str, Any]], src: Source, base_dir: Path) -> Sections:
    """Copies of ``sections`` with each ``SECTION.path`` set (``--set`` semantics)."""
    from mapping.config import load_section

    out: Sections = {k: (copy.deepcopy(d), s, p) for k, (d, s, p) in sections.items()}
    for dotted, value in overrides:
        sec, _, rest = dotted.partition(".")
        d, s, p = out[sec]
        if rest:
            _set(d, rest.split("."), copy.deepcopy(value))
        elif isinstance(value, str) and sec in NAMED_SECTIONS:
            loaded = load_section({sec: value}, src, sec, base_dir)
            assert loaded is not None
            out[sec] = loaded
        else:
            out[sec] = (copy.deepcopy(value), s, p)
    return out


def _merged_search(task: PointTask, secs: Sections) -> Sections:
    if task.search is None:
        return secs
    base = secs.get("search", (None, task.source, ("search",)))
    merged = dict(base[0]) if isinstance(base[0], dict) else {}
    merged.update(dict(task.search))
    return {**secs, "search": (merged, base[1], ("search",))}


def prepare(task: PointTask) -> tuple[str, Any]:
    """The point built and validated, nothing simulated: ``("search", SearchProblem)`` for
    one cascade with a search, else ``("run", RunSpec)``. Raises ConfigError."""
    from .flow import _from_sections

    secs = _merged_search(task, task.point_sections())
    p = Path(task.base_file)
    wl = secs.get("workload")
    model = wl is not None and isinstance(wl[0], dict) and "model" in wl[0]
    if "search" in secs and not model:
        from .search import problem_from_sections

        ssec, ssrc, sp = secs["search"]
        if not isinstance(ssec, dict):
            raise ssrc.error(sp, "expected a mapping like {objective: edp, budget: 400}")
        rest = {k: v for k, v in secs.items() if k in NAMED_SECTIONS}
        return "search", problem_from_sections(rest, task.source, p.parent, ssec, str(p), search_src=ssrc)
    return "run", _from_sections(p, secs, task.source, {}, None, None)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def _file_digest(path: str, cache: dict[str, str]) -> str:
    if path not in cache:
        if Path(path).suffix.lower() in (".onnx", ".json", ".csv"):  # an imported model: its bytes
            cache[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            return cache[path]
        data, _ = load_yaml(path)
        cache[path] = hashlib.sha256(_canonical(data).encode()).hexdigest()
    return cache[path]


def named_files(task: PointTask, built: tuple[str, Any]) -> list[str]:
    """Files a point's result depends on beyond its sections: the cascades it runs (library or
    user files) and, for a model, the model preset."""
    kind, obj = built
    configs = [obj.config] if kind == "search" else [lay.config for lay in obj.layers]
    files = {c.cascade.source for c in configs if c.cascade.source}
    wl = task.point_sections().get("workload")
    if wl is not None and isinstance(wl[0], dict) and isinstance(wl[0].get("model"), str):
        from models import resolve

        cand = Path(task.base_file).parent / wl[0]["model"]
        files.add(str(cand if cand.is_file() else resolve(wl[0]["model"])))
    for k in ("onnx", "hf", "topology"):  # an imported model's file
        if wl is not None and isinstance(wl[0], dict) and isinstance(wl[0].get(k), str):
            files.add(str(Path(task.base_file).parent / wl[0][k]))
    return sorted(files)


def config_digest(task: PointTask, built: tuple[str, Any], cache: dict[str, str] | None = None) -> str:
    """A hash of everything but the overrides and the einarray version that determines the
    point's result: its resolved sections, the files they name (by content, so comments,
    formatting and the install location do not count), the sweep's search and evaluator."""
    cache = {} if cache is None else cache
    blob = {
        "sections": {k: v[0] for k, v in task.point_sections().items()},
        "files": sorted(_file_digest(f, cache) for f in named_files(task, built)),
        "search": dict(task.search) if task.search is not None else None,
        "evaluator": task.evaluator,
    }
    return hashlib.sha256(_canonical(blob).encode()).hexdigest()[:16]


def _metrics(res: dict[str, Any]) -> dict[str, Any]:
    instances = res["instances"] if "instances" in res else sum(l["instances"] for l in res["layers"])
    out: dict[str, Any] = {
        "cycles": int(res["cycles"]), "latency_s": res["latency_s"], "energy_pj": res["energy_pj"]["total"],
        "edp": res["edp"], "instances": instances,
    }
    for u, d in res["utilization"].items():
        out[f"utilization_{u}"] = d["pe_util"]
        out[f"busy_{u}"] = d["busy"]
    dram = next(iter(res["traffic"].values()))
    out["dram_bytes"] = dram["bytes"]
    return out


def evaluate_point(task: PointTask) -> dict[str, Any]:
    """Figures of one sweep point: latency_s, energy_pj, edp, cycles, instances,
    utilization_<unit>, busy_<unit>, dram_bytes (and, when one cascade is searched, the
    search's statistics and mapping)."""
    kind, obj = prepare(task)
    if kind == "run":
        from .flow import run

        return _metrics(run(obj, progress=False))
    from .search import mapping_yaml, search
    from .search_eval import SIMULATOR

    res = search(obj, SIMULATOR)
    out = _metrics(res.result)
    out.update({"search_objective": res.objective, "search_evaluations": res.evaluations,
                "search_exhaustive": res.exhaustive, "search_seconds": res.seconds,
                "search_seeded": res.seeded, "mapping_yaml": mapping_yaml(res.mapping)})
    return out


__all__ = ["PointTask", "resolve_base", "apply_section_overrides", "prepare",
           "named_files", "config_digest", "evaluate_point"]
