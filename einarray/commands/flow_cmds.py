"""Subcommands of the whole flow: ``run``, ``compare`` and ``sweep``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from einarray.outdir import check as check_output
from einarray.sweep import load_sweep, run_sweep
from einsum.errors import ConfigError

from .common import parse_ranks


FORCE_HELP = ("replace DIR if it holds an earlier einarray output (files einarray wrote there are "
              "replaced or removed, other files are kept); any other non-empty DIR is still refused")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="simulate a whole config (model, arch, mapping) and write a report",
        description="Load a run config (workload or model, arch, mapping; may include other files), "
                    "simulate every layer with a progress bar, print a summary, and write report.md, "
                    "a self-contained report.html, report.json, layers.csv and PNG plots into DIR "
                    "(default out/<config name>/). DIR must be new or empty; --force replaces an "
                    "earlier einarray report there, never any other directory or file. The files are "
                    "moved into DIR only when all are complete, so a failed or interrupted run leaves "
                    "DIR as it was.")
    p.add_argument("config", help="run config YAML")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="report directory, new or empty (default out/<config name>)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--rank", "-r", action="append", default=[], metavar="NAME=SIZE",
                   help="override a rank in every layer that has it (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.key=VALUE",
                   help="override a config value, e.g. --set arch.clock_hz=1e9 (repeatable)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "compare", help="compare several configs side by side, or sweep one rank",
        description="Run several configs (for example one model with different attention variants or "
                    "mappings) and write a side-by-side report (compare.md, compare.json, plots). With "
                    "--sweep NAME:v1,v2,... each config is run at each value of rank NAME, and latency, "
                    "energy and utilization are plotted against it. DIR must be new or empty; --force "
                    "replaces an earlier einarray output there.")
    p.add_argument("configs", nargs="+", help="run config YAML files")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="output directory, new or empty (default out/compare)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--sweep", metavar="RANK:V1,V2,...",
                   help="sweep one rank over values, e.g. --sweep P:1024,4096,16384 "
                        "(also accepted: rank=P:1024,4096)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser(
        "sweep", help="run a design-space sweep locally in parallel or on a Dask cluster",
        description="Run every point of a sweep file (a grid or list of overrides of a base config) "
                    "with a process pool, or on a Dask cluster with --scheduler. Results are appended "
                    "to DIR/results.jsonl as points finish, so re-running resumes an interrupted sweep; "
                    "DIR/results.csv and DIR/energy-vs-latency.png are written at the end. A failing "
                    "point is recorded with its error; the exit status is 1 only when every point fails. "
                    "DIR must be new, empty or an earlier sweep's directory.")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="output directory: new, empty or a sweep to resume (default out/sweep-<name>)")
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


def cmd_run(args: argparse.Namespace) -> int:
    from einarray.flow import load_run, run
    from einarray.report import summary_rows, write_report

    spec = load_run(args.config, ranks=parse_ranks(args.rank), sets=args.set)
    out = Path(args.output or Path("out") / spec.name)
    check_output(out, force=args.force)  # refuse before the simulation, not after
    result = run(spec, progress=not args.no_progress)
    write_report(result, out, plots=not args.no_plots, force=args.force, command=args.command_line)
    if args.json:
        import json

        print(json.dumps({"report": str(out), **result["summary"]}, indent=2, sort_keys=True))
        return 0
    con = Console()
    t = Table(title=f"{escape(result['title'])}: {escape(spec.arch.name)}, "
                    f"{len(spec.layers)} layer(s), batch {spec.batch}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary_rows(result):
        t.add_row(k, v)
    con.print(t)
    for key, title in (("top_einsums_by_time", "top Einsums by time"),
                       ("top_einsums_by_energy", "top Einsums by energy")):
        tt = Table(title=title)
        for c in ("layer", "einsum", "unit", "cycles", "energy (uJ)", "util"):
            tt.add_column(c)
        for e in result[key][:5]:
            tt.add_row(escape(e["layer"]), escape(e["einsum"]), e["unit"], f"{e['cycles']:,.0f}",
                       f"{e['energy_pj'] * 1e-6:,.1f}", f"{e['utilization']:.3f}")
        con.print(tt)
    con.print(f"report: {out}/report.md, report.html, report.json, layers.csv")
    return 0


def parse_sweep(text: str) -> tuple[str, list[int]]:
    t = text.strip()
    if t.startswith("rank="):
        t = t[5:]
    name, sep, vals = t.partition(":")
    if not sep or not name.strip():
        raise ConfigError(f"--sweep {text!r}: expected RANK:V1,V2,... e.g. --sweep P:1024,4096")
    out = []
    for v in vals.split(","):
        try:
            n = int(v)
        except ValueError:
            raise ConfigError(f"--sweep {text!r}: {v!r} is not a positive integer") from None
        if n <= 0:
            raise ConfigError(f"--sweep {text!r}: {v!r} is not a positive integer")
        out.append(n)
    return name.strip(), out


def cmd_compare(args: argparse.Namespace) -> int:
    from einarray.compare import compare

    sweep = parse_sweep(args.sweep) if args.sweep else None
    out = Path(args.output or Path("out") / "compare")
    rows = compare(args.configs, out, sweep=sweep, progress=not args.no_progress, force=args.force,
                   command=args.command_line)
    con = Console()
    t = Table(title=f"comparison ({len(rows)} runs)")
    cols = ["config"] + (["value"] if sweep else []) + ["latency (ms)", "energy (mJ)", "EDP (pJ*s)"]
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*([escape(r["config"])] + ([str(r["value"])] if sweep else []) +
                    [f"{r['latency_s'] * 1e3:.4g}", f"{r['energy_pj'] * 1e-9:.4g}", f"{r['edp']:.4g}"]))
    con.print(t)
    con.print(f"report: {out}/compare.md, compare.json")
    return 0


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
