"""cocotb tests of hw.softmax.Softmax: RTL == einsum.approx.softmax_approx_int bit for bit.

Environment: SOFTMAX_PARAMS (JSON constructor kwargs), SEED, SOFTMAX_LATENCY,
SOFTMAX_ROW_GAP, SOFTMAX_EMIT_LATENCY, N_ROWS.
Payloads are ``data | last << width`` on both ports.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb_stream import StallWatch, Stretches, reset, stream_exchange, to_signed

from einsum.approx import softmax_approx_int
from einsum.fixed import QFormat, quantize

PARAMS = json.loads(os.environ.get("SOFTMAX_PARAMS", "{}"))
SEED = int(os.environ.get("SEED", "1"))
LATENCY = int(os.environ.get("SOFTMAX_LATENCY", "0"))
ROW_GAP = int(os.environ.get("SOFTMAX_ROW_GAP", "0"))
EMIT_LATENCY = int(os.environ.get("SOFTMAX_EMIT_LATENCY", "0"))
N_ROWS = int(os.environ.get("N_ROWS", "12"))
IN = QFormat(PARAMS.get("width", 16), PARAMS.get("frac_bits", 10))
OUT = QFormat(PARAMS.get("out_width", 16), PARAMS.get("out_frac_bits", 14))
MAX_LEN = PARAMS.get("max_len", 1024)


def encode(rows: list[np.ndarray]) -> list[int]:
    mask = (1 << IN.width) - 1
    raw = []
    for r in rows:
        for j, v in enumerate(r):
            raw.append((int(v) & mask) | (int(j == len(r) - 1) << IN.width))
    return raw


def expected(rows: list[np.ndarray]) -> list[tuple[int, int]]:
    out = []
    for r in rows:
        p = softmax_approx_int(np.asarray(r, dtype=np.int64)[None, :], IN, OUT, max_len=MAX_LEN)[0]
        out += [(int(v), int(j == len(r) - 1)) for j, v in enumerate(p)]
    return out


def decode(raw: list[int]) -> list[tuple[int, int]]:
    return [(to_signed(v, OUT.width), (v >> OUT.width) & 1) for v in raw]


def corner_rows(rng: np.random.Generator) -> list[np.ndarray]:
    f = IN
    q = lambda a: quantize(np.asarray(a, dtype=np.float64), f)  # noqa: E731
    n = min(MAX_LEN, 64)
    spike = q(rng.uniform(-16, 16, n))
    spike[n // 3] = f.max_int
    rows = [
        np.array([0]),  # single score -> probability 1
        np.zeros(n, dtype=np.int64),  # all equal (zero)
        np.full(n, f.min_int),  # all equal, most negative
        np.full(min(MAX_LEN, 8), f.max_int),  # all equal, max magnitude
        np.array([f.min_int, f.max_int] * (min(MAX_LEN, 16) // 2)),  # saturating extremes
        q(rng.uniform(-16, -15, n)),  # very negative
        spike,  # one dominant score
        q(np.linspace(-16, 16, n)),  # increasing: the max grows at every step (rescales)
        q(np.linspace(16, -16, n)),  # decreasing
        np.array(sorted(q(rng.uniform(-16, 16, MAX_LEN)))),  # full-length increasing row
    ]
    return rows


def random_rows(rng: np.random.Generator, k: int) -> list[np.ndarray]:
    rows = []
    for _ in range(k):
        n = int(rng.choice([1, 2, 3, 8, 9, 31, MAX_LEN, int(rng.integers(1, MAX_LEN + 1))]))
        n = min(n, MAX_LEN)
        scale = rng.choice([1.0, 4.0, 16.0, 40.0])
        rows.append(quantize(rng.uniform(-scale, scale, n), IN))
    return rows


async def run_rows(dut, rows, *, in_stall, out_stall, seed):
    exp = expected(rows)
    raw, ic, oc = await stream_exchange(dut, encode(rows), len(exp), rng=random.Random(seed),
                                        in_stall=in_stall, out_stall=out_stall)
    got = decode(raw)
    bad = [k for k, (g, e) in enumerate(zip(got, exp)) if g != e]
    assert not bad, f"{len(bad)} mismatches; first at {bad[0]}: got {got[bad[0]]} exp {exp[bad[0]]}"
    return ic, oc


@cocotb.test()
async def softmax_latency_full_throughput(dut):
    await reset(dut)
    rng = np.random.default_rng(SEED)
    n = min(MAX_LEN, 40)
    rows = [quantize(rng.uniform(-16, 16, n), IN), quantize(rng.uniform(-16, 16, 3), IN)]
    ic, oc = await run_rows(dut, rows, in_stall=0.0, out_stall=0.0, seed=SEED)
    assert ic[:n] == list(range(n)), "scores must be accepted one per cycle"
    assert oc[0] - ic[n - 1] == LATENCY, f"latency {oc[0] - ic[n - 1]} != {LATENCY}"
    assert oc[:n] == list(range(oc[0], oc[0] + n)), "probabilities must come one per cycle"
    # the next row is accepted row_gap cycles after the previous row's last score, while
    # the previous row is still being emitted; its first probability follows as soon as
    # the emit side is free (emit_latency after the hand-over)
    assert ic[n] - ic[n - 1] == ROW_GAP
    assert ic[n] < oc[n - 1]
    assert oc[n] == max(ic[n + 2] + LATENCY, oc[n - 1] + 1 + EMIT_LATENCY)


@cocotb.test()
async def softmax_corner_rows_with_stalls(dut):
    await reset(dut)
    await run_rows(dut, corner_rows(np.random.default_rng(SEED + 1)),
                   in_stall=0.25, out_stall=0.25, seed=SEED + 2)


@cocotb.test()
async def softmax_random_rows_with_stalls(dut):
    await reset(dut)
    rng = np.random.default_rng(SEED + 3)
    await run_rows(dut, random_rows(rng, N_ROWS), in_stall=0.4, out_stall=0.4, seed=SEED + 4)
    await run_rows(dut, random_rows(rng, 3), in_stall=0.0, out_stall=0.85, seed=SEED + 5)


@cocotb.test()
async def softmax_overlong_row_is_split(dut):
    """A row without ``last`` ends after max_len scores; the rest starts a new row."""
    await reset(dut)
    rng = np.random.default_rng(SEED + 6)
    x = quantize(rng.uniform(-16, 16, MAX_LEN + 5), IN)
    mask = (1 << IN.width) - 1
    raw_in = [int(v) & mask for v in x]
    raw_in[-1] |= 1 << IN.width
    exp = expected([x[:MAX_LEN], x[MAX_LEN:]])
    raw, _, _ = await stream_exchange(dut, raw_in, len(exp), rng=random.Random(SEED),
                                      in_stall=0.2, out_stall=0.2)
    assert decode(raw) == exp


@cocotb.test()
async def softmax_stalled_output_stays_put(dut):
    """o.ready low for random stretches (1..12 cycles) while rows are emitted: every stalled
    cycle o.valid stays high and o.payload (data and last) unchanged (StallWatch); the
    probabilities are still bit-exact."""
    await reset(dut)
    rows = random_rows(np.random.default_rng(SEED + 7), 4)
    exp = expected(rows)
    rng = random.Random(SEED + 8)
    watch = StallWatch()
    raw, _, _ = await stream_exchange(dut, encode(rows), len(exp), rng=rng,
                                      ready=Stretches(rng, p=0.25, lo=1, hi=12), watch=watch)
    assert decode(raw) == exp
    assert watch.stalled >= len(exp) // 2, f"only {watch.stalled} stalled cycles checked"
