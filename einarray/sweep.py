"""Design-space sweeps: a grid or list of config overrides, run locally or on Dask.

A sweep file::

    sweep:
      version: 1
      name: array-size
      base: fusemax-bert.yaml          # a simulate/run config, relative to this file
      grid:                            # every combination (or `points:` for a list)
        arch.pe_array.rows: [64, 128, 256]
        workload.ranks.P: [1024, 4096]
      search: {objective: edp, budget: 64}   # optional: search a mapping per point

Each point is a plain function call ``evaluate_point(task)`` of a picklable
:class:`PointTask` (base config data plus overrides), so the same code path runs in a
local process pool or on a Dask cluster (``--scheduler tcp://host:8786``). Results are
appended to ``results.jsonl`` as each point finishes (so an interrupted sweep resumes
where it stopped), then ``results.csv`` and plots are written. A point that raises is
recorded as ``failed`` with its error; a worker process that dies is retried once in a
fresh pool and then recorded as failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import csv
import hashlib
import importlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from einsum.atomic import atomic_path
from einsum.errors import ConfigError, EinarrayError
from einsum.yamlsrc import load as load_yaml

from .outdir import claim

SWEEP_KEYS = {"version", "name", "description", "base", "grid", "points", "search", "evaluator"}


@dataclass(frozen=True)
class PointTask:
    """Everything one sweep point needs; picklable, a plain function argument."""

    index: int
    point_id: str
    overrides: tuple[tuple[str, Any], ...]
    base_data: Mapping[str, Any]
    base_dir: str
    base_file: str
    search: Mapping[str, Any] | None = None
    evaluator: str = "einarray.points:evaluate_point"


@dataclass(frozen=True)
class SweepSpec:
    name: str
    file: str
    tasks: tuple[PointTask, ...]
    parameters: tuple[str, ...]
    description: str = ""


def point_id(overrides: Iterable[tuple[str, Any]]) -> str:
    blob = json.dumps(sorted(overrides, key=lambda kv: kv[0]), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _path_exists(data: Any, dotted: str) -> str | None:
    """None if ``dotted`` names an existing key of ``data``, else why not."""
    cur = data
    walked: list[str] = []
    for part in dotted.split("."):
        if isinstance(cur, list):
            if not part.isdigit() or int(part) >= len(cur):
                return f"{'.'.join(walked) or 'config'} is a list of {len(cur)}; {part!r} is not an index"
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            if part not in cur:
                keys = ", ".join(sorted(map(str, cur))) or "none"
                return f"{part!r} is not a key of {'.'.join(walked) or 'the config'} (keys: {keys})"
            cur = cur[part]
        else:
            return f"{'.'.join(walked)} is a value, not a section"
        walked.append(part)
    return None


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted path set to its value."""
    out = copy.deepcopy(dict(data))
    for dotted, value in overrides:
        cur: Any = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        last = parts[-1]
        if isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value
    return out


