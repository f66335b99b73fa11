"""cocotb test of hw.attention_engine.AttentionEngine through cocotbext-axi AXI-Stream models.

Every head's output rows must equal ``evaluate`` of attention-fixed-1pass bit for bit.
Environment: ENGINE_PARAMS (JSON constructor kwargs), ENGINE_CASES (JSON list of heads
``{"M", "P", "seed", "amp", "pause"}``; ``pause`` adds random idle cycles on q, k, v and
random back-pressure on o; ``inputs`` and ``expect``, two .npz files, give Q, K, V and the
expected AV instead of seeded codes and ``evaluate``), ENGINE_CYCLES (a file to write, per
head, the cycles from the first ``q`` handshake to the last ``o`` handshake, both included,
and ``stalled``, the cycles the stall contract of ``o`` was checked in).

Every cycle of every head :func:`monitor` also checks the stall contract of ``o`` (a
:class:`cocotb_stream.StallWatch` over tdata, tlast and any other payload signal the port
has): after a cycle with ``o_tvalid`` high and ``o_tready`` low, ``o_tvalid`` is still high
and the payload unchanged, so a beat the sink holds back cannot drop or change before its
handshake (the AXI4-Stream handshake: once asserted, TVALID stays asserted until the
handshake and TDATA, TUSER, TLAST stay stable, as e.g. Intel's FPGA Streaming Video Protocol
Specification, 683397, 1.2 "Data Exchange", puts it). A head with ``pause`` must see at least one such cycle (the sink's random
back-pressure stalled it), a head without none (the cycles measured are without back-pressure).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from cocotb_stream import StallWatch
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


# the payload signals of an AXI-Stream port cocotbext-axi knows, besides tvalid and tready
O_PAYLOAD = ("tdata", "tlast", "tkeep", "tstrb", "tid", "tdest", "tuser")


async def monitor(dut, log: dict, watch: StallWatch, head: str) -> None:
    """Every cycle, sampled between clock edges (the sources and the sink drive after the
    rising edge): the cycle numbers of every q and o handshake, and ``watch``, the stall
    contract of o, on o's payload (read only while ``o_tvalid`` is high). A violation raises
    with the head, the cycle (counted as in ``log``), the time and the old and new values."""
    q_valid, q_ready, o_valid, o_ready = dut.q_tvalid, dut.q_tready, dut.o_tvalid, dut.o_tready
    payload = [getattr(dut, f"o_{f}") for f in watch.fields]
    cycle = 0
    while True:
        await FallingEdge(dut.clk)
        if q_valid.value and q_ready.value:
            log["q"].append(cycle)
        valid, ready = bool(o_valid.value), bool(o_ready.value)
        if valid and ready:
            log["o"].append(cycle)
        try:
            watch.observe(valid, ready, [s.value for s in payload] if valid else None)
        except AssertionError as e:
            raise AssertionError(f"head {head}: {e} (at {get_sim_time('ns')} ns)") from None
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
    fields = tuple(f for f in O_PAYLOAD if hasattr(dut, f"o_{f}"))
    assert fields[:2] == ("tdata", "tlast"), fields
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
        head, watch = json.dumps(case), StallWatch("o", fields)
        counter = cocotb.start_soon(monitor(dut, log, watch, head))
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
        if case["pause"]:
            assert watch.stalled > 0, f"head {head}: back-pressure never stalled o, nothing checked"
        else:
            assert watch.stalled == 0, f"head {head}: o stalled {watch.stalled} cycles unpaused"
        dut._log.info("head %s: %d stalled cycles of o checked", head, watch.stalled)
        measured.append({**case, "cycles": log["o"][-1] - log["q"][0] + 1,
                         "stalled": watch.stalled})
    if CYCLES_FILE:
        with open(CYCLES_FILE, "w") as fh:
            json.dump(measured, fh)
