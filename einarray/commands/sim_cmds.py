"""``einarray simulate``: cycles, utilization, traffic and energy of a mapped cascade."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

from einsum.atomic import atomic_path
from einsum.errors import EinarrayError

from einarray.tables import Cell, Column, Table, add_format_args, emit, note, output_format


MAX_STEPPED = 1_000_000  # tile steps --trace / --every-tile will step one by one


def _rank_arg(s: str) -> tuple[str, int]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected RANK=SIZE, got {s!r}")
    k, v = s.split("=", 1)
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{k}: size {v!r} is not an integer") from None
    return k.strip(), n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="simulate a mapped cascade: cycles, utilization, traffic, energy",
        description="Simulate CONFIG (einsum or workload, arch and mapping sections) tile by tile. "
                    "Identical steady-state tiles are counted once and multiplied where exact. Without "
                    "a mapping: section the mapping is derived (the best of a few fused and unfused "
                    "candidates, see einarray.default_mapping) and the output says which one ran.")
    p.add_argument("config", help="YAML config with einsum:/workload:, arch: and mapping:")
    add_format_args(p, json_help="print the full result as JSON (the same as --format json)")
    p.add_argument("--rank", action="append", type=_rank_arg, default=[], metavar="R=N",
                   help="override a rank size (repeatable), e.g. --rank P=65536")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="sets",
                   help="override a config value (repeatable), e.g. --set arch.array2d.rows=128")
    p.add_argument("--functional", action="store_true",
                   help="also run the mapped cascade tile by tile in NumPy and compare with the reference")
    p.add_argument("--trace", metavar="FILE", help="write a per-step CSV trace of unit activity and traffic")
    p.add_argument("--show-mapping", action="store_true",
                   help="print the mapping that ran as a loop nest per memory level (Timeloop map.txt "
                        "style: loops with tiles, tensors per level, each Einsum's unit, spatial and "
                        "temporal extents, stages and deferrals) and where it came from")
    p.add_argument("--every-tile", action="store_true",
                   help="step every tile (no steady-state multiplication); slow for large runs")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mapping.config import load_config
    from sim.results import simulate

    from einarray.default_mapping import derive_default, mapping_policy
    from mapping.spec import Config

    fmt = output_format(args)
    ranks = dict(args.rank)
    loaded = load_config(args.config, ranks=ranks, sets=args.sets, allow_hierarchy=True)
    if not isinstance(loaded, Config):  # a memory-hierarchy arch: mapping.nest_mapping.NestConfig
        return _run_nest(args, loaded)
    cfg, choice = derive_default(loaded)
    want_trace = bool(args.trace)
    if want_trace or args.every_tile:
        steps = sum(cfg.instances * math.prod(lp.trips for lp in g.loops) for g in cfg.mapping.groups)
        if steps > MAX_STEPPED:
            opt = "--trace" if want_trace else "--every-tile"
            raise EinarrayError(f"{opt}: the mapping has {steps:,} tile steps, more than {MAX_STEPPED:,} "
                                "that can be stepped one by one; shrink the ranks (--rank) or instances")
    res = simulate(cfg, fast=not args.every_tile and not want_trace, trace=want_trace)
    trace = res.pop("_trace", None)
    res["mapping_origin"] = cfg.mapping_origin
    res["mapping_policy"] = mapping_policy(cfg.mapping_origin, choice.as_dict() if choice else None)
    if want_trace:
        units = list(cfg.arch.units)
        cols = ["group", "kind", "load_start", "load_end", "compute_start", "compute_end",
                "store_start", "store_end", "dram_read_words", "dram_write_words"] + \
               [f"{u}_busy_cycles" for u in units]

        def w(fh):
            wr = csv.writer(fh)
            wr.writerow(cols)
            for row in trace:
                wr.writerow(["" if x is None else x if isinstance(x, (str, int)) else float(x) for x in row])
        try:
            with atomic_path(args.trace) as tmp, open(tmp, "w", newline="") as fh:
                w(fh)
        except OSError as exc:
            raise EinarrayError(f"--trace {args.trace}: {exc.strerror or exc}") from None
    if args.functional:
        from sim.functional import check_functional
        fr = check_functional(cfg)
        res["functional"] = {"ok": fr.ok, "max_abs_err": fr.max_abs_err, "worst_tensor": fr.worst_tensor,
                             "einsum_evaluations": fr.einsum_evaluations}
    if args.show_mapping:
        from einarray.loopnest import loop_nest

        res["loop_nest"] = loop_nest(cfg, origin=f"mapping: {res['mapping_origin']}, {res['mapping_policy']}"
                                     if res["mapping_policy"] != res["mapping_origin"] else
                                     f"mapping: {res['mapping_origin']}")
        if fmt == "table":
            print(res["loop_nest"])
        else:
            note(fmt, res["loop_nest"])
    if fmt == "json":
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        _print_tables(res, fmt)
    if args.functional and not res["functional"]["ok"]:
        print(f"einarray simulate: functional check FAILED: {res['functional']['worst_tensor']} differs "
              f"from the reference by {res['functional']['max_abs_err']:.3g}", file=sys.stderr)
        return 1
    return 0


def _refuse_long_nests(cfgs) -> None:
    """``--every-tile`` steps each nest's timeline one step at a time (sim.nest_timeline): refused
    past :data:`MAX_STEPPED` steps."""
    for c in cfgs:
        if c.steps > MAX_STEPPED:
            whose = "the nest" if len(cfgs) == 1 else f"Einsum {c.einsum.name}'s nest"
            raise EinarrayError(f"--every-tile: {whose} has {c.steps:,} steps, more than {MAX_STEPPED:,} that can "
                                "be stepped one by one; shrink the ranks")


def _run_nest(args: argparse.Namespace, cfg) -> int:
    """A memory-hierarchy (Timeloop-style) config: per-level access counts, cycles, energy."""
    from sim.nest import simulate_nest
    from sim.nest_text import map_text, table_text

    for opt, on in (("--functional", args.functional), ("--trace", args.trace)):
        if on:
            raise EinarrayError(f"{opt} applies to array configs, not to a memory-hierarchy arch")
    from mapping.nest_mapping import CascadeNest

    if isinstance(cfg, CascadeNest):
        return _run_cascade_nest(args, cfg)
    if args.every_tile:
        _refuse_long_nests([cfg])
    res = simulate_nest(cfg, every_step=args.every_tile)
    nest = map_text(cfg) if args.show_mapping else None
    fmt = output_format(args)
    if fmt == "json":
        out = res.as_dict()
        if nest is not None:
            out["loop_nest"] = nest
        print(json.dumps(out, indent=2, sort_keys=True))
    elif fmt == "csv":
        if nest is not None:
            note(fmt, nest)
        emit([nest_table(res)], fmt)
    else:
        if nest is not None:
            print(nest)
        print(table_text(res))
    return 0


def _run_cascade_nest(args: argparse.Namespace, cn) -> int:
    """Several Einsums on a memory hierarchy: each one's table, then the totals
    (:mod:`sim.nest_cascade`)."""
    from sim.nest_cascade import cascade_text, simulate_cascade_nest
    from sim.nest_text import map_text

    if args.every_tile:
        _refuse_long_nests(cn.configs)
    res = simulate_cascade_nest(cn, every_step=args.every_tile)
    nests = {c.einsum.name: map_text(c) for c in cn.configs} if args.show_mapping else {}
    fmt = output_format(args)
    if fmt == "json":
        out = res.as_dict()
        for n, t in nests.items():
            out["einsums"][n]["loop_nest"] = t
        print(json.dumps(out, indent=2, sort_keys=True))
    elif fmt == "csv":
        for n, t in nests.items():
            note(fmt, f"{n}:\n{t}")
        emit([nest_table(r) for _, r in res.einsums], fmt)
    else:
        print(cascade_text(res, nests))
    return 0


def _energy_column(unit: str) -> str:
    """The energy column's name with its unit (``energy_pj``; ``energy_mac_equivalent`` for an
    arch whose energies are relative to one MAC)."""
    import re

    return "energy_" + (re.sub(r"[^0-9a-z]+", "_", unit.lower()).strip("_") or "pj")


def nest_table(res) -> Table:
    """The memory-hierarchy result's per-level counts (per instance; energy over all
    instances), the rows of ``sim.nest_text.table_text``, as raw numbers."""
    t = Table(f"{res.workload} on {res.arch}: per level and tensor",
              [Column("level"), Column("tensor"), Column("instances", numeric=True),
               Column("tile", numeric=True), Column("reads", numeric=True), Column("fills", numeric=True),
               Column("updates", numeric=True), Column(_energy_column(res.energy_unit), numeric=True)])
    num = (lambda x: int(x) if x.denominator == 1 else float(x))
    for lv in res.levels:
        for name, st in lv.tensors.items():
            t.add(lv.name, name, lv.utilized, st.tile, num(st.reads), num(st.fills), num(st.updates),
                  st.energy_pj)
        t.add(lv.name, "(leak)", lv.instances, None, None, None, None, lv.leak_pj)
    from sim.nest_vector import VectorResult

    if isinstance(res, VectorResult):  # an Einsum on the vector unit
        t.add("vector", res.unit, res.units, None, sum(res.ops.values()), None, None, res.vector_energy_pj)
    else:
        t.add("compute", "MAC", res.macs_utilized, None, res.computes, None, None, res.mac_energy_pj)
    return t


def sim_tables(res: dict) -> list[Table]:
    """simulate's tables: utilization per unit, traffic per memory level, and per Einsum."""
    f4 = (lambda v: f"{v:.4f}")
    g4 = (lambda v: f"{v:.4g}")
    ints = (lambda v: f"{v:,.0f}")
    u = Table("utilization", [Column("unit"), Column("busy", f4, True), Column("PE util", f4, True),
                              Column("MAC util", f4, True)])
    for n, d in res["utilization"].items():
        u.add(n, d["busy"], d["pe_util"], d["mac_util"])
    t = Table("traffic (words)", [Column("level"), Column("reads", ints, True), Column("writes", ints, True),
                                  Column("MB", g4, True),
                                  Column("read bw", g4, True), Column("peak read bw", g4, True),
                                  Column("write bw", g4, True), Column("peak write bw", g4, True)])
    for lv, d in res["traffic"].items():
        t.add(lv, d["reads"], d["writes"], d["bytes"] / 1e6, d["read_bw"], d["peak_read_bw"], d["write_bw"],
              d["peak_write_bw"])
    e = Table("per Einsum", [Column("einsum"), Column("unit"), Column("group"),
                             Column("busy cycles", ints, True),
                             Column("actions", lambda a: ", ".join(f"{k}={v:,}" for k, v in a.items())),
                             Column("energy uJ", g4, True)])
    for n, d in res["einsums"].items():
        e.add(n, d["unit"], d["group"], float(d["cycles"]), dict(d["actions"]), float(d["energy_pj"]) / 1e6)
    tens = res["energy_pj"].get("tensors", {})
    levels = [lv for lv in res["traffic"] if any(lv in d["levels"] for d in tens.values())]
    m = Table("memory energy per tensor and level (uJ)",
              [Column("tensor"), Column("role")]
              + [Column(lv, g4, True, f"{lv}_pj") for lv in levels] + [Column("total", g4, True, "total_pj")])
    for name, d in tens.items():
        m.add(name, d["role"], *[Cell(d["levels"].get(lv, 0.0), g4(d["levels"].get(lv, 0.0) / 1e6))
                                 for lv in levels],
              Cell(sum(d["levels"].values()), g4(sum(d["levels"].values()) / 1e6)))
    return [u, t, e, m]


