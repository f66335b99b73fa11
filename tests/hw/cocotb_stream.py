"""cocotb helpers for blocks with ``clk``, ``rst`` and stream ports ``i``/``o``.

``stream_exchange`` runs one clocked loop that, every cycle, drives ``i`` (holding a
payload valid until it is accepted, inserting random idle cycles) and ``o.ready``
(random stalls) after the falling edge, then samples both handshakes in ``ReadOnly``
before the rising edge.  It returns the raw output payloads and the cycle indices of
every input and output handshake.  Every cycle it also checks the stall contract with a
:class:`StallWatch`: after a cycle with ``o.valid`` high and ``o.ready`` low, ``o.valid``
is still high and ``o.payload`` unchanged.  ``ready=Stretches(rng, ...)`` holds
``o.ready`` low for random stretches of cycles (the stalled-output tests).
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


class StallWatch:
    """The stall contract of an output stream, checked cycle by cycle: call ``observe(valid,
    ready, payload)`` once per cycle with the settled values (``ReadOnly``). ``stalled`` counts
    the cycles checked (those following a cycle with valid and not ready). ``payload`` is one
    integer, or with ``fields`` (names, e.g. ``("tdata", "tlast")`` of an AXI-Stream port) a
    tuple of integers, one a field, each named in the message when it changes; it is only read
    when ``valid`` is high."""

    def __init__(self, name: str = "o", fields: tuple[str, ...] | None = None):
        self.name = name
        self.fields = fields
        self.held = None  # the payload of the last stalled cycle
        self.cycle = 0
        self.stalled = 0

    def _value(self, payload):
        return int(payload) if self.fields is None else tuple(int(x) for x in payload)

    def observe(self, valid: bool, ready: bool, payload) -> None:
        if self.held is not None:
            self.stalled += 1
            if not valid:
                raise AssertionError(f"{self.name}.valid dropped (1 -> 0) in cycle {self.cycle} "
                                     f"without a handshake, holding {self._show(self.held)}")
            now = self._value(payload)
            if now != self.held:
                raise AssertionError(self._changed(now))
        self.held = self._value(payload) if valid and not ready else None
        self.cycle += 1

    def _show(self, value) -> str:
        if self.fields is None:
            return f"{value:#x}"
        return ", ".join(f"{f} {v:#x}" for f, v in zip(self.fields, value))

    def _changed(self, now) -> str:
        if self.fields is None:
            return (f"{self.name}.payload changed while stalled in cycle {self.cycle}: "
                    f"{self.held:#x} -> {now:#x}")
        diff = [f"{self.name}.{f} {a:#x} -> {b:#x}"
                for f, a, b in zip(self.fields, self.held, now) if a != b]
        return f"changed while stalled in cycle {self.cycle}: " + ", ".join(diff)


class Stretches:
    """``o.ready`` with random stall stretches: after each ready cycle, with probability
    ``p``, ready is low for ``lo..hi`` cycles (uniform)."""

    def __init__(self, rng: random.Random, *, p: float = 0.3, lo: int = 1, hi: int = 12):
        self.rng, self.p, self.lo, self.hi = rng, p, lo, hi
        self.left = 0
        self.lows = 0

    def __call__(self) -> int:
        if self.left:
            self.left -= 1
            self.lows += 1
            return 0
        if self.rng.random() < self.p:
            self.left = self.rng.randint(self.lo, self.hi) - 1
            self.lows += 1
            return 0
        return 1


async def stream_exchange(
    dut,
    payloads: list[int],
    n_out: int,
    *,
    rng: random.Random,
    in_stall: float = 0.0,
    out_stall: float = 0.0,
    ready=None,
    watch: StallWatch | None = None,
    max_cycles: int = 1_000_000,
):
    """Push ``payloads`` (raw unsigned ints) into ``i``; collect ``n_out`` raw ``o`` payloads.
    ``ready``: a callable giving ``o.ready`` each cycle (default: random, ``out_stall``);
    ``watch``: the :class:`StallWatch` to use (default: a new one)."""
    watch = StallWatch() if watch is None else watch
    ready_fn = ready
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
        ready = int(rng.random() >= out_stall) if ready_fn is None else ready_fn()
        dut.o__ready.value = ready
        await ReadOnly()
        valid = int(dut.o__valid.value)
        watch.observe(valid, ready, dut.o__payload.value if valid else 0)
        if holding and int(dut.i__ready.value):
            in_cycles.append(cycle)
            holding = False
            idx += 1
        if ready and valid:
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
