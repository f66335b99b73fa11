"""``einarray search``: find a good mapping of a config's cascade onto its arch."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

from einarray.tables import Cell, Column, Table as DataTable, add_format_args, emit, note, output_format
from einsum.outdir import check as check_output
from einsum.outdir import output_dir
from einsum.atomic import atomic_path
from einsum.errors import ConfigError

from .common import parse_ranks


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="search legal mappings (fusion, units, spatial, tiles, loop orders) for the best one",
        description="Enumerate legal mappings of CONFIG's cascade on its arch (fusion of consecutive "
                    "Einsums, unit and spatial assignment, buffer tiles, loop orders, held inputs, stage "
                    "layout), evaluate them with the simulator, and print the best as a mapping: section "
                    "to paste, with its figures and the Pareto set of latency against energy. Exhaustive "
                    "when the space fits the budget, coordinate descent with restarts beyond it. A "
                    "search: section in CONFIG sets objective, budget and constraints (see "
                    "einarray.search). A mapping: section in CONFIG seeds the search. A run config "
                    "(as for einarray run: a model workload, include, mappings or report) is searched "
                    "layer by layer, as a search: section of it does in einarray run, and the found "
                    "mappings are printed as a mappings: section to paste into it (with --output: "
                    "DIR/best-mappings.yaml and DIR/layers.csv). A config whose arch has a hierarchy: "
                    "(Timeloop-class levels) is searched over its per-level factors, spatial factors, "
                    "loop orders and keep/bypass (einarray.commands.nest_search_cmds).")
    p.add_argument("config", help="YAML config with einsum:/workload:, arch:, optional mapping: and search:, "
                                  "or a run config")
    p.add_argument("--objective", help="latency, energy or edp (default: the config's search.objective, else edp)")
    p.add_argument("--budget", type=_int, help="simulated candidates (default: search.budget, else 400)")
    p.add_argument("--seed", type=_int, help="random seed of the heuristic (default 0)")
    add_format_args(p, json_help="print the result as JSON (the same as --format json)")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="write DIR/best-mapping.yaml, DIR/pareto.csv and DIR/pareto.png (DIR new or empty)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR if it holds an earlier einarray output; any other non-empty DIR is refused")
    p.add_argument("--no-seed", action="store_true", help="do not seed the search with the config's mapping:")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set arch.array2d.rows=128")
    p.add_argument("--partition", metavar="RANK=auto|V1,V2,...",
                   help="also search the size of a partitioned rank's inner part, e.g. --partition P0=auto "
                        "(powers of two that divide the parent, 8..1024) or --partition P0=64,128,256; "
                        "each size gets the full budget and the best is reported")
    p.add_argument("--rank", "-r", action="append", default=[], metavar="NAME=SIZE",
                   help="run configs: override a rank in every layer that has it (repeatable)")
    p.set_defaults(handler=cmd_search)


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None


def _partition_candidates(spec: str, problem) -> tuple[str, list[int]]:
    name, sep, vals = spec.partition("=")
    name = name.strip()
    c = problem.config.cascade
    parent = next((par for par, (outer, inner) in c.partitions.items() if inner == name), None)
    if not sep or parent is None:
        inner = [inner for _, (_, inner) in c.partitions.items()]
        raise ConfigError(f"--partition {spec!r}: expected INNER=auto or INNER=V1,V2 with INNER the inner part "
                          f"of a partitioned rank of {c.name} (inner parts: {', '.join(inner) or 'none'})")
    n = c.ranks[parent].size
    if vals.strip() == "auto":
        # powers of two up to the rank (a chunk that does not divide leaves a partial last one)
        cands = sorted({d for d in (1 << k for k in range(3, 11)) if d <= n} | {c.ranks[name].size})
    else:
        try:
            cands = sorted({int(v) for v in vals.split(",")})
        except ValueError:
            raise ConfigError(f"--partition {spec!r}: sizes must be integers") from None
        bad = [v for v in cands if not 0 < v <= max(n, 1)]
        if bad:
            raise ConfigError(f"--partition {spec!r}: a chunk of {bad[0]} does not fit {parent}={n} "
                              f"(1 to {max(n, 1)}; a chunk that does not divide leaves a partial last one)")
    return name, cands


def _search_partitions(args: argparse.Namespace, problem) -> tuple[object, list[dict]]:
    from einarray.search import load_search_config, search
    from einarray.search_eval import SIMULATOR

    name, cands = _partition_candidates(args.partition, problem)
    rows = []
    best = None
    for v in cands:
        for section in ("workload", "einsum"):
            try:
                prob = load_search_config(args.config, objective=args.objective, budget=args.budget,
                                          seed=args.seed, sets=[*args.sets, f"{section}.ranks.{name}={v}"])
                break
            except ConfigError:
                if section == "einsum":
                    raise
        if args.no_seed:
            prob.settings = dataclasses.replace(prob.settings, seed_mapping=False)
        res = search(prob, SIMULATOR)
        fig = res.figures
        key = {"latency": fig["latency_s"], "energy": fig["energy_pj"], "edp": fig["edp"]}[res.objective]
        rows.append({"rank": name, "size": v, "objective": res.objective, "value": key, **fig})
        if best is None or key < best[0]:
            best = (key, v, res)
    assert best is not None
    return best, rows


def cmd_search(args: argparse.Namespace) -> int:
    from einarray.search import is_run_config, load_search_config, mapping_yaml, search
    from einarray.search_eval import SIMULATOR

    if is_run_config(args.config):
        return _search_run(args)
    from .nest_search_cmds import hierarchy_config, search_hierarchy
    nest = hierarchy_config(args.config, args.sets)
    if nest is not None:  # a memory-hierarchy arch: mapping.nest_search
        return search_hierarchy(args, nest)
    if args.rank:
        raise ConfigError("--rank is for run configs (a model workload); give ranks with --set "
                          "workload.ranks.NAME=SIZE or --set einsum.ranks.NAME=SIZE")
    problem = load_search_config(args.config, objective=args.objective, budget=args.budget, seed=args.seed,
                                 sets=args.sets)
    out = Path(args.output) if args.output else None
    if out is not None:
        check_output(out, force=args.force, kind="search")  # refuse before searching, not after
    if args.partition:
        (value, size, res), rows = _search_partitions(args, problem)
        name = rows[0]["rank"]
        text = mapping_yaml(res.mapping, _header(res) + f"\n# with ranks: {{{name}: {size}}} (chosen by "
                            f"--partition from {', '.join(str(r['size']) for r in rows)})")
        if args.output:
            _write_dir(args, res, text)
        fmt = output_format(args)
        if fmt == "json":
            print(json.dumps({**res.summary(), "partition": {name: size}, "partitions": rows,
                              "mapping_yaml": text}, indent=2, sort_keys=True, default=str))
            return 0
        g4 = (lambda v: f"{v:.4g}")
        t = DataTable(f"partition search over {name} ({res.objective})",
                      [Column(name, numeric=True), Column("chosen"), Column("cycles", lambda v: f"{v:,}", True),
                       Column("latency (s)", g4, True, "latency_s"), Column("energy (pJ)", g4, True, "energy_pj"),
                       Column("EDP", g4, True, "edp")])
        for r in rows:
            t.add(r["size"], Cell(r["size"] == size, "*" if r["size"] == size else ""), r["cycles"],
                  r["latency_s"], r["energy_pj"], r["edp"])
        emit([t], fmt)
        _print(res, text, Path(args.output) if args.output else None, fmt)
        return 0
    if args.no_seed:
        problem.settings = dataclasses.replace(problem.settings, seed_mapping=False)
    bar = None
    progress = None
    if not args.no_progress and output_format(args) == "table":
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("search {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), transient=True, console=Console(stderr=True))
        task = bar.add_task(problem.config.cascade.name, total=problem.settings.budget)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=min(done, total))
        bar.start()
    try:
        res = search(problem, SIMULATOR, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    header = _header(res)
    text = mapping_yaml(res.mapping, header)
    if out is not None:
        _write_dir(args, res, text)
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps({**res.summary(), "mapping_yaml": text}, indent=2, sort_keys=True, default=str))
        return 0
    _print(res, text, out, fmt)
    return 0


def _header(res) -> str:
    f = res.figures
    return (f"einarray search: {res.workload} on {res.arch} (x{res.instances}), objective {res.objective}\n"
            f"{f['cycles']:,} cycles = {f['latency_s'] * 1e3:.6g} ms, energy {f['energy_pj'] * 1e-6:.6g} uJ, "
            f"EDP {f['edp']:.6g} pJ*s\n"
            f"{'exhaustive' if res.exhaustive else 'heuristic'} search, {res.evaluations} simulated candidates, "
            f"seed {res.seed}{', seeded with the config mapping' if res.seeded else ''}")


def _write_dir(args: argparse.Namespace, res, text: str) -> None:
    with output_dir(args.output, kind="search", force=args.force, command=args.command_line) as tmp:
        write_outputs(res, tmp, text)


def write_outputs(res, out: Path, text: str) -> None:
    with atomic_path(out / "best-mapping.yaml") as tmp:
        tmp.write_text(text, encoding="utf-8")
    rows = _pareto_rows(res)
    with atomic_path(out / "pareto.csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["latency_s", "cycles", "energy_pj", "edp", "best", "groups"])
            for r in rows:
                w.writerow([r["latency_s"], r["cycles"], r["energy_pj"], r["edp"], int(r["best"]), r["groups"]])
    with atomic_path(out / "pareto.png") as tmp:
        plot_pareto(res, tmp)


def _pareto_rows(res) -> list[dict]:
    from einarray.search.model import figures

    best = res.figures
    rows = []
    for m, r in res.pareto:
        f = figures(r)
        rows.append({**f, "best": f["cycles"] == best["cycles"] and f["energy_pj"] == best["energy_pj"],
                     "groups": " | ".join("+".join(g["einsums"]) if len(g["einsums"]) <= 3 else g["name"]
                                          for g in m["groups"])})
    return rows


def plot_pareto(res, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from einarray.search.model import figures

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if res.cloud:
        ax.scatter([x * 1e3 for x, _ in res.cloud], [e * 1e-6 for _, e in res.cloud], s=6, color="0.75",
                   label="other mappings combined", zorder=1)
    pts = [figures(r) for _, r in res.pareto]
    ax.plot([p["latency_s"] * 1e3 for p in pts], [p["energy_pj"] * 1e-6 for p in pts], "o-", color="tab:blue",
            label="Pareto front (simulated)", zorder=3)
    b = res.figures
    ax.plot([b["latency_s"] * 1e3], [b["energy_pj"] * 1e-6], "*", ms=16, color="tab:red",
            label=f"best ({res.objective})")
    if res.hand_result is not None:
        h = figures(res.hand_result)
        ax.plot([h["latency_s"] * 1e3], [h["energy_pj"] * 1e-6], "s", ms=9, color="tab:green",
                label="config mapping")
    lat = [p["latency_s"] for p in pts] + [x for x, _ in res.cloud]
    if lat and min(lat) > 0 and max(lat) / min(lat) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"{res.workload} on {res.arch}: latency vs energy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _big(n: int) -> str:
    """A count that may exceed a float: 415,872 or 8.80e+50 or 10^400."""
    if n < 10**6:
        return f"{n:,}"
    if n < 10**300:
        return f"{float(n):.3g}"
    return f"10^{len(str(n)) - 1}"


def _print(res, text: str, out: Path | None, fmt: str = "table") -> None:
    """The best mapping's figures (beside the config's own mapping, when it has one), the
    search's statistics, the Pareto set and the mapping: section to paste (on stdout in the
    table format, else on stderr with the other notes)."""
    from rich.console import Console

    con = Console()
    f = res.figures
    hand = None
    if res.hand_result is not None:
        from einarray.search.model import figures
        hand = figures(res.hand_result)
    cols = [Column("metric"), Column("found", numeric=True)] + (
        [Column("config mapping", numeric=True)] if hand else [])
    t = DataTable(f"best mapping of {res.workload} on {res.arch} (objective {res.objective})", cols)
    rows = [("cycles", "cycles", lambda x: x["cycles"], lambda v: f"{v:,}"),
            ("latency (ms)", "latency_s", lambda x: x["latency_s"], lambda v: f"{v * 1e3:.6g}"),
            ("energy (uJ)", "energy_pj", lambda x: x["energy_pj"], lambda v: f"{v * 1e-6:.6g}"),
            ("EDP (pJ*s)", "edp", lambda x: x["edp"], lambda v: f"{v:.6g}")]
    rows += [(f"{u} PE util", f"pe_util_{u}", (lambda u: lambda x: x["utilization"].get(u, 0.0))(u),
              lambda v: f"{v:.4f}") for u in f["utilization"]]
    for label, key, get, show in rows:
        t.add(Cell(key, label), Cell(get(f), show(get(f))), *([Cell(get(hand), show(get(hand)))] if hand else []))
    stats = (f"{'exhaustive' if res.exhaustive else 'heuristic'} search: space {_big(res.space_size)} mappings "
             f"({res.segments} candidate groups), {res.evaluations} simulated, {res.pruned} pruned, "
             f"{res.illegal} illegal, {res.seconds:.2f} s ({res.evaluations / max(res.seconds, 1e-9):.0f}/s), "
             f"seed {res.seed}{', seeded with the config mapping' if res.seeded else ''}")
    pt = DataTable("Pareto set: latency vs energy (simulated)",
                   [Column("latency (ms)", lambda v: f"{v * 1e3:.6g}", True, "latency_s"),
                    Column("cycles", lambda v: f"{v:,}", True),
                    Column("energy (uJ)", lambda v: f"{v * 1e-6:.6g}", True, "energy_pj"),
                    Column("EDP (pJ*s)", lambda v: f"{v:.4g}", True, "edp"), Column("groups"),
                    Column("best", lambda b: "best" if b else "")])
    for r in _pareto_rows(res):
        pt.add(r["latency_s"], r["cycles"], r["energy_pj"], r["edp"], r["groups"], r["best"])
    if fmt == "table":
        emit([t], fmt, console=con)
        con.print(stats)
        emit([pt], fmt, console=con)
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        emit([t, pt], fmt)
        note(fmt, stats)
        sys.stderr.write(text)
    if out is not None:
        note(fmt, f"written: {out / 'best-mapping.yaml'}, {out / 'pareto.csv'}, {out / 'pareto.png'}", console=con)


# -- run configs: every layer ---------------------------------------------------------------
LAYER_COLUMNS = ("layer", "cascade", "instances", "cycles", "latency_s", "energy_pj", "edp",
                 "run_cycles", "run_energy_pj", "evaluations", "exhaustive")


def _search_run(args: argparse.Namespace) -> int:
    """Search every layer of a run config (as its ``search:`` section does in ``einarray run``)."""
    from einarray.flow import load_run
    from einarray.search import mapping_yaml, search
    from einarray.search.constraints import SearchProblem, parse_search_section
    from einarray.search.model import figures
    from einarray.search_eval import SIMULATOR
    from einarray.default_mapping import derive_default, mapping_section
    from einsum.yamlsrc import Source
    from sim.results import simulate

    if args.partition:
        raise ConfigError("--partition searches the inner part of a partitioned rank of one cascade; "
                          "a run config is searched layer by layer without it")
    spec = load_run(args.config, ranks=parse_ranks(args.rank), sets=args.sets)
    out = Path(args.output) if args.output else None
    if out is not None:
        check_output(out, force=args.force, kind="search")  # refuse before searching, not after
    sec, ssrc, sp = spec.search if spec.search is not None else (None, Source(str(args.config)), ("search",))
    bar = task = None
    if not args.no_progress and output_format(args) == "table":
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("search {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), transient=True, console=Console(stderr=True))
        task = bar.add_task(spec.name, total=len(spec.layers))
        bar.start()
    found = []
    done: dict[str, object] = {}  # layers with the same shapes, mapping and settings are searched once
    try:
        for lay in spec.layers:
            cfg = lay.config
            if bar is not None:
                bar.update(task, description=f"{spec.name}: {lay.name}")
            settings = parse_search_section(sec, ssrc, sp, cfg.cascade, cfg.arch, objective=args.objective,
                                            budget=args.budget, seed=args.seed)
            if args.no_seed:
                settings = dataclasses.replace(settings, seed_mapping=False)
            # as a run's search: section (einarray.flow.search_layer): seeded with the derived default
            seeded = derive_default(cfg)[0] if cfg.mapping_origin == "default" else cfg
            seed = mapping_section(seeded) if seeded is not cfg else None
            key = json.dumps([cfg.cascade.name, {r: i.size for r, i in cfg.cascade.ranks.items()},
                              dict(cfg.cascade.params), cfg.instances, mapping_section(seeded), seed is None,
                              repr(settings)], sort_keys=True, default=str)
            if key not in done:
                res = search(SearchProblem(seeded, settings, seed, cfg.source or str(args.config)), SIMULATOR)
                done[key] = (res, figures(res.hand_result if res.hand_result is not None else simulate(seeded)))
            found.append((lay, *done[key]))
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    rows = []
    for lay, res, d in found:
        f = res.figures
        rows.append({"layer": lay.name, "cascade": lay.cascade, "instances": res.instances,
                     "cycles": f["cycles"], "latency_s": f["latency_s"], "energy_pj": f["energy_pj"],
                     "edp": f["edp"], "run_cycles": d["cycles"], "run_energy_pj": d["energy_pj"],
                     "evaluations": res.evaluations, "exhaustive": res.exhaustive})
    obj = found[0][1].objective
    model = "model" in spec.workload
    what = spec.workload.get("model") or spec.workload.get("cascade")
    header = (f"einarray search: {spec.name} ({what}) on {spec.arch.name}, objective {obj}; every layer "
              "searched as by a search: section of the run config\n"
              f"{sum(r['cycles'] for r in rows):,} cycles over all layers (with the run's mappings: "
              f"{sum(r['run_cycles'] for r in rows):,}), {sum(r['evaluations'] for r in rows)} simulated "
              "candidates")
    name = "best-mappings.yaml" if model else "best-mapping.yaml"
    text = _mappings_yaml({lay.name: res.mapping for lay, res, _ in found}, header) if model \
        else mapping_yaml(found[0][1].mapping, header)
    if out is not None:
        with output_dir(args.output, kind="search", force=args.force, command=args.command_line) as tmp:
            with atomic_path(tmp / name) as t:
                t.write_text(text, encoding="utf-8")
            with atomic_path(tmp / "layers.csv") as t:
                with open(t, "w", newline="", encoding="utf-8") as fh:
                    w = csv.DictWriter(fh, fieldnames=list(LAYER_COLUMNS))
                    w.writeheader()
                    w.writerows(rows)
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps({"config": str(args.config), "objective": obj,
                          "layers": [{**r, "mapping": res.mapping} for r, (_, res, _) in zip(rows, found)],
                          "mappings_yaml" if model else "mapping_yaml": text},
                         indent=2, sort_keys=True, default=str))
        return 0
    from rich.console import Console

    con = Console()
    ints = (lambda v: f"{v:,}")
    t = DataTable(f"best mapping of every layer of {spec.name} on {spec.arch.name} (objective {obj})",
                  [Column("layer"), Column("cascade"), Column("instances", ints, True),
                   Column("cycles", ints, True), Column("run's cycles", ints, True, "run_cycles"),
                   Column("energy (uJ)", lambda v: f"{v * 1e-6:.6g}", True, "energy_pj"),
                   Column("simulated", numeric=True, key="evaluations"), Column("exhaustive", lambda b: "all" if b else "")])
    for r in rows:
        t.add(r["layer"], r["cascade"], r["instances"], r["cycles"], r["run_cycles"], r["energy_pj"],
              r["evaluations"], r["exhaustive"])
    emit([t], fmt, console=con)
    (sys.stdout if fmt == "table" else sys.stderr).write(text)
    sys.stdout.flush()
    if out is not None:
        note(fmt, f"written: {out / name}, {out / 'layers.csv'}", console=con)
    return 0


def _mappings_yaml(maps: dict, header: str) -> str:
    """A ``mappings:`` section (one mapping per layer) to paste into a run config."""
    from einarray.search import mapping_yaml

    lines = ["".join(f"# {line}\n" for line in header.splitlines()), "mappings:\n"]
    for name, m in maps.items():
        body = mapping_yaml(m).splitlines(keepends=True)
        assert body[0] == "mapping:\n"
        lines.append(f"  {json.dumps(name)}:\n")
        lines.extend("  " + b for b in body[1:])
    return "".join(lines)
