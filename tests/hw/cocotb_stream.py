"""cocotb helpers for blocks with ``clk``, ``rst`` and stream ports ``i``/``o``.

``stream_exchange`` runs one clocked loop that, every cycle, drives ``i`` (holding a
payload valid until it is accepted, inserting random idle cycles) and ``o.ready``
(random stalls) after the falling edge, then samples both handshakes in ``ReadOnly``
before the rising edge.  It returns the raw output payloads and the cycle indices of
every input and output handshake.
"""

from __future__ import annotations

import random

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge


async def reset(dut, cycles: int = 3) -> None:
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def stream_exchange(
    dut,
    payloads: list[int],
    n_out: int,
    *,
    rng: random.Random,
    in_stall: float = 0.0,
    out_stall: float = 0.0,
    max_cycles: int = 1_000_000,
):
    """Push ``payloads`` (raw unsigned ints) into ``i``; collect ``n_out`` raw ``o`` payloads."""
    out: list[int] = []
    in_cycles: list[int] = []
    out_cycles: list[int] = []
    idx = 0
    holding = False
    cycle = 0
    while len(out) < n_out:
        await FallingEdge(dut.clk)
        if not holding and idx < len(payloads) and rng.random() >= in_stall:
            dut.i__payload.value = payloads[idx]
            holding = True
        dut.i__valid.value = int(holding)
        ready = int(rng.random() >= out_stall)
        dut.o__ready.value = ready
        await ReadOnly()
        if holding and int(dut.i__ready.value):
            in_cycles.append(cycle)
            holding = False
            idx += 1
        if ready and int(dut.o__valid.value):
            out.append(int(dut.o__payload.value))
            out_cycles.append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1
        if cycle > max_cycles:
            raise AssertionError(f"timeout after {cycle} cycles: {len(out)}/{n_out} outputs")
    await FallingEdge(dut.clk)
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    return out, in_cycles, out_cycles


def to_signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v
