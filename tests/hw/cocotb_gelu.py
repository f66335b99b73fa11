"""cocotb tests of hw.gelu.Gelu: RTL output == einsum.approx.gelu_approx_int bit for bit.

Environment: GELU_PARAMS (JSON constructor kwargs), SEED, N_RANDOM.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb_stream import StallWatch, Stretches, reset, stream_exchange, to_signed

from einsum.approx import gelu_approx_int
from einsum.fixed import QFormat

PARAMS = json.loads(os.environ.get("GELU_PARAMS", "{}"))
SEED = int(os.environ.get("SEED", "1"))
N_RANDOM = int(os.environ.get("N_RANDOM", "2000"))
LATENCY = int(os.environ.get("GELU_LATENCY", "9"))
IN = QFormat(PARAMS.get("width", 18), PARAMS.get("frac_bits", 14))
OUT = QFormat(PARAMS.get("out_width", IN.width), PARAMS.get("out_frac_bits", IN.frac))


def vectors(rng: np.random.Generator) -> np.ndarray:
    f = IN
    one = 1 << f.frac
    corner = [0, 1, -1, f.max_int, f.min_int, f.max_int - 1, f.min_int + 1]
    # segment boundaries of delta (|x| = k/8 below 2, k/4 up to 5) and the cut at 5
    for b in [k / 8 for k in range(17)] + [2 + k / 4 for k in range(13)]:
        q = int(round(b * one))
        corner += [q - 1, q, q + 1, -q - 1, -q, -q + 1]
    lo, hi = max(f.min_int, -8 * one), min(f.max_int, 8 * one)
    rnd = rng.integers(lo, hi + 1, N_RANDOM)
    full = rng.integers(f.min_int, f.max_int + 1, N_RANDOM // 4)
    v = np.concatenate([np.array(corner, dtype=np.int64), rnd, full])
    return np.clip(v, f.min_int, f.max_int)


async def check(dut, xs, in_stall, out_stall, seed):
    exp = gelu_approx_int(xs, IN, OUT)
    raw = [int(x) & ((1 << IN.width) - 1) for x in xs]
    out, _, _ = await stream_exchange(dut, raw, len(xs), rng=random.Random(seed),
                                      in_stall=in_stall, out_stall=out_stall)
    got = np.array([to_signed(v, OUT.width) for v in out])
    bad = np.nonzero(got != exp)[0]
    assert bad.size == 0, (
        f"{bad.size} mismatches, first x={xs[bad[0]]} got={got[bad[0]]} exp={exp[bad[0]]}")


@cocotb.test()
async def gelu_full_throughput_and_latency(dut):
    await reset(dut)
    xs = vectors(np.random.default_rng(SEED))[:300]
    exp = gelu_approx_int(xs, IN, OUT)
    raw = [int(x) & ((1 << IN.width) - 1) for x in xs]
    out, ic, oc = await stream_exchange(dut, raw, len(xs), rng=random.Random(SEED))
    assert [to_signed(v, OUT.width) for v in out] == exp.tolist()
    assert ic == list(range(len(xs))), "input must be accepted every cycle"
    assert [o - i for o, i in zip(oc, ic)] == [LATENCY] * len(xs)


@cocotb.test()
async def gelu_random_stalls(dut):
    await reset(dut)
    xs = vectors(np.random.default_rng(SEED + 1))
    await check(dut, xs, 0.3, 0.3, SEED + 2)


@cocotb.test()
async def gelu_heavy_backpressure(dut):
    await reset(dut)
    xs = vectors(np.random.default_rng(SEED + 3))[:400]
    await check(dut, xs, 0.0, 0.8, SEED + 4)
    await check(dut, xs[::-1].copy(), 0.8, 0.0, SEED + 5)


@cocotb.test()
async def gelu_stalled_output_stays_put(dut):
    """o.ready low for random stretches (1..12 cycles) while the pipeline is full: every
    stalled cycle o.valid stays high and o.payload unchanged (StallWatch), and the values
    are still bit-exact."""
    await reset(dut)
    xs = vectors(np.random.default_rng(SEED + 6))[:300]
    rng = random.Random(SEED + 7)
    watch, ready = StallWatch(), Stretches(rng, p=0.25, lo=1, hi=12)
    out, _, _ = await stream_exchange(dut, [int(x) & ((1 << IN.width) - 1) for x in xs], len(xs),
                                      rng=rng, ready=ready, watch=watch)
    assert [to_signed(v, OUT.width) for v in out] == gelu_approx_int(xs, IN, OUT).tolist()
    assert watch.stalled >= 300, f"only {watch.stalled} stalled cycles checked"
