# amaranth: UnusedElaboratable=no
"""``einarray generate``: the fused 1-pass attention engine's Verilog from a simulation config.

The config is the one ``einarray simulate`` reads: its workload must be the cascade
``attention-fixed-1pass`` (the engine's golden model), its arch gives the PE array
(``array2d.rows`` x ``array2d.cols``; ``array1d.width`` = rows x F, a lane per query row
and value column)
and the word width (``data_bits.default``), its ranks give the head dimension (E = F), the
key chunk (P0, a multiple of the columns) and the longest key sequence (P), its params the
formats. The mapping, given or derived, must bind the cascade as the engine computes it
(FuseMax's binding: QK, LM, SLN, SLD, SLNV on the 2-D array, RM, PRM, SPD, RD, SPNV, RNV, AV
on the 1-D array). Anything else is refused with an error naming the file, line and YAML
path of the value the engine cannot build.

Writes into the output directory (rules of :mod:`einsum.outdir`): ``attention_engine.v``
(top module ``attention_engine``) and ``attention_engine.json`` (ports, formats, parameters,
the cascade params of its golden model and the predicted cycles of the config's head).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from einsum.errors import ConfigError, EinarrayWarning

TOP = "attention_engine"
#: AV's latency on the 1-D array: NORM (1), the reciprocal (18), the multiplier's two stages
#: and the lane loop's own cycle (hw.attention_engine: FIN lasts lanes + 21)
DIV_LATENCY = 22
CASCADE = "attention-fixed-1pass"
ON_2D = ("QK", "LM", "SLN", "SLD", "SLNV")
ON_1D = ("RM", "PRM", "SPD", "RD", "SPNV", "RNV", "AV")
# params of the cascade the engine fixes (the rest, width/s_frac/qk_shift, it takes)
FIXED_PARAMS = {"acc_width": 40, "t_one": 65536, "ln_frac": 15, "ln_width": 16}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="write the fused 1-pass attention engine's Verilog for a config",
        description="Build the fused 1-pass attention engine (hw/attention_engine.py: an R x C PE "
                    "array and a 1-D array of R lanes with AXI-Stream ports q, k, v in and o out) "
                    "from the config einarray simulate reads (workload attention-fixed-1pass, its "
                    "arch and mapping), and write DIR/attention_engine.v and "
                    "DIR/attention_engine.json (ports, formats, parameters, predicted cycles). "
                    "The engine is bit-identical to einarray eval of the same cascade. A config "
                    "the engine cannot build is refused with the file, line and YAML path.")
    p.add_argument("config", help="YAML config with workload (or einsum), arch and mapping sections")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory (new, empty, or an earlier generate's)")
    p.add_argument("--force", action="store_true",
                   help="also replace another einarray command's output in DIR")
    p.set_defaults(handler=cmd_generate)


def _locate(path: str) -> tuple:
    """The config's own Source (for errors about its workload section)."""
    from einsum.yamlsrc import load as load_yaml

    data, src = load_yaml(Path(path))
    return data if isinstance(data, dict) else {}, src


