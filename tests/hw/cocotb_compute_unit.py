"""cocotb tests of hw.compute_unit.ComputeUnit: RTL == einsum.golden_gemm bit for bit,
and the measured cycles of every tile == hw.compute_unit.tile_cycles exactly (no stalls)
or >= it (random valid/ready stalls on every port).

Environment: CU_PARAMS (JSON constructor kwargs), SEED.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly
from cocotb_stream import StallWatch, Stretches
from cu_common import SCENARIOS, SCENARIOS_GELU, CuDriver, formula_for, gelu_model_for, make_jobs

from hw.compute_unit import ComputeUnit

PARAMS = json.loads(os.environ.get("CU_PARAMS", "{}"))
SEED = int(os.environ.get("SEED", "1"))

def _unit() -> ComputeUnit:
    cu = ComputeUnit(**PARAMS)
    cu._MustUse__silence = True  # only used for its parameters and golden models
    return cu


async def _reset(dut) -> None:
    Clock(dut.clk, 10, unit="ns").start()  # tasks end with each test: one clock per test
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for name in ("cmd", "i", "w"):
        getattr(dut, f"{name}__valid").value = 0
        getattr(dut, f"{name}__payload").value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _run(dut, cu: ComputeUnit, seed: int, p_valid: float, p_ready: float,
               max_cycles: int = 50_000, ready=None, watch: StallWatch | None = None) -> CuDriver:
    """Every job of the scenarios through the unit; ``ready`` (a callable) overrides the
    driver's random o.ready; ``watch`` checks the stall contract of ``o`` every cycle."""
    scen = SCENARIOS + (SCENARIOS_GELU if cu.gelu else [])
    jobs = make_jobs(cu.rows, cu.cols, cu.fmt, cu.max_k, seed=seed, scenarios=scen,
                     gelu_fn=gelu_model_for(cu))
    f = cu.fmt
    drv = CuDriver(jobs, cu.rows, cu.cols, f.a_width, f.w_width, f.o_width,
                   p_valid=p_valid, p_ready=p_ready, seed=seed)
    await _reset(dut)
    for _ in range(max_cycles):
        d = drv.drive()  # we are right after a falling edge: drive this cycle's inputs
        dut.cmd__valid.value = d["cmd_valid"]
        dut.cmd__payload.value = d["cmd_payload"]
        dut.i__valid.value = d["i_valid"]
        dut.i__payload.value = d["i_payload"]
        dut.w__valid.value = d["w_valid"]
        dut.w__payload.value = d["w_payload"]
        o_ready = d["o_ready"] if ready is None else ready()
        dut.o__ready.value = o_ready
        await ReadOnly()  # settled values of this cycle: handshakes at the next rising edge
        for sig in ("cmd__ready", "i__ready", "w__ready", "o__valid"):
            v = getattr(dut, sig).value
            assert v.is_resolvable, f"{sig} is {v} in cycle {drv.cycle} rst={dut.rst.value} state={dut.cu_state.value} valid={dut.cmd__valid.value}"
        drv.observe(
            bool(dut.cmd__valid.value) and bool(dut.cmd__ready.value),
            bool(dut.i__valid.value) and bool(dut.i__ready.value),
            bool(dut.w__valid.value) and bool(dut.w__ready.value),
            bool(dut.o__valid.value) and bool(dut.o__ready.value),
            int(dut.o__payload.value),
        )
        if watch is not None:
            valid = bool(dut.o__valid.value)
            watch.observe(valid, bool(o_ready), dut.o__payload.value if valid else 0)
        await FallingEdge(dut.clk)
        if drv.done:
            break
    return drv


@cocotb.test()
async def cu_full_rate_exact_cycles(dut):
    """All tile shapes back to back, no stalls: bit-exact, cycles == tile_cycles."""
    cu = _unit()
    drv = await _run(dut, cu, SEED, 1.0, 1.0)
    drv.check(formula_for(cu.rows, cu.cols, cu.gelu_latency), exact=True)


@cocotb.test()
async def cu_random_stalls(dut):
    """Random valid gaps on cmd/i/w and random o.ready: still bit-exact."""
    cu = _unit()
    drv = await _run(dut, cu, SEED + 1, 0.6, 0.5)
    drv.check(formula_for(cu.rows, cu.cols, cu.gelu_latency), exact=False)


@cocotb.test()
async def cu_heavy_backpressure(dut):
    """Operands always valid, output rarely ready (exercises the drain pipeline stalls)."""
    cu = _unit()
    drv = await _run(dut, cu, SEED + 2, 1.0, 0.15)
    drv.check(formula_for(cu.rows, cu.cols, cu.gelu_latency), exact=False)


@cocotb.test()
async def cu_stalled_output_stays_put(dut):
    """o.ready low for random stretches (1..12 cycles): every stalled cycle o.valid stays
    high and o.payload unchanged (StallWatch); still bit-exact."""
    cu = _unit()
    watch = StallWatch()
    drv = await _run(dut, cu, SEED + 3, 1.0, 1.0, ready=Stretches(random.Random(SEED + 4)),
                     watch=watch)
    drv.check(formula_for(cu.rows, cu.cols, cu.gelu_latency), exact=False)
    assert watch.stalled >= 50, f"only {watch.stalled} stalled cycles checked"