def _print_tables(res: dict, fmt: str) -> None:
    from rich.console import Console

    con = Console()
    how = res["mapping_origin"] if res["mapping_policy"] == res["mapping_origin"] else \
        f"{res['mapping_origin']}, {res['mapping_policy']}"
    note(fmt, f"[bold]{res['workload']}[/] on [bold]{res['arch']}[/] x{res['instances']}: "
              f"{res['cycles']:,} cycles = {res['latency_s'] * 1e3:.4g} ms, "
              f"energy {res['energy_pj']['total'] / 1e6:.4g} uJ, EDP {res['edp']:.4g} pJ*s", console=con)
    note(fmt, f"mapping: {how}", console=con)
    if "cores" in res:  # several cores (sim.engine, "Several cores")
        cs = res["cores"]
        per = ", ".join(f"{p['group']}: {p['cores']} cores x {p['instances_each']} at {p['read_bw_each']:.4g} "
                        f"words/cycle each" for p in cs["phases"])
        line = (f"{cs['count']} cores split the {res['instances']} instances "
                f"({'/'.join(map(str, cs['instances_per_core']))} per core); {per}"
                if cs["partition"] == "instances" else
                f"{cs['count']} cores split its one instance along {cs['partition']}; {per}")
        if "noc" in cs:
            n = cs["noc"]
            line += (f"; {n['topology']} network {'x'.join(map(str, n['dims']))}: {n['word_hops']:,} word-hops, "
                     f"{res['energy_pj']['noc'] / 1e6:.4g} uJ")
        note(fmt, line, console=con)
    for t, d in res.get("indirect", {}).items():  # gathers and scatters (sim.results)
        where = ", ".join(f"{h} in {g}" for g, h in d["groups"].items())
        note(fmt, f"{d['kind']} of {t}: costed {where}; {d['rows']:,} rows in whole "
                  f"{d['access_words']}-word accesses, {d['dram_reads']:,} words read and "
                  f"{d['dram_writes']:,} written", console=con)
    emit(sim_tables(res), fmt, console=con)
    if "functional" in res:
        f = res["functional"]
        note(fmt, f"functional check: {'OK' if f['ok'] else 'FAILED'} (max abs error {f['max_abs_err']:.3g})",
             console=con)
