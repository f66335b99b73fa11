"""``einarray simulate``: cycles, utilization, traffic and energy of a mapped cascade."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

from einsum.atomic import atomic_path
from einsum.errors import EinarrayError


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
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
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
    from mapping.spec import load_config
    from sim.results import simulate

    from einarray.default_mapping import derive_default, mapping_policy

    from mapping.hierarchy import NestConfig

    ranks = dict(args.rank)
    loaded = load_config(args.config, ranks=ranks, sets=args.sets, allow_hierarchy=True)
    if isinstance(loaded, NestConfig):
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
        if not args.json:
            print(res["loop_nest"])
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        _print_table(res)
    if args.functional and not res["functional"]["ok"]:
        print(f"einarray simulate: functional check FAILED: {res['functional']['worst_tensor']} differs "
              f"from the reference by {res['functional']['max_abs_err']:.3g}", file=sys.stderr)
        return 1
    return 0


def _run_nest(args: argparse.Namespace, cfg) -> int:
    """A memory-hierarchy (Timeloop-style) config: per-level access counts, cycles, energy."""
    from sim.nest import map_text, simulate_nest, table_text

    for opt, on in (("--functional", args.functional), ("--trace", args.trace), ("--every-tile", args.every_tile)):
        if on:
            raise EinarrayError(f"{opt} applies to array configs, not to a memory-hierarchy arch")
    res = simulate_nest(cfg)
    nest = map_text(cfg) if args.show_mapping else None
    if args.json:
        out = res.as_dict()
        if nest is not None:
            out["loop_nest"] = nest
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        if nest is not None:
            print(nest)
        print(table_text(res))
    return 0


def _print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{res['workload']}[/] on [bold]{res['arch']}[/] x{res['instances']}: "
              f"{res['cycles']:,} cycles = {res['latency_s'] * 1e3:.4g} ms, "
              f"energy {res['energy_pj']['total'] / 1e6:.4g} uJ, EDP {res['edp']:.4g} pJ*s")
    how = res["mapping_origin"] if res["mapping_policy"] == res["mapping_origin"] else \
        f"{res['mapping_origin']}, {res['mapping_policy']}"
    con.print(f"mapping: {how}")
    t = Table(title="utilization")
    for c in ("unit", "busy", "PE util", "MAC util"):
        t.add_column(c)
    for u, d in res["utilization"].items():
        t.add_row(u, f"{d['busy']:.4f}", f"{d['pe_util']:.4f}", f"{d['mac_util']:.4f}")
    con.print(t)
    t = Table(title="traffic (words)")
    for c in ("level", "reads", "writes", "MB", "read bw / peak", "write bw / peak"):
        t.add_column(c)
    for lv, d in res["traffic"].items():
        t.add_row(lv, f"{d['reads']:,}", f"{d['writes']:,}", f"{d['bytes'] / 1e6:.4g}",
                  f"{d['read_bw']:.4g} / {d['peak_read_bw']:.4g}", f"{d['write_bw']:.4g} / {d['peak_write_bw']:.4g}")
    con.print(t)
    t = Table(title="per Einsum")
    for c in ("einsum", "unit", "group", "busy cycles", "actions", "energy uJ"):
        t.add_column(c)
    for n, d in res["einsums"].items():
        acts = ", ".join(f"{a}={v:,}" for a, v in d["actions"].items())
        t.add_row(n, d["unit"], d["group"], f"{d['cycles']:,.0f}", acts, f"{d['energy_pj'] / 1e6:.4g}")
    con.print(t)
    if "functional" in res:
        f = res["functional"]
        con.print(f"functional check: {'OK' if f['ok'] else 'FAILED'} (max abs error {f['max_abs_err']:.3g})")
