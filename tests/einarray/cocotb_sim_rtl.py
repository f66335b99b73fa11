"""cocotb side of ``tests/einarray/test_sim_rtl.py``: the simulator held to the RTL.

Toplevel ``sim_rtl_top`` (:func:`sim_rtl_common.top`): two compute units (ports ``cu2__*``
and ``cu4__*``) and the softmax block (``sm__*``) side by side. Environment: ``SIMRTL_SPEC``,
the path of a JSON spec written by the pytest side; every test writes what it measured
(outputs, cycles) as JSON to the spec's ``results`` path, and the pytest side compares
that with the simulator itself.

``cu_gemms``: whole GEMMs on one compute unit, one command per R x C output tile, commands
back to back, ``i``/``w`` always valid and ``o`` always ready. Per GEMM: the cycles from
the cycle in which the first command is accepted to the cycle in which the last output row
is accepted (both included) must equal the simulator's prediction; every tile equals the
golden model bit for bit and takes exactly ``tile_cycles``.

``attention_head``: S = Q K^T on ``cu4`` (opcode QKT, shift 3), the rows of S through the
softmax block (random valid/ready stalls), A V on ``cu2`` (opcode AV); each stage gets the
previous stage's RTL output; each stage is checked against its golden model; the pytest
side compares the outputs and the two matmuls' cycles with the simulator.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cocotb_stream import stream_exchange, to_signed
from cu_common import CuDriver, Job, formula_for
from sim_rtl_common import SOFTMAX, UNITS, assemble, gemm_tiles, unit_format

from einsum.approx import softmax_approx_int
from einsum.fixed import QFormat
from einsum.golden_gemm import OP_AV, OP_GEMM, OP_QKT


class _Sub:
    """The ports of one block of the top: ``sub.cmd__valid`` is ``dut.<prefix>__cmd__valid``."""

    def __init__(self, dut, prefix: str):
        self._dut, self._prefix = dut, prefix

    def __getattr__(self, name):
        if name in ("clk", "rst", "_log"):
            return getattr(self._dut, name)
        return getattr(self._dut, f"{self._prefix}__{name}")


def _spec() -> dict:
    return json.loads(Path(os.environ["SIMRTL_SPEC"]).read_text())


def _write(path: str, obj) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


async def _reset(dut) -> None:
    """Clock, reset, every valid low and every ready low."""
    Clock(dut.clk, 10, unit="ns").start()
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for unit in UNITS:
        cu = _Sub(dut, unit)
        for port in ("cmd", "i", "w"):
            getattr(cu, f"{port}__valid").value = 0
            getattr(cu, f"{port}__payload").value = 0
        cu.o__ready.value = 0
    sm = _Sub(dut, "sm")
    sm.i__valid.value = 0
    sm.i__payload.value = 0
    sm.o__ready.value = 0
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _cu_drive(cu: _Sub, drv: CuDriver, max_cycles: int = 100_000) -> None:
    """Clocked loop (entered right after a falling edge) until every tile came out."""
    for _ in range(max_cycles):
        d = drv.drive()
        cu.cmd__valid.value = d["cmd_valid"]
        cu.cmd__payload.value = d["cmd_payload"]
        cu.i__valid.value = d["i_valid"]
        cu.i__payload.value = d["i_payload"]
        cu.w__valid.value = d["w_valid"]
        cu.w__payload.value = d["w_payload"]
        cu.o__ready.value = d["o_ready"]
        await ReadOnly()
        drv.observe(
            bool(cu.cmd__valid.value) and bool(cu.cmd__ready.value),
            bool(cu.i__valid.value) and bool(cu.i__ready.value),
            bool(cu.w__valid.value) and bool(cu.w__ready.value),
            bool(cu.o__valid.value) and bool(cu.o__ready.value),
            int(cu.o__payload.value),
        )
        await FallingEdge(cu.clk)
        if drv.done:
            for port in ("cmd", "i", "w"):
                getattr(cu, f"{port}__valid").value = 0
            for _ in range(3):  # a few idle cycles between GEMMs
                await FallingEdge(cu.clk)
            return
    raise AssertionError(f"timeout: {len(drv.outputs)} of {len(drv.jobs)} tiles after {max_cycles} cycles")


async def run_gemm(dut, unit: str, x, w, *, op: int, shift: int, reuse: bool, label: str):
    """One whole GEMM on compute unit ``unit`` at full rate.

    Returns ``(out, measured_cycles, tiles, check)``; ``check()`` asserts every tile against
    the golden model, every tile's cycles == ``tile_cycles`` and the commands back to back
    (called by the tests after they recorded what was measured)."""
    p = UNITS[unit]
    R, C = p["rows"], p["cols"]
    fmt = unit_format(p)
    x, w = np.asarray(x, dtype=np.int64), np.asarray(w, dtype=np.int64)
    tiles = gemm_tiles(x, w, rows=R, cols=C, max_k=p["max_k"], fmt=fmt, op=op, shift=shift,
                       reuse=reuse)
    jobs = [Job(t["cmd"], t["i_beats"], t["w_beats"], t["expected"], t["k"], False,
                label=f"{label} tile ({t['m0']},{t['n0']})") for t in tiles]
    drv = CuDriver(jobs, R, C, fmt.a_width, fmt.w_width, fmt.o_width, p_valid=1.0, p_ready=1.0)
    await _cu_drive(_Sub(dut, unit), drv)
    assert drv.cmd_cycles[0] == 0, f"{label}: the first command was not accepted at once"
    measured = drv.last_out_cycles[-1] - drv.cmd_cycles[0] + 1

    def check():
        drv.check(formula_for(R, C), exact=True)

    return assemble(tiles, drv.outputs, x.shape[0], w.shape[1]), measured, len(tiles), check


@cocotb.test()
async def cu_gemms(dut):
    """Whole GEMMs at full rate: golden outputs, measured cycles == simulator's prediction."""
    spec = _spec()
    unit = spec["unit"]
    await _reset(dut)
    results, mismatches = [], []
    for g in spec["gemms"]:
        out, measured, ntiles, check = await run_gemm(dut, unit, g["x"], g["w"], op=OP_GEMM,
                                                      shift=0, reuse=g["reuse"], label=g["name"])
        results.append({"name": g["name"], "tiles": ntiles, "measured": measured,
                        "predicted": g["predicted"], "out": out.tolist()})
        _write(spec["results"], results)
        dut._log.info("%s %s: %d tiles, RTL %d cycles, simulator %d", unit, g["name"], ntiles,
                      measured, g["predicted"])
        if measured != g["predicted"]:
            mismatches.append(f"{g['name']}: RTL {measured} cycles, simulator {g['predicted']}")
        check()
    assert not mismatches, f"{unit}: " + "; ".join(mismatches)