def engine_from_config(path: str):
    """``(engine, cfg)``: the :class:`hw.attention_engine.AttentionEngine` a config describes."""
    from hw.attention_engine import AttentionEngine
    from mapping.config import load_config

    from einarray.default_mapping import derive_default

    cfg, _choice = derive_default(load_config(path))
    data, src = _locate(path)
    c, arch = cfg.cascade, cfg.arch
    asrc, abase = arch.lines, arch.base
    wkey = "workload" if "workload" in data else "einsum"

    def werr(sub: tuple, msg: str) -> ConfigError:
        return src.error((wkey,) + sub, msg)

    def aerr(sub: tuple, msg: str) -> ConfigError:
        return asrc.error(abase + sub, msg) if asrc is not None else ConfigError(msg, arch.source)

    if c.name != CASCADE:
        raise werr(("cascade",), f"the engine computes the cascade {CASCADE!r}, not {c.name!r}")
    from einsum.load import load_cascade

    ref = load_cascade(CASCADE, ranks={r: c.ranks[r].size for r in ("M", "P", "E", "F", "P0")},
                       params=dict(c.params))
    if [str(e) for e in c.einsums] != [str(e) for e in ref.einsums]:
        raise werr((), f"the cascade named {CASCADE!r} has other expressions than the library's; "
                       "the engine computes the library's")
    for k, v in FIXED_PARAMS.items():
        if c.params[k] != v:
            raise werr(("params", k), f"the engine computes {k} = {v}, got {c.params[k]:g}")
    if "array2d" not in arch.units or "array1d" not in arch.units:
        raise aerr((), "the engine needs an array2d (the PE array) and an array1d (its lanes)")
    a2, a1 = arch.units["array2d"], arch.units["array1d"]
    rk = {r: c.ranks[r].size for r in ("M", "P", "E", "F", "P0")}
    if rk["E"] != rk["F"]:
        raise werr(("ranks", "F"), f"the engine's value rows have head_dim = E = {rk['E']} "
                                   f"elements, got F = {rk['F']}")
    if a1.cols != a2.rows * rk["F"]:
        raise aerr(("array1d", "width"), f"the engine has a 1-D lane per query row and value "
                                         f"column: width must be array2d.rows x F = {a2.rows} x "
                                         f"{rk['F']} = {a2.rows * rk['F']}, got {a1.cols}")
    width, frac, qk_shift = (c.params[k] for k in ("width", "s_frac", "qk_shift"))
    if any(v != int(v) for v in (width, frac, qk_shift)):
        raise werr(("params",), "width, s_frac and qk_shift must be integers")
    if arch.bits("default") != width:
        raise aerr(("data_bits", "default"), f"the engine's words are the cascade's width "
                                             f"{int(width)} bits, got {arch.bits('default')}")
    for name in ON_2D + ON_1D:
        want = "array2d" if name in ON_2D else "array1d"
        em = cfg.mapping.einsums.get(name)
        if em is not None and em.unit != want:
            where = em.ypath + ("unit",) if em.ypath else ()
            msg = f"the engine runs {name} on {want}, the mapping puts it on {em.unit}"
            raise (src.error(where, msg) if where else ConfigError(
                f"{path}: mapping (derived): {msg}; give a mapping section"))
    kwargs = {"rows": a2.rows, "cols": a2.cols, "head_dim": rk["E"], "chunk": rk["P0"],
              "width": int(width), "frac_bits": int(frac), "qk_shift": int(qk_shift),
              "max_keys": rk["P"]}
    try:
        eng = AttentionEngine(**kwargs)
    except ConfigError as exc:
        msg = exc.message.removeprefix("AttentionEngine: ")
        where = {"rows": ("array2d", "rows"), "cols": ("array2d", "cols")}
        for key, sub in where.items():
            if msg.startswith(key):
                raise aerr(sub, msg) from None
        raise werr(("ranks",), msg) from None
    div = a1.ops.get("div")
    if div is None or (div.cycles, div.latency) != (a1.cols, DIV_LATENCY):
        got = "none" if div is None else f"{{cycles: {div.cycles}, latency: {div.latency}}}"
        raise aerr(("array1d", "ops") + (("div",) if div is not None else ()),
                   f"the engine's lanes share one divider (AV: an 18-cycle reciprocal per row, "
                   f"then one lane a cycle through a 2-stage multiplier): div must be "
                   f"{{cycles: {a1.cols}, latency: {DIV_LATENCY}}} (cycles = array1d.width), "
                   f"got {got}")
    if c.params["rm_init"] > eng.n_min:
        raise werr(("params", "rm_init"), f"rm_init must be at most {eng.n_min}, the least "
                                          f"integer part of a base-2 score")
    return eng, cfg


def cmd_generate(args: argparse.Namespace) -> int:
    from hw.export import to_verilog

    from einsum.outdir import output_dir

    eng, cfg = engine_from_config(args.config)
    m, p = cfg.cascade.ranks["M"].size, cfg.cascade.ranks["P"].size
    desc = eng.describe()
    desc["top"] = TOP
    desc["config"] = str(args.config)
    from sim.results import simulate

    simulated = int(simulate(cfg)["cycles"])
    closed = eng.cycles(m, p)
    desc["predicted"] = {
        "M": m, "P": p, "cycles": simulated, "closed_form": closed,
        "what": "cycles from the first q handshake to the last o handshake, both included, "
                "inputs always valid and the output always ready: einarray simulate of the "
                "config (cycles) and the engine's closed form (closed_form, measured on Icarus)",
    }
    if simulated != closed:
        why = (" (the simulator keeps the keys and values of a single chunk in the buffer "
               "across query tiles; the engine's protocol streams them again for every tile)"
               if p <= eng.chunk and m > eng.rows else
               " (the mapping was not given: the engine's schedule is the mapping section of "
               "mapping/configs/attention-engine.yaml)" if cfg.mapping_origin != "given" else "")
        warnings.warn(EinarrayWarning(
            f"{args.config}: einarray simulate predicts {simulated:,} cycles for this head, the "
            f"engine takes {closed:,}{why}"))
    text = to_verilog(eng, TOP)
    with output_dir(args.output, kind="generate", force=args.force, command=args.command_line) as tmp:
        (tmp / f"{TOP}.v").write_text(text, encoding="utf-8")
        (tmp / f"{TOP}.json").write_text(json.dumps(desc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}/{TOP}.v and {TOP}.json: {eng.rows} x {eng.cols} PEs, "
          f"head_dim {eng.head_dim}, chunk {eng.chunk}; a head of M={m}, P={p} takes "
          f"{closed:,} cycles (einarray simulate: {simulated:,})")
    return 0
