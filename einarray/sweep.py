"""Design-space sweeps: a grid or list of config overrides, run locally or on Dask.

A sweep file::

    sweep:
      version: 1
      name: array-size
      base: fusemax-bert.yaml          # any run/simulate config, relative to this file
      grid:                            # every combination (or `points:` for a list)
        arch.array2d.rows: [64, 128, 256]
        workload.ranks.P: [1024, 4096]
      search: {objective: edp, budget: 64}   # optional: search a mapping per point

The base may include other files and name shipped archs, cascades and models; a grid key
``SECTION.path`` sets a value of the resolved section, as ``einarray run --set`` does
(:mod:`einarray.points`). Every point is built and checked before the first one runs,
so a bad value is one located error and nothing is started.

Each point is a plain function call ``evaluate_point(task)`` of a picklable
:class:`PointTask`, so the same code path runs in a local process pool or on a Dask
cluster (``--scheduler tcp://host:8786``). Results are appended to ``results.jsonl`` as
each point finishes, then ``results.csv`` and plots are written. A point's identity
(``point_id``) covers its overrides, the resolved base config with the content of every
file it includes or names, the sweep's search, and the einarray version; re-running
resumes exactly the points whose recorded result has that identity and re-runs the others
(:attr:`SweepResult.rerun` says why). A point that raises is recorded as ``failed`` with
its error; a worker process that dies is retried once in a fresh pool and then recorded
as failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import hashlib
import importlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import einarray
from einsum.atomic import atomic_path
from einsum.errors import ConfigError, EinarrayError
from einsum.yamlsrc import Source, YPath, load as load_yaml

from einsum.outdir import claim
from .points import PointTask, config_digest, resolve_base

SWEEP_KEYS = {"version", "name", "description", "base", "grid", "points", "search", "evaluator"}


@dataclass(frozen=True)
class SweepSpec:
    name: str
    file: str
    tasks: tuple[PointTask, ...]
    parameters: tuple[str, ...]
    description: str = ""


def params_id(overrides: Iterable[tuple[str, Any]]) -> str:
    """A hash of a point's parameters alone (which point of the grid it is)."""
    blob = json.dumps(sorted(overrides, key=lambda kv: kv[0]), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def point_id(params: str, digest: str, version: str) -> str:
    """A point's identity: its parameters, its config digest and the einarray version."""
    return hashlib.sha1(f"{params}/{digest}/{version}".encode()).hexdigest()[:16]


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
    sections, base_src = resolve_base(base_file)  # includes and shipped names resolved
    base_data = {k: v[0] for k, v in sections.items()}
    if ("grid" in sec) == ("points" in sec):
        raise src.error(base, "give exactly one of 'grid' (all combinations) or 'points' (a list)")
    combos: list[list[tuple[str, Any]]] = []
    where: list[tuple[YPath, dict[str, YPath]]] = []  # each point's YAML path, and each key's
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
        keys = {str(k): base + ("grid", str(k)) for k in grid}
        where = [(base + ("grid",), keys) for _ in combos]
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
            where.append((pp, {str(k): pp + (str(k),) for k in pt}))
    search = sec.get("search")
    if search is not None and not isinstance(search, dict):
        raise src.error(base + ("search",), "expected a mapping like {objective: edp, budget: 64}")
    evaluator = sec.get("evaluator", "einarray.points:evaluate_point")
    if not isinstance(evaluator, str) or ":" not in evaluator:
        raise src.error(base + ("evaluator",), "expected 'module:function'")
    try:
        _resolve(evaluator)
    except (ImportError, AttributeError) as exc:
        raise src.error(base + ("evaluator",), f"cannot load the evaluator {evaluator!r}: {exc}") from None
    seen: dict[str, int] = {}
    for i, c in enumerate(combos):
        pid = params_id(c)
        if pid in seen:
            raise src.error(where[i][0], f"points {seen[pid]} and {i} have the same parameters")
        seen[pid] = i
    tasks = _prepare_tasks(combos, where, src, sections, base_src, base_file, search, evaluator)
    return SweepSpec(name=name, file=str(path), tasks=tasks, parameters=tuple(params),
                     description=str(sec.get("description", "")))


def _prepare_tasks(combos: list[list[tuple[str, Any]]], where: list[tuple[YPath, dict[str, YPath]]],
                   src: Source, sections: Mapping[str, Any], base_src: Source, base_file: Path,
                   search: Mapping[str, Any] | None, evaluator: str) -> tuple[PointTask, ...]:
    """Build every point (nothing simulated) and give it its identity; the first point whose
    config is invalid is a ConfigError at its grid key (or point) naming the original error."""
    from .points import prepare

    version = str(einarray.__version__)
    cache: dict[str, str] = {}
    tasks = []
    for i, c in enumerate(combos):
        t = PointTask(index=i, point_id="", overrides=tuple(c), sections=sections, source=base_src,
                      base_file=str(base_file.resolve()), search=search, evaluator=evaluator,
                      params_id=params_id(c), version=version)
        try:
            built = prepare(t)
            digest = config_digest(t, built, cache)
        except ConfigError as exc:
            raise _point_error(src, where[i], i, c, exc) from None
        tasks.append(dataclasses.replace(t, config_digest=digest,
                                         point_id=point_id(t.params_id, digest, version)))
    return tuple(tasks)


def _point_error(src: Source, where: tuple[YPath, dict[str, YPath]], i: int,
                 combo: list[tuple[str, Any]], exc: ConfigError) -> ConfigError:
    """The error of point ``i`` located at the grid key it most likely comes from."""
    point_path, key_paths = where
    err = tuple(str(x) for x in exc.ypath)
    at = point_path
    for key, _ in combo:
        parts = tuple(key.split("."))
        n = min(len(parts), len(err))
        if n and parts[:n] == err[:n]:
            at = key_paths[key]
            break
    desc = ", ".join(f"{k}={v}" for k, v in combo)
    return src.error(at, f"point {i} ({desc}): {exc}")


def _resolve(evaluator: str) -> Callable[[PointTask], dict[str, Any]]:
    mod, _, fn = evaluator.partition(":")
    return getattr(importlib.import_module(mod), fn)


def run_task(task: PointTask) -> dict[str, Any]:
    """Run one point; never raises for a failing point (the error is recorded)."""
    rec = _record(task)
    try:
        metrics = _resolve(task.evaluator)(task)
        rec.update({"status": "ok", **metrics})
    except EinarrayError as exc:
        rec.update({"status": "failed", "error": str(exc)})
    except Exception as exc:  # a bug or a numeric failure in one point must not lose the sweep
        rec.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    return rec


def _record(task: PointTask, **more: Any) -> dict[str, Any]:
    """The start of a point's line in results.jsonl: which point, of which config."""
    return {"index": task.index, "point_id": task.point_id, "params_id": task.params_id,
            "config_digest": task.config_digest, "einarray_version": task.version,
            **dict(task.overrides), **more}


DIED = "worker process died while running this point"


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # points resumed from results.jsonl
    rerun: dict[str, int] = field(default_factory=dict)  # why the other points ran: reason -> count

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "ok"]