async def run_softmax(dut, rows: list[np.ndarray], *, seed: int, in_stall: float,
                      out_stall: float) -> list[list[int]]:
    """Rows of Q6.10 scores through the softmax block; returns the probability codes."""
    sm = _Sub(dut, "sm")
    fi = QFormat(SOFTMAX["width"], SOFTMAX["frac_bits"])
    fo = QFormat(SOFTMAX["out_width"], SOFTMAX["out_frac_bits"])
    mask = (1 << fi.width) - 1
    raw_in = [(int(v) & mask) | (int(j == len(r) - 1) << fi.width)
              for r in rows for j, v in enumerate(r)]
    raw, _ic, _oc = await stream_exchange(sm, raw_in, len(raw_in), rng=random.Random(seed),
                                          in_stall=in_stall, out_stall=out_stall,
                                          max_cycles=50 * len(raw_in) + 10_000)
    data = [to_signed(v, fo.width) for v in raw]
    last = [(v >> fo.width) & 1 for v in raw]
    out, k = [], 0
    for n, r in enumerate(rows):
        got = data[k:k + len(r)]
        assert last[k:k + len(r)] == [0] * (len(r) - 1) + [1], f"row {n}: wrong last flags"
        want = [int(v) for v in softmax_approx_int(np.asarray(r)[None, :], fi, fo,
                                                   max_len=SOFTMAX["max_len"])[0]]
        assert got == want, f"row {n}: RTL {got} != golden {want}"
        out.append(got)
        k += len(r)
    return out


@cocotb.test()
async def attention_head(dut):
    """S = Q K^T (cu4) -> softmax rows (sm) -> A V (cu2), each stage fed by the RTL."""
    spec = _spec()
    await _reset(dut)
    results, checks = {}, []
    for h, t in spec["heads"].items():
        q, k = np.array(t["Q"], dtype=np.int64), np.array(t["K"], dtype=np.int64)
        s, cyc, ntiles, check = await run_gemm(dut, "cu4", q, k.T, op=OP_QKT, shift=spec["qkt_shift"],
                                        reuse=True, label=f"{h} QK^T")
        results[h] = {"S": s.tolist(), "qk_cycles": cyc, "qk_tiles": ntiles}
        checks.append(check)
    names = list(spec["heads"])
    rows = [np.array(r, dtype=np.int64) for h in names for r in results[h]["S"]]
    probs = await run_softmax(dut, rows, **spec["softmax_stream"])
    m = len(rows) // len(names)
    for n, h in enumerate(names):
        results[h]["A"] = probs[n * m:(n + 1) * m]
        v = np.array(spec["heads"][h]["V"], dtype=np.int64)
        o, cyc, ntiles, check = await run_gemm(dut, "cu2", results[h]["A"], v, op=OP_AV, shift=0,
                                        reuse=True, label=f"{h} AV")
        results[h].update({"O": o.tolist(), "av_cycles": cyc, "av_tiles": ntiles})
        checks.append(check)
    _write(spec["results"], results)
    for check in checks:
        check()
    for h in names:  # (the pytest side compares the cycles, after the outputs)
        r, want = results[h], spec["predicted"]
        dut._log.info("%s: QK^T %d tiles %d cycles (simulator %d), AV %d tiles %d cycles "
                      "(simulator %d)", h, r["qk_tiles"], r["qk_cycles"], want["QK"],
                      r["av_tiles"], r["av_cycles"], want["AVACC"])
