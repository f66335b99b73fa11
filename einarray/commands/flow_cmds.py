"""Subcommands of the whole flow: ``run``, ``compare`` and ``sweep``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from einsum.outdir import check as check_output
from einarray.sweep import check_scheduler_address, load_sweep, run_sweep
from einsum.errors import ConfigError

from einarray.tables import Cell, Column, Table as DataTable, add_format_args, emit, note, output_format

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
    p.add_argument("--mapping-from", metavar="REPORT.json",
                   help="run every layer with the mapping stored in an earlier run's report.json "
                        "(layers matched by name), reproducing that run exactly")
    add_format_args(p, json_help="print the summary as JSON instead of tables (the same as --format json)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "compare", help="compare several configs side by side, or sweep one rank",
        description="Run several configs (for example one model with different attention variants or "
                    "mappings) and write a side-by-side report per inference (latency, throughput, "
                    "energy, EDP, DRAM traffic, utilization): compare.md, a self-contained compare.html, "
                    "compare.json and compare.png. With --sweep NAME:v1,v2,... each config is run at each "
                    "value of rank NAME, and the figures are plotted against it. DIR must be new or empty; --force "
                    "replaces an earlier einarray output there.")
    p.add_argument("configs", nargs="+", help="run config YAML files")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="output directory, new or empty (default out/compare)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--sweep", metavar="RANK:V1,V2,...",
                   help="sweep one rank over values, e.g. --sweep P:1024,4096,16384 "
                        "(also accepted: rank=P:1024,4096)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_format_args(p, json_help="print the rows as JSON (the same as --format json)")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser(
        "sweep", help="run a design-space sweep locally in parallel or on a Dask cluster",
        description="Run every point of a sweep file (a grid or list of overrides of a base config, "
                    "which may be any run or simulate config) with a process pool, or on a Dask cluster "
                    "with --scheduler. Every point is checked before the first one runs. Results are "
                    "appended to DIR/results.jsonl as points finish; re-running resumes the points whose "
                    "recorded result has the same config (the base and every file it includes or names) "
                    "and einarray version, and runs the others again, saying why. "
                    "DIR/results.csv and DIR/energy-vs-latency.png are written at the end. A failing "
                    "point is recorded with its error; the exit status is 1 only when every point fails. "
                    "DIR must be new, empty or an earlier sweep's directory.")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="output directory: new, empty or a sweep to resume (default out/sweep-<name>)")
    p.add_argument("--workers", "-j", type=int, default=None,
                   help="local worker processes (default: number of CPUs)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up on an unreachable --scheduler after this long (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_format_args(p, json_help="print the records as JSON (the same as --format json)")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.scheduler:
        check_scheduler_address(args.scheduler)  # before loading and checking every point
    if args.connect_timeout <= 0:
        raise ConfigError(f"--connect-timeout {args.connect_timeout:g}: must be positive")
    spec = load_sweep(args.sweep)
    out = Path(args.output or Path("out") / f"sweep-{spec.name}")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    res = run_sweep(spec, out, workers=workers, scheduler=args.scheduler, progress=not args.no_progress,
                    connect_timeout=args.connect_timeout)
    fmt = output_format(args)
    con = Console()
    rerun = sum(res.rerun.values())
    cols = list(spec.parameters) + ["status", "latency_s", "energy_pj"]
    t = DataTable(f"sweep {spec.name}: {len(res.records)} points "
                  f"({res.skipped} resumed, {rerun} run, {len(res.failed)} failed)",
                  [Column(c, _fmt) for c in cols])
    for r in res.records:
        t.add(*[r.get(c) for c in cols])
    emit([t], fmt, result={"records": res.records} if fmt == "json" else None, console=con)
    if res.skipped or set(res.rerun) - {"new point"}:  # not a first run: say why points ran
        why = "; ".join(f"{n} {escape(reason)}" for reason, n in sorted(res.rerun.items()))
        note(fmt, f"{res.skipped} resumed from {out / 'results.jsonl'}" + (f"; run: {why}" if why else ""),
             console=con)
    for r in res.failed:
        note(fmt, f"[red]point {r['index']} failed:[/red] {escape(str(r.get('error')))}", console=con)
    note(fmt, f"results: {out / 'results.csv'}, {out / 'results.jsonl'}", console=con)
    return 1 if res.records and len(res.failed) == len(res.records) else 0


def cmd_run(args: argparse.Namespace) -> int:
    from einarray.flow import load_run, run
    from einarray.report import write_report

    spec = load_run(args.config, ranks=parse_ranks(args.rank), sets=args.set)
    if args.mapping_from:
        from einarray.flow import mappings_from_report

        spec = mappings_from_report(spec, args.mapping_from)
    out = Path(args.output or Path("out") / spec.name)
    check_output(out, force=args.force, kind="run")  # refuse before the simulation, not after
    result = run(spec, progress=not args.no_progress)
    write_report(result, out, plots=not args.no_plots, force=args.force, command=args.command_line)
    fmt = output_format(args)
    if fmt == "json":
        import json

        print(json.dumps({"report": str(out), **result["summary"]}, indent=2, sort_keys=True))
        return 0
    con = Console()
    emit(run_data_tables(result), fmt, console=con)
    if result["summary"].get("binding"):
        note(fmt, f"mapping: {escape(result['summary']['binding'])}", console=con)
    note(fmt, f"report: {out}/report.md, report.html, report.json, layers.csv", console=con)
    return 0


def run_tables(result: dict) -> list[Table]:
    """The terminal summary of a run (rich tables of :func:`run_data_tables`)."""
    return [t.to_rich() for t in run_data_tables(result)]


def run_data_tables(result: dict) -> list[DataTable]:
    """A run's summary, layers and the top Einsums by time and energy (the mapping line,
    long, is printed after them). The terminal abbreviates numbers with SI prefixes so the
    tables fit 80 columns without cutting digits; csv and json get the raw values."""
    from einarray.report import si, summary_items

    t = DataTable(f"{result['title']}: {result['arch']['name']}, {len(result['layers'])} layer(s), "
                  f"batch {result['batch']}", [Column("metric"), Column("value", numeric=True)])
    for label, key, value, text in summary_items(result):
        if key != "mapping":
            t.add(Cell(key, label), Cell(value, text))
    tables = [t]
    units = list(result["arch"]["units"])
    origin = any("mapping_origin" in l for l in result["layers"])
    tot = result["latency_s"] or 1.0
    cols = ([Column("layer")] + ([Column("mapping")] if origin else [])
            + [Column("latency", lambda v: si(v, "s"), True, "latency_s"),
               Column("energy", lambda v: si(v * 1e-12, "J"), True, "energy_pj"),
               Column("time", lambda v: f"{v:.1%}", True, "share_of_time")]
            + [Column(u, lambda v: f"{v:.3f}", True, f"util_{u}") for u in units])
    lt = DataTable("layers (util: PE-cycles / PEs x all cycles)", cols)
    for l in result["layers"]:
        lt.add(*([l["name"]] + ([l.get("mapping_origin", "-")] if origin else [])
                 + [l["latency_s"], l["energy_pj"], l["latency_s"] / tot]
                 + [l["utilization"][u] for u in units]))
    tables.append(lt)
    for key, title in (("top_einsums_by_time", "top Einsums by time"),
                       ("top_einsums_by_energy", "top Einsums by energy")):
        tt = DataTable(title, [Column("layer"), Column("einsum"), Column("unit"),
                               Column("cycles", lambda v: si(v, ""), True),
                               Column("energy", lambda v: si(v * 1e-12, "J"), True, "energy_pj"),
                               Column("util", lambda v: f"{v:.3f}", True, "utilization")])
        for e in result[key][:5]:
            tt.add(e["layer"], e["einsum"], e["unit"], e["cycles"], e["energy_pj"], e["utilization"])
        tables.append(tt)
    return tables


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
    fmt = output_format(args)
    if fmt == "json":
        import json

        print(json.dumps({"report": str(out), "rows": rows}, indent=2, sort_keys=True, default=float))
        return 0
    con = Console()
    emit([compare_data_table(rows, sweep)], fmt, console=con)
    note(fmt, f"report: {out}/compare.md, compare.html, compare.json, compare.png", console=con)
    return 0


def compare_table(rows: list, sweep: tuple[str, list[int]] | None) -> Table:
    """The comparison in the terminal (the rich table of :func:`compare_data_table`)."""
    return compare_data_table(rows, sweep).to_rich()


def compare_data_table(rows: list, sweep: tuple[str, list[int]] | None) -> DataTable:
    """The comparison per inference like ``einarray run``; the terminal gets SI prefixes so
    it fits 80 columns (EDP and DRAM traffic are in compare.md and compare.html)."""
    from einarray.report import si

    units = sorted({u for r in rows for u in r["utilization"]})
    cols = ([Column("config")] + ([Column(sweep[0], numeric=True)] if sweep else [])
            + [Column("latency", lambda v: si(v, "s"), True, "latency_s"),
               Column("inferences/s", lambda v: si(v, ""), True, "throughput_inf_per_s"),
               Column("energy/inf", lambda v: si(v * 1e-12, "J"), True, "energy_per_inference_pj")]
            + [Column(u, lambda v: f"{v:.3f}", True, f"util_{u}") for u in units])
    t = DataTable(f"comparison ({len(rows)} runs), per inference; util: PE-cycles / PEs x all cycles", cols)
    for r in rows:
        t.add(*([r["config"]] + ([r["value"]] if sweep else [])
                + [r["latency_s"], r["throughput_inf_per_s"], r["energy_per_inference_pj"]]
                + [r["utilization"].get(u, 0.0) for u in units]))
    return t


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