def _load_log(jsonl: Path) -> list[dict[str, Any]]:
    """Every complete line of results.jsonl (this and earlier sweeps in the directory)."""
    log: list[dict[str, Any]] = []
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption; that point runs again
            if isinstance(rec, dict) and "point_id" in rec:
                log.append(rec)
    return log


def _why(task: PointTask, earlier: list[dict[str, Any]]) -> str:
    """Why a point that results.jsonl does not hold for this config and version runs."""
    if not earlier:
        return "new point"
    ok = [r for r in earlier if r.get("status") == "ok"]
    same = [r for r in ok if r.get("config_digest") == task.config_digest]
    if same:
        return f"einarray version changed ({same[-1].get('einarray_version')} -> {task.version})"
    if any("config_digest" not in r for r in ok):
        return "recorded by an einarray that did not record its config"
    if ok:
        return "config changed (the base, a file it includes or names, or the sweep's search)"
    return "failed last time"


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, progress: bool = True,
              connect_timeout: float = 10.0) -> SweepResult:
    """Run every point not already in ``out_dir/results.jsonl``; write CSV and plots."""
    client = connect_scheduler(scheduler, connect_timeout) if scheduler else None  # before any file
    try:
        return _run(spec, out_dir, client, workers, progress)
    finally:
        if client is not None:
            client.close()