def load_sweep(path: str | Path) -> SweepSpec:
    data, src = load_yaml(path)
    if not isinstance(data, dict) or "sweep" not in data:
        raise src.error((), "expected a top-level 'sweep:' section")
    sec = data["sweep"]
    base = ("sweep",)
    if not isinstance(sec, dict):
        raise src.error(base, "expected a mapping with version, name, base and grid or points")
    for k in sec:
        if k not in SWEEP_KEYS:
            raise src.error(base + (str(k),), f"unknown key {k!r} (allowed: {', '.join(sorted(SWEEP_KEYS))})")
    if sec.get("version") != 1:
        raise src.error(base + ("version",), "missing or unsupported version (this einarray reads 1)")
    name = sec.get("name")
    if not isinstance(name, str) or not name:
        raise src.error(base + ("name",), "expected a non-empty name")
    bpath = sec.get("base")
    if not isinstance(bpath, str):
        raise src.error(base + ("base",), "expected the path of the base config, relative to the sweep file")
    base_file = (Path(path).parent / bpath)
    if not base_file.is_file():
        raise src.error(base + ("base",), f"base config {bpath!r} not found (looked in {base_file})")
    base_data, _ = load_yaml(base_file)
    if not isinstance(base_data, dict):
        raise src.error(base + ("base",), "the base config must be a YAML mapping")
    if ("grid" in sec) == ("points" in sec):
        raise src.error(base, "give exactly one of 'grid' (all combinations) or 'points' (a list)")
    combos: list[list[tuple[str, Any]]] = []
    params: list[str] = []
    if "grid" in sec:
        grid = sec["grid"]
        if not isinstance(grid, dict) or not grid:
            raise src.error(base + ("grid",), "the grid is empty: give at least one parameter with values")
        axes = []
        for key, vals in grid.items():
            gp = base + ("grid", str(key))
            why = _path_exists(base_data, str(key))
            if why:
                raise src.error(gp, f"unknown parameter {key!r}: {why}")
            if not isinstance(vals, list) or not vals:
                raise src.error(gp, "expected a non-empty list of values")
            axes.append([(str(key), v) for v in vals])
            params.append(str(key))
        combos = [list(c) for c in itertools.product(*axes)]
    else:
        pts = sec["points"]
        if not isinstance(pts, list) or not pts:
            raise src.error(base + ("points",), "the list of points is empty")
        for i, pt in enumerate(pts):
            pp = base + ("points", i)
            if not isinstance(pt, dict) or not pt:
                raise src.error(pp, "each point is a non-empty mapping of parameter: value")
            row = []
            for key, v in pt.items():
                why = _path_exists(base_data, str(key))
                if why:
                    raise src.error(pp + (str(key),), f"unknown parameter {key!r}: {why}")
                row.append((str(key), v))
                if str(key) not in params:
                    params.append(str(key))
            combos.append(row)
    search = sec.get("search")
    if search is not None and not isinstance(search, dict):
        raise src.error(base + ("search",), "expected a mapping like {objective: edp, budget: 64}")
    evaluator = sec.get("evaluator", "einarray.points:evaluate_point")
    if not isinstance(evaluator, str) or ":" not in evaluator:
        raise src.error(base + ("evaluator",), "expected 'module:function'")
    tasks = tuple(PointTask(index=i, point_id=point_id(c), overrides=tuple(c), base_data=base_data,
                            base_dir=str(base_file.parent.resolve()), base_file=str(base_file),
                            search=search, evaluator=evaluator)
                  for i, c in enumerate(combos))
    ids = [t.point_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise src.error(base, "two points have the same parameters")
    return SweepSpec(name=name, file=str(path), tasks=tasks, parameters=tuple(params),
                     description=str(sec.get("description", "")))


def _resolve(evaluator: str) -> Callable[[PointTask], dict[str, Any]]:
    mod, _, fn = evaluator.partition(":")
    return getattr(importlib.import_module(mod), fn)


def run_task(task: PointTask) -> dict[str, Any]:
    """Run one point; never raises for a failing point (the error is recorded)."""
    rec: dict[str, Any] = {"index": task.index, "point_id": task.point_id,
                           **{k: v for k, v in task.overrides}}
    try:
        metrics = _resolve(task.evaluator)(task)
        rec.update({"status": "ok", **metrics})
    except EinarrayError as exc:
        rec.update({"status": "failed", "error": str(exc)})
    except Exception as exc:  # a bug or a numeric failure in one point must not lose the sweep
        rec.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    return rec


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "ok"]


