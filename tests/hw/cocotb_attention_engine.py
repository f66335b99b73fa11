"""cocotb test of hw.attention_engine.AttentionEngine through cocotbext-axi AXI-Stream models.

Every head's output rows must equal ``evaluate`` of attention-fixed-1pass bit for bit.
Environment: ENGINE_PARAMS (JSON constructor kwargs), ENGINE_CASES (JSON list of heads
``{"M", "P", "seed", "amp", "pause"}``; ``pause`` adds random idle cycles on q, k, v and
random back-pressure on o; ``inputs`` and ``expect``, two .npz files, give Q, K, V and the
expected AV instead of seeded codes and ``evaluate``), ENGINE_CYCLES (a file to write, per
head, the cycles from the first ``q`` handshake to the last ``o`` handshake, both included).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from einsum.interp import evaluate
from einsum.load import load_cascade

PARAMS = json.loads(os.environ.get("ENGINE_PARAMS", "{}"))
CASES = json.loads(os.environ.get("ENGINE_CASES", "[]"))
CYCLES_FILE = os.environ.get("ENGINE_CYCLES", "")
R, C, E = PARAMS["rows"], PARAMS["cols"], PARAMS["head_dim"]
P0 = PARAMS.get("chunk", C)
W = PARAMS.get("width", 16)
CASCADE_PARAMS = json.loads(os.environ["ENGINE_CASCADE_PARAMS"])


def pause_pattern(rng: random.Random, busy: float):
    while True:
        yield rng.random() < busy


def golden(Q, K, V) -> np.ndarray:
    c = load_cascade("attention-fixed-1pass", params=CASCADE_PARAMS,
                     ranks={"M": Q.shape[0], "P": K.shape[0], "E": E, "F": E, "P0": P0})
    return evaluate(c, {"Q": Q, "K": K, "V": V})["AV"].astype(np.int64)


def codes(a: np.ndarray) -> list[int]:
    return [int(x) & ((1 << W) - 1) for x in a.ravel()]


def signed(vals: list[int]) -> list[int]:
    return [v - (1 << W) if v >> (W - 1) else v for v in vals]


async def count_handshakes(dut, log: dict) -> None:
    """Cycle numbers of every q and o handshake, sampled between clock edges."""
    cycle = 0
    while True:
        await FallingEdge(dut.clk)
        if dut.q_tvalid.value and dut.q_tready.value:
            log["q"].append(cycle)
        if dut.o_tvalid.value and dut.o_tready.value:
            log["o"].append(cycle)
        cycle += 1


@cocotb.test()
async def engine_is_the_cascade(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    src = {n: AxiStreamSource(AxiStreamBus.from_prefix(dut, n), dut.clk, dut.rst, byte_size=W)
           for n in "qkv"}
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "o"), dut.clk, dut.rst, byte_size=W)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    measured = []
    for case in CASES:
        m, p, seed, amp = case["M"], case["P"], case["seed"], case["amp"]
        if "inputs" in case:  # given tensors and the expected output (einarray eval's files)
            with np.load(case["inputs"]) as f:
                Q, K, V = (f[t].astype(np.int64) for t in "QKV")
            with np.load(case["expect"]) as f:
                want = f["AV"].astype(np.int64)
        else:
            rng = np.random.default_rng(seed)
            Q, K, V = (rng.integers(-amp, amp + 1, (n, E)) for n in (m, p, p))
            want = golden(Q, K, V)
        prng = random.Random(seed)
        for s in (*src.values(), sink):
            if case["pause"]:
                s.set_pause_generator(pause_pattern(prng, prng.choice([0.2, 0.5, 0.8])))
            else:
                s.clear_pause_generator()
                s.pause = False
        log = {"q": [], "o": []}
        counter = cocotb.start_soon(count_handshakes(dut, log))
        tiles = [range(t, min(t + R, m)) for t in range(0, m, R)]
        for rows in tiles:
            await src["q"].send(AxiStreamFrame(codes(Q[rows.start:rows.stop])))
            await src["k"].send(AxiStreamFrame(codes(K)))
            await src["v"].send(AxiStreamFrame(codes(V)))
        for rows in tiles:
            frame = await sink.recv()
            got = np.array(signed(list(frame.tdata))).reshape(-1, E)
            assert got.shape[0] == len(rows), f"tile of {len(rows)} rows gave {got.shape[0]}"
            np.testing.assert_array_equal(got, want[rows.start:rows.stop],
                                          err_msg=f"head {case}, rows {rows.start}..{rows.stop - 1}")
        await ClockCycles(dut.clk, 2)
        counter.cancel()
        assert len(log["q"]) == m and len(log["o"]) == m
        measured.append({**case, "cycles": log["o"][-1] - log["q"][0] + 1})
    if CYCLES_FILE:
        with open(CYCLES_FILE, "w") as fh:
            json.dump(measured, fh)
