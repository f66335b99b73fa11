"""Subcommands for Einsum cascades: ``cascades``, ``show``, ``check``, ``eval``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from einsum import analysis
from einsum.cascade import Cascade
from einsum.errors import ConfigError, EinarrayWarning
from einsum.interp import EvalError, evaluate, output_dtype, random_inputs
from einsum.atomic import atomic_path
from einsum.load import LIBRARY_DIR, library_names, load_cascade, resolve
from einsum.shapes import fit_to_inputs
from mapping.config import override_error

from einarray.tables import Column, Table as DataTable, add_format_args, emit, note, output_format

from .common import add_override_args, parse_params, parse_ranks

# Evaluating in `check` is skipped above this many iteration points (a memory guard).
CHECK_EVAL_LIMIT = 300_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cascades", help="list the library of attention and layer cascades",
                       description="List the cascades shipped with einarray, with their passes "
                                   "over each rank at their default shapes.")
    add_format_args(p, json_help="print one JSON object (the same as --format json)")
    p.set_defaults(handler=cmd_cascades)

    p = sub.add_parser("show", help="print a cascade or draw its DAG",
                       description="Print a cascade (a library name or a YAML file) as text, as its "
                                   "YAML source, as a Graphviz DOT graph, or draw its DAG to a PNG.")
    p.add_argument("cascade", help="library name (see 'einarray cascades') or path to a YAML file")
    p.add_argument("--format", "-f", choices=["text", "yaml", "dot", "png"], default="text")
    p.add_argument("--output", "-o", help="output file (required for png; default stdout)")
    add_override_args(p)
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("check", help="validate a cascade, run it on random inputs, count ops and passes",
                       description="Parse and validate a cascade, evaluate the NumPy reference on "
                                   "seeded random inputs, and summarise Einsums, shapes, operation "
                                   "counts, intermediate sizes and the number of passes over each "
                                   "rank (FuseMax's definition; an alias rank counts for itself).")
    p.add_argument("cascade", help="library name or path to a YAML file")
    add_override_args(p)
    add_format_args(p, json_help="print the summary as one JSON object (the same as --format json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--no-eval", action="store_true",
                   help="skip the reference evaluation (for shapes too large to run)")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("eval", help="evaluate a cascade on tensors from an .npz file",
                       description="Evaluate a cascade with the NumPy reference interpreter on the "
                                   "input tensors of an .npz file (names as in the cascade's inputs) "
                                   "and write every output tensor to an .npz file. Rank sizes follow the "
                                   "arrays' shapes (as np.einsum takes them; ranks computed from "
                                   "others follow); --rank overrides a size. The reference computes in "
                                   "float64; outputs have the inputs' floating-point dtype (float32 "
                                   "in, float32 out; float64 for integer inputs).")
    p.add_argument("cascade", help="library name or path to a YAML file")
    p.add_argument("--inputs", "-i", required=True, help="input .npz file")
    p.add_argument("--output", "-o", required=True, help="output .npz file (written atomically)")
    p.add_argument("--all", action="store_true", help="also write every intermediate tensor")
    add_override_args(p)
    p.set_defaults(handler=cmd_eval)


def _load(args: argparse.Namespace) -> Cascade:
    ranks, params = parse_ranks(args.rank), parse_params(args.param)
    try:
        return load_cascade(args.cascade, ranks=ranks, params=params)
    except ConfigError as exc:  # a bad --rank/--param names the command line, not the cascade file
        raise override_error(exc, ranks, cli_params=params) from None


# -- cascades -------------------------------------------------------------------------
def cmd_cascades(args: argparse.Namespace) -> int:
    rows = []
    for name in library_names():
        c = load_cascade(name)
        rows.append({"name": name, "inputs": list(c.inputs), "outputs": list(c.outputs),
                     "einsums": len(c.einsums), "passes": analysis.passes(c),
                     "description": " ".join(c.description.split())})
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps({"library": str(LIBRARY_DIR), "cascades": rows}, indent=2))
        return 0
    short = (lambda d: d if len(d) <= 100 or fmt != "table" else d[:97].rsplit(" ", 1)[0] + " ...")
    t = DataTable(f"einarray cascade library ({len(rows)})",
                  [Column("name"), Column("einsums", numeric=True),
                   Column("passes", lambda p: " ".join(f"{k}:{v}" for k, v in p.items())),
                   Column("description", short)])
    for r in rows:
        t.add(r["name"], r["einsums"], r["passes"], r["description"])
    emit([t], fmt)
    return 0


# -- show -----------------------------------------------------------------------------
def to_dot(c: Cascade) -> str:
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {q(c.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    for t in c.inputs:
        info = c.tensors[t]
        lines.append(f"  {q('in:' + t)} [shape=ellipse, label={q(t + '[' + ','.join(info.ranks) + ']')}];")
    for e in c.einsums:
        style = ", style=bold" if e.output in c.outputs and e.kind != "init" else ""
        lines.append(f"  {q(e.name)} [shape=box{style}, label={q(e.stmt.text)}];")
    for e in c.einsums:
        for t in e.reads:
            if t in c.inputs:
                lines.append(f"  {q('in:' + t)} -> {q(e.name)};")
    for u, v, d in c.graph(with_carried=True).edges(data=True):
        attr = f'label={q(d["tensor"])}' + (", style=dashed, constraint=false" if d["carried"] else "")
        lines.append(f"  {q(u)} -> {q(v)} [{attr}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_png(c: Cascade, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = c.graph(with_carried=False).copy()
    for t in c.inputs:
        g.add_node("in:" + t)
        for e in c.einsums:
            if t in e.reads:
                g.add_edge("in:" + t, e.name)
    layers = [sorted(nodes, key=str) for nodes in nx.topological_generations(g)]
    pos: dict[str, tuple[float, float]] = {}
    for depth, nodes in enumerate(layers):
        # order a layer by the mean x of its predecessors (barycentre heuristic)
        def bary(n: str) -> float:
            xs = [pos[p][0] for p in g.predecessors(n) if p in pos]
            return sum(xs) / len(xs) if xs else 0.0
        nodes = sorted(nodes, key=bary) if depth else nodes
        for i, n in enumerate(nodes):
            pos[n] = ((i - (len(nodes) - 1) / 2) * 3.2, -depth * 1.0)
    width = max(len(L) for L in layers)
    fig, ax = plt.subplots(figsize=(max(8, 3.4 * width), max(4, 0.85 * len(layers) + 1.5)))
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowstyle="-|>", edge_color="#555",
                           node_size=3000)
    carried = [(u, v) for u, v, d in c.graph(with_carried=True).edges(data=True) if d["carried"]]
    if carried:
        nx.draw_networkx_edges(g, pos, edgelist=carried, ax=ax, style="dashed", edge_color="#c33",
                               connectionstyle="arc3,rad=0.4", arrows=True, node_size=3000)
    for n, (x, y) in pos.items():
        if n.startswith("in:"):
            label, fc = n[3:], "#dbe9f6"
        else:
            e = c.einsum(n)
            label, fc = e.stmt.text, ("#f6e3c8" if e.output in c.outputs else "#eeeeee")
        ax.text(x, y, label, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.3", fc=fc, ec="#333"))
    ax.set_title(f"{c.name}: {len(c.einsums)} Einsums; passes "
                 + ", ".join(f"{k}={v}" for k, v in analysis.passes(c).items()))
    ax.axis("off")
    ax.margins(0.15)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def to_text(c: Cascade) -> str:
    lines = [f"cascade {c.name}" + (f"  ({c.source})" if c.source else "")]
    if c.description:
        lines.append("  " + " ".join(c.description.split()))
    lines.append("  ranks:  " + ", ".join(f"{r}={i.size}" + (f" (part of {i.root})" if i.kind == "part" else "")
                                          for r, i in c.ranks.items()))
    if c.params:
        lines.append("  params: " + ", ".join(f"{k}={v}" for k, v in c.params.items()))
    lines.append("  inputs: " + ", ".join(f"{t}[{', '.join(c.tensors[t].ranks)}]" for t in c.inputs))
    lines.append("  outputs: " + ", ".join(c.outputs))
    lines.append("  einsums:")
    w = len(str(len(c.einsums)))
    for i, e in enumerate(c.einsums):
        lines.append(f"    {i:>{w}}  {e.stmt.text}")
    return "\n".join(lines) + "\n"


def cmd_show(args: argparse.Namespace) -> int:
    c = _load(args)
    if args.format == "png":
        if not args.output:
            raise ConfigError("--format png needs --output FILE.png")
        draw_png(c, Path(args.output))
        print(f"wrote {args.output}")
        return 0
    if args.format == "yaml":
        text = resolve(args.cascade).read_text(encoding="utf-8")
    elif args.format == "dot":
        text = to_dot(c)
    else:
        text = to_text(c)
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            tmp.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


# -- check ----------------------------------------------------------------------------
def check_summary(c: Cascade, *, seed: int = 0, evaluate_ref: bool = True) -> dict:
    s = analysis.summary(c)
    points = sum(e["ops"]["points"] for e in s["einsums"])
    ev: dict = {"ran": False}
    if evaluate_ref and points <= CHECK_EVAL_LIMIT:
        env = located_eval(c, random_inputs(c, seed))
        outs = {}
        for o in c.outputs:
            a = env[o]
            outs[o] = {"shape": list(a.shape), "finite": bool(np.all(np.isfinite(a))),
                       "min": float(np.nanmin(a)) if a.size else 0.0,
                       "max": float(np.nanmax(a)) if a.size else 0.0,
                       "mean": float(np.nanmean(a)) if a.size else 0.0}
        from einsum.interp import uses_int_codes

        kind = "integer codes in [-2048, 2047]" if uses_int_codes(c) else "standard normal"
        ev = {"ran": True, "seed": seed, "inputs": kind, "outputs": outs}
    elif evaluate_ref:
        ev = {"ran": False, "reason": f"{points} iteration points exceed the check limit "
                                      f"{CHECK_EVAL_LIMIT}; use 'einarray eval' on real inputs"}
    s["evaluation"] = ev
    return s


def cmd_check(args: argparse.Namespace) -> int:
    c = _load(args)
    s = check_summary(c, seed=args.seed, evaluate_ref=not args.no_eval)
    bad = [o for o, v in s["evaluation"].get("outputs", {}).items() if not v["finite"]]
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps(s, indent=2))
    else:
        con = Console()
        note(fmt, f"[bold]{escape(c.name)}[/bold]  {escape(c.source or '')}", console=con)
        emit(check_tables(s), fmt, console=con)
        note(fmt, "totals: " + ", ".join(f"{k}={v:,}" for k, v in s["totals"].items()), console=con)
        note(fmt, f"intermediate elements: {s['intermediate_elements']:,}", console=con)
        for par, d in s["partitions"].items():
            tail = f", the last of {d['last']} (ragged)" if d["last"] != d["chunk"] else ""
            note(fmt, f"partition: {par} = {d['outer']} x {d['inner']}: {d['chunks']} chunks of "
                      f"{d['chunk']}{tail}", console=con)
        note(fmt, "[bold]passes[/bold]: " + ", ".join(f"{k}={v}" for k, v in s["passes"].items()),
             console=con)
        ev = s["evaluation"]
        if ev["ran"]:
            for o, v in ev["outputs"].items():
                note(fmt, f"reference run (seed {ev['seed']}): {o} shape {v['shape']} "
                          f"range [{v['min']:.4g}, {v['max']:.4g}] "
                          + ("finite" if v["finite"] else "[red]NOT FINITE[/red]"), console=con)
        elif "reason" in ev:
            note(fmt, f"reference run skipped: {escape(ev['reason'])}", console=con)
    if bad:
        print(f"einarray check: error: outputs with NaN/inf on random inputs: {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0


def check_tables(s: dict) -> list[DataTable]:
    """check's tables: the tensors, and each Einsum with its points, ops and passes."""
    t = DataTable("tensors", [Column("tensor"), Column("kind"), Column("ranks", ",".join),
                              Column("shape", lambda v: "x".join(map(str, v))),
                              Column("elements", lambda v: f"{v:,}", True)])
    for name, info in s["tensors"].items():
        t.add(name, info["kind"], list(info["ranks"]), list(info["shape"]), info["elements"])
    e = DataTable("einsums", [Column("#", numeric=True), Column("einsum"), Column("reduce"),
                              Column("points", lambda v: f"{v:,}", True),
                              Column("ops", lambda o: ", ".join(f"{k}={v:,}" for k, v in o.items())),
                              Column("pass", lambda p: " ".join(f"{k}{v}" for k, v in p.items() if v > 1))])
    for i, x in enumerate(s["einsums"]):
        ops = {k: v for k, v in x["ops"].items() if k not in ("points", "outputs")}
        red = f"{x['reduce']}({','.join(x['reduced'])})" if x["reduce"] else ""
        e.add(i, x["expression"], red, x["ops"]["points"], ops, dict(x["pass"]))
    return [t, e]