def _load_done(jsonl: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption; that point runs again
            if rec.get("status") == "ok":
                done[rec["point_id"]] = rec
    return done


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, progress: bool = True,
              connect_timeout: float = 10.0) -> SweepResult:
    """Run every point not already in ``out_dir/results.jsonl``; write CSV and plots."""
    # new, empty or an earlier sweep's directory (resumed); anything else is refused
    out = claim(out_dir, kind="sweep", command=f"einarray sweep {spec.file}",
                files=("results.jsonl", "results.csv", "energy-vs-latency.png", "plot-error.txt"))
    jsonl = out / "results.jsonl"
    done = _load_done(jsonl)
    todo = [t for t in spec.tasks if t.point_id not in done]
    result = SweepResult(skipped=len(spec.tasks) - len(todo))
    new: list[dict[str, Any]] = []

    def record(rec: dict[str, Any]) -> None:
        new.append(rec)
        with open(jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    bar = _Progress(len(todo), spec.name, enabled=progress)
    try:
        if scheduler:
            _run_dask(todo, scheduler, record, bar, connect_timeout)
        elif (workers or 1) <= 1:
            for t in todo:
                record(run_task(t))
                bar.advance()
        else:
            _run_pool(todo, workers or 1, record, bar)
    finally:
        bar.close()
    by_id = dict(done)
    for rec in new:
        by_id[rec["point_id"]] = rec
    result.records = sorted(by_id.values(), key=lambda r: r["index"])
    write_csv(result.records, out / "results.csv", spec.parameters)
    try:
        plot_sweep(result.records, spec.parameters, out)
    except Exception as exc:  # plotting must not lose results
        (out / "plot-error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    return result


def _run_pool(todo: list[PointTask], workers: int, record: Callable[[dict[str, Any]], None],
              bar: "_Progress") -> None:
    pending = list(todo)
    retried: set[str] = set()
    while pending:
        broken: list[PointTask] = []
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futs = {pool.submit(run_task, t): t for t in pending}
            for fut in cf.as_completed(futs):
                t = futs[fut]
                try:
                    rec = fut.result()
                except cf.process.BrokenProcessPool:
                    broken.append(t)
                    continue
                record(rec)
                bar.advance()
        pending = []
        for t in broken:
            if t.point_id in retried:
                record({"index": t.index, "point_id": t.point_id, **dict(t.overrides),
                        "status": "failed", "error": "worker process died while running this point"})
                bar.advance()
            else:
                retried.add(t.point_id)
                pending.append(t)
        if len(pending) > 1:
            # retry one at a time so a point that kills its worker cannot take others with it
            for t in pending:
                try:
                    with cf.ProcessPoolExecutor(max_workers=1) as pool:
                        rec = pool.submit(run_task, t).result()
                except cf.process.BrokenProcessPool:
                    rec = {"index": t.index, "point_id": t.point_id, **dict(t.overrides),
                           "status": "failed", "error": "worker process died while running this point"}
                record(rec)
                bar.advance()
            pending = []


def _run_dask(todo: list[PointTask], scheduler: str, record: Callable[[dict[str, Any]], None],
              bar: "_Progress", connect_timeout: float = 10.0) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ConfigError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout=f"{connect_timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        futs = {client.submit(run_task, t, pure=False): t for t in todo}
        for fut in as_completed(list(futs)):
            t = futs[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # worker died (KilledWorker) or lost
                rec = {"index": t.index, "point_id": t.point_id, **dict(t.overrides),
                       "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            record(rec)
            bar.advance()
    finally:
        client.close()


class _Progress:
    def __init__(self, total: int, name: str, enabled: bool):
        self.bar = None
        if enabled and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(f"sweep {name}", total=total)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def write_csv(records: list[dict[str, Any]], path: Path, params: Iterable[str]) -> None:
    params = list(params)
    keys: list[str] = ["index", "point_id", *params, "status"]
    for r in records:
        for k, v in r.items():
            if k not in keys and not isinstance(v, (dict, list)):
                keys.append(k)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: r.get(k, "") for k in keys})


def plot_sweep(records: list[dict[str, Any]], params: Iterable[str], out: Path) -> list[Path]:
    """Energy against latency coloured by the first parameter; one line plot per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("status") == "ok"]
    params = list(params)
    written: list[Path] = []
    if not ok or not params:
        return written
    if all(isinstance(r.get("latency_s"), (int, float)) and isinstance(r.get("energy_pj"), (int, float))
           for r in ok):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        key = params[0]
        vals = sorted({str(r.get(key)) for r in ok}, key=_natural)
        cmap = plt.get_cmap("viridis", max(len(vals), 2))
        for i, v in enumerate(vals):
            pts = [r for r in ok if str(r.get(key)) == v]
            ax.scatter([r["latency_s"] for r in pts], [r["energy_pj"] * 1e-12 for r in pts],
                       color=cmap(i), label=f"{key}={v}", s=28)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("latency (s)")
        ax.set_ylabel("energy (J)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / "energy-vs-latency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


def _natural(s: str) -> tuple:
    try:
        return (0, float(s))
    except ValueError:
        return (1, s)


__all__ = ["PointTask", "SweepSpec", "SweepResult", "load_sweep", "run_sweep", "run_task",
           "apply_overrides", "point_id"]

