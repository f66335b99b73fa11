"""Subcommands of the whole flow: ``sweep`` (and, as they land, ``run``, ``compare``, ``search``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from einarray.sweep import load_sweep, run_sweep


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a design-space sweep locally in parallel or on a Dask cluster",
        description="Run every point of a sweep file (a grid or list of overrides of a base config) "
                    "with a process pool, or on a Dask cluster with --scheduler. Results are appended "
                    "to DIR/results.jsonl as points finish, so re-running resumes an interrupted sweep; "
                    "DIR/results.csv and DIR/energy-vs-latency.png are written at the end. A failing "
                    "point is recorded with its error; the exit status is 1 only when every point fails.")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--output", "-o", help="output directory (default out/sweep-<name>)")
    p.add_argument("--workers", "-j", type=int, default=None,
                   help="local worker processes (default: number of CPUs)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_sweep(args.sweep)
    out = Path(args.output or Path("out") / f"sweep-{spec.name}")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        from einsum.errors import ConfigError

        raise ConfigError(f"--workers {workers}: must be at least 1")
    res = run_sweep(spec, out, workers=workers, scheduler=args.scheduler, progress=not args.no_progress)
    con = Console()
    t = Table(title=f"sweep {escape(spec.name)}: {len(res.records)} points "
                    f"({res.skipped} resumed, {len(res.failed)} failed)")
    cols = list(spec.parameters) + ["status", "latency_s", "energy_pj"]
    for c in cols:
        t.add_column(escape(c))
    for r in res.records:
        t.add_row(*[escape(_fmt(r.get(c, ""))) for c in cols])
    con.print(t)
    for r in res.failed:
        con.print(f"[red]point {r['index']} failed:[/red] {escape(str(r.get('error')))}")
    con.print(f"results: {out / 'results.csv'}, {out / 'results.jsonl'}")
    return 1 if res.records and len(res.failed) == len(res.records) else 0


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