# -- eval -----------------------------------------------------------------------------
def located_eval(c: Cascade, inputs: dict, *, file: str | None = None) -> dict[str, np.ndarray]:
    """:func:`einsum.interp.evaluate`, with an Einsum that cannot be evaluated (an
    out-of-range subscript) reported at its expression in the cascade's file."""
    try:
        return evaluate(c, inputs, file=file)
    except EvalError as exc:
        msg = str(exc)
        e = next((e for e in c.einsums if msg.startswith(f"{e.name}: ")), None)
        if e is None or not c.source or not Path(c.source).is_file():
            raise
        from einsum.yamlsrc import load as load_yaml

        _, src = load_yaml(Path(c.source))
        raise src.error(("einsum", "expressions", e.position), msg) from None


def _non_finite(a: np.ndarray) -> int:
    return int(a.size - np.count_nonzero(np.isfinite(a)))


def cmd_eval(args: argparse.Namespace) -> int:
    c = _load(args)
    try:
        with np.load(args.inputs, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ConfigError("input file not found", args.inputs) from None
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ConfigError(f"not a readable .npz file ({exc})", args.inputs) from None
    # rank sizes follow the arrays' shapes (as np.einsum); --rank only overrides
    c = fit_to_inputs(lambda r: load_cascade(args.cascade, ranks=r, params=parse_params(args.param)),
                      parse_ranks(args.rank), arrays, file=args.inputs)
    extra = sorted(set(arrays) - set(c.inputs))
    if extra:
        warnings.warn(f"{args.inputs}: ignoring array{'s' * (len(extra) > 1)} {', '.join(extra)}, not "
                      f"{'inputs' if len(extra) > 1 else 'an input'} of {c.name} (inputs: {', '.join(c.inputs)})",
                      EinarrayWarning, stacklevel=1)
    for name in c.inputs:
        a = arrays.get(name)
        if a is not None and np.asarray(a).dtype.kind == "f":
            bad = _non_finite(np.asarray(a))
            if bad:
                warnings.warn(f"{args.inputs}: input {name} has {bad:,} non-finite value{'s' * (bad > 1)} "
                              f"(NaN or inf) of {a.size:,}", EinarrayWarning, stacklevel=1)
    env = located_eval(c, arrays, file=args.inputs)
    names = list(c.outputs) + ([t for t in c.tensors if t not in c.outputs and c.tensors[t].kind != "input"]
                               if args.all else [])
    out = Path(args.output)
    if out.suffix != ".npz":
        raise ConfigError("the output file must end in .npz", args.output)
    # computed in float64, written in the inputs' floating-point dtype (float64 for integer codes)
    dt = output_dtype(c, arrays)
    with np.errstate(over="ignore"):  # an overflow is counted and warned about below
        res = {n: env[n].astype(dt, copy=False) for n in names}
    for n in names:
        lost = _non_finite(res[n]) - _non_finite(env[n])
        if lost > 0:
            warnings.warn(f"{n}: {lost:,} value{'s' * (lost > 1)} finite in float64 overflow {dt} "
                          "(the inputs' dtype)", EinarrayWarning, stacklevel=1)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **res)
    parts = []
    for n in names:
        bad = _non_finite(res[n])
        parts.append(f"{n}{list(res[n].shape)}" + (f" ({bad:,} non-finite)" if bad else ""))
    print(f"wrote {out}: " + ", ".join(parts))
    return 0