def _run(spec: SweepSpec, out_dir: str | Path, client: Any, workers: int | None,
         progress: bool) -> SweepResult:
    # new, empty or an earlier sweep's directory (resumed); anything else is refused
    out = claim(out_dir, kind="sweep", command=f"einarray sweep {spec.file}",
                files=("results.jsonl", "results.csv", "energy-vs-latency.png", "plot-error.txt"))
    jsonl = out / "results.jsonl"
    log = _load_log(jsonl)
    done = {r["point_id"]: r for r in log if r.get("status") == "ok"}
    by_params: dict[str, list[dict[str, Any]]] = {}
    for r in log:  # lines written before point ids held the config: point_id was the params id
        by_params.setdefault(str(r.get("params_id", r["point_id"])), []).append(r)
    todo = [t for t in spec.tasks if t.point_id not in done]
    result = SweepResult(skipped=len(spec.tasks) - len(todo))
    for t in todo:
        why = _why(t, by_params.get(t.params_id, []))
        result.rerun[why] = result.rerun.get(why, 0) + 1
    new: list[dict[str, Any]] = []

    def record(rec: dict[str, Any]) -> None:
        new.append(rec)
        with open(jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    bar = _Progress(len(todo), spec.name, enabled=progress)
    try:
        if client is not None:
            _run_dask(todo, client, record, bar)
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
    # this sweep's points only (results.jsonl may hold points of other configs), in grid order
    result.records = [{**by_id[t.point_id], "index": t.index} for t in spec.tasks if t.point_id in by_id]
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
                record(_record(t, status="failed", error=DIED))
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
                    rec = _record(t, status="failed", error=DIED)
                record(rec)
                bar.advance()
            pending = []


def check_scheduler_address(address: str) -> None:
    """A ConfigError unless ``address`` is a Dask scheduler address such as tcp://host:8786."""
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import backends
    except ImportError:
        raise ConfigError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    bad = f"--scheduler {address!r}: not a Dask scheduler address (expected e.g. tcp://10.0.0.1:8786"
    try:
        scheme, loc = parse_address(address, strict=True)
    except ValueError:
        raise ConfigError(bad + ")") from None
    if scheme not in backends:
        raise ConfigError(bad + f"; protocols: {', '.join(sorted(backends))})")
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:
            host, port = parse_host_port(loc)
        except ValueError:
            raise ConfigError(bad + "; give HOST:PORT)") from None
        if not host or any(ch.isspace() for ch in host) or not 0 < int(port) < 65536:
            raise ConfigError(bad + "; give HOST:PORT)")


def connect_scheduler(address: str, timeout: float = 10.0) -> Any:
    """A Dask client of the scheduler at ``address``; a ConfigError if it is not an address or
    does not answer within ``timeout`` seconds."""
    check_scheduler_address(address)
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: {exc}") from None


def _run_dask(todo: list[PointTask], client: Any, record: Callable[[dict[str, Any]], None],
              bar: "_Progress") -> None:
    from distributed import as_completed

    futs = {client.submit(run_task, t, pure=False): t for t in todo}
    for fut in as_completed(list(futs)):
        t = futs[fut]
        try:
            rec = fut.result()
        except Exception as exc:  # worker died (KilledWorker) or lost
            rec = _record(t, status="failed", error=f"{type(exc).__name__}: {exc}")
        record(rec)
        bar.advance()


class _Progress:
    """Points done of the points to run, with elapsed time (:mod:`einarray.progress`: on
    stderr, drawn only on a terminal)."""

    def __init__(self, total: int, name: str, enabled: bool):
        from .progress import Bar

        self.bar = Bar(bool(enabled and total), f"sweep {name}", total).__enter__()

    def advance(self) -> None:
        self.bar.advance()

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


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
           "params_id", "point_id", "check_scheduler_address", "connect_scheduler"]

