"""Drive a block with ``stream`` ports ``i``/``o`` in Amaranth's simulator, with random stalls.

``run_stream(dut, payloads, ...)`` feeds ``payloads`` (ints, or dicts for struct payloads)
into ``dut.i`` while a consumer pulls ``dut.o``; both sides stall randomly with the given
probabilities.  It returns the output payloads in order and the cycle numbers at which
each input and each output handshake happened, so tests can check latency/throughput.
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator


def run_stream(
    dut,
    payloads,
    *,
    n_out: int | None = None,
    in_stall: float = 0.0,
    out_stall: float = 0.0,
    seed: int = 0,
    max_cycles: int = 200_000,
    out_fields: tuple[str, ...] | None = None,
):
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    n_out = len(payloads) if n_out is None else n_out
    res = {"out": [], "in_cycles": [], "out_cycles": [], "cycle": 0}

    def set_payload(ctx, p):
        if isinstance(p, dict):
            for k, v in p.items():
                ctx.set(getattr(dut.i.payload, k), v)
        else:
            ctx.set(dut.i.payload, p)

    async def clock_counter(ctx):
        async for _ in ctx.tick():
            res["cycle"] += 1

    async def producer(ctx):
        for p in payloads:
            while rng_in.random() < in_stall:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            set_payload(ctx, p)
            ctx.set(dut.i.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    res["in_cycles"].append(res["cycle"] - 1)
                    break
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycles = 0
        while len(res["out"]) < n_out:
            ready = rng_out.random() >= out_stall
            ctx.set(dut.o.ready, ready)
            if out_fields:
                vals = [getattr(dut.o.payload, f) for f in out_fields]
                _, _, valid, *pv = await ctx.tick().sample(dut.o.valid, *vals)
                value = dict(zip(out_fields, (int(v) for v in pv)))
            else:
                _, _, valid, pv = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                value = int(pv)
            if valid and ready:
                res["out"].append(value)
                res["out_cycles"].append(res["cycle"] - 1)
            cycles += 1
            if cycles > max_cycles:
                raise AssertionError(f"timeout: {len(res['out'])}/{n_out} outputs")
        ctx.set(dut.o.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(clock_counter)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return res
