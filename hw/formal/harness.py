"""Formal harnesses: each block's stream contract as Amaranth ``Assert``/``Assume`` statements.

Every :class:`Property` builds one harness (the block under test plus the statements of that
one claim) so that each claim is proved, bounded or refuted on its own. The environment is
free: every input payload and valid, and every output ready, is an ``AnySeq`` (any value in
any cycle), so a proof holds under every valid/ready pattern and every data stream. The
only assumption is a reset in the first cycle and none after it.

The claims, for each block's output stream ``o`` (and its inputs):

``valid-hold``    once ``o.valid`` is high and ``o.ready`` low at a clock edge, ``o.valid`` is
                  still high in the next cycle (valid never drops without a handshake)
``payload-hold``  likewise, ``o.payload`` is unchanged in the next cycle
``scoreboard``    the k-th output transfer carries the k-th input transfer's result, for
                  every k (``k`` is an ``AnyConst``: a tagged-element scoreboard), no output
                  precedes its input, and once the inputs stop and ``o.ready`` stays high the
                  outputs catch up with the inputs (nothing lost, duplicated or reordered).
                  For GELU the result is checked against a ROM of the golden values
                  (:func:`einsum.approx.gelu_approx_int` over every input code); for softmax
                  the tagged element is a row: its output has as many probabilities as its
                  input had scores, with ``last`` on the final one only; for the compute
                  unit it is a command: each tile gives exactly ``rows`` output beats
                  (the compute unit's liveness needs ``i``/``w`` valid during the quiet
                  stretch, since a tile waits for its operands)
``tile-rows``     (attention engine) the k-th packet on ``o`` has as many rows as the k-th
                  query tile on ``q`` (up to ``rows`` rows, ending at ``tlast``), with
                  ``tlast`` on its final row only: ``last`` exactly once per packet. No
                  liveness clause: a tile waits for its keys and values, any number of them.

The engine's ``o`` payload is ``Cat(o_tdata, o_tlast)``. The hold claims are proved by
k-induction (``mode prove``: unbounded; depth 2 suffices for every block since the output
registers are enabled by the handshake alone); the scoreboards by bounded model checking
(``mode bmc``) to the depth given, on small instances whose widths and sizes are in
:data:`UNITS` (the RTL is the same generator at every size). The scoreboards are not
inductive as written (their observers' counters are unrelated to the blocks' state in an
unreachable start state; the induction step fails), so they stay bounded: the depths are
what Yices finishes in seconds (GELU: 14 cycles, its latency is 9; the cost grows about
4x per cycle beyond that because the golden comparison pulls in both multipliers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.hdl import (Array, Assert, Assume, Cat, Const, Elaboratable, Module, Mux,
                          ResetSignal, Signal, Value, signed)

__all__ = ["Property", "PROPERTIES", "Stream", "UNITS", "properties", "streams"]


def _gelu():
    from hw.gelu import Gelu
    return Gelu(width=8, frac_bits=4)


def _softmax():
    from hw.softmax import Softmax
    return Softmax(width=6, frac_bits=2, out_width=6, out_frac_bits=4, max_len=2)


def _compute_unit():
    from hw.compute_unit import ComputeUnit
    return ComputeUnit(rows=2, cols=1, a_width=4, a_frac=2, w_width=4, w_frac=2, acc_width=10,
                       max_k=2, gelu=False)


def _attention_engine():
    from hw.attention_engine import AttentionEngine
    return AttentionEngine(rows=2, cols=2, head_dim=1, width=4, frac_bits=2, qk_shift=4,
                           max_keys=2)


#: the instance each unit is proved on: (factory, one-line description)
UNITS: dict[str, tuple[Callable, str]] = {
    "gelu": (_gelu, "Gelu(width=8, frac_bits=4)"),
    "softmax": (_softmax, "Softmax(width=6, frac_bits=2, out_width=6, out_frac_bits=4, max_len=2)"),
    "compute-unit": (_compute_unit, "ComputeUnit(rows=2, cols=1, 4-bit operands, max_k=2, gelu=False)"),
    "attention-engine": (_attention_engine, "AttentionEngine(rows=2, cols=2, head_dim=1, width=4, "
                                            "frac_bits=2, qk_shift=4, max_keys=2)"),
}


@dataclass(frozen=True)
class Stream:
    """One valid/ready port of a block: ``payload`` (everything that must hold while
    stalled, ``last`` included), ``valid``, ``ready`` and ``last`` (None without one)."""

    payload: Value
    valid: Value
    ready: Value
    last: Value | None = None
    inward: bool = True


def streams(dut) -> dict[str, Stream]:
    """The stream ports of ``dut``: ``amaranth.lib.stream`` members (``last`` is the payload's
    ``last`` field if it has one) or AXI-Stream ``NAME_tdata``/``_tvalid``/``_tready``/``_tlast``
    signals (:class:`hw.attention_engine.AttentionEngine`)."""
    out = {}
    for name, member in dut.signature.members.items():
        if name.endswith("_tvalid"):
            base = name[:-len("_tvalid")]
            data, last = getattr(dut, f"{base}_tdata"), getattr(dut, f"{base}_tlast")
            out[base] = Stream(Cat(data, last), getattr(dut, name), getattr(dut, f"{base}_tready"),
                               last, member.flow.name == "In")
        elif member.is_signature:
            port = getattr(dut, name)
            pl = port.payload
            last = pl.last if hasattr(pl, "last") else None
            out[name] = Stream(Value.cast(pl), port.valid, port.ready, last,
                               member.flow.name == "In")
    return out


@dataclass(frozen=True)
class Property:
    """One claim about one unit: ``mode`` "prove" (k-induction of length ``depth``) or "bmc"
    (every trace of ``depth`` cycles from reset)."""

    unit: str
    name: str
    mode: str
    depth: int
    doc: str
    check: Callable  # check(m, dut, streams) adds the statements
    #: the block (default: the instance of ``UNITS[unit]``); a test passes a broken one
    make: Callable | None = None

    @property
    def key(self) -> str:
        return f"{self.unit}.{self.name}"

    def harness(self) -> Elaboratable:
        return _Harness(self.check, self.make or UNITS[self.unit][0])


class _Harness(Elaboratable):
    """``make()`` (the block) in a free environment plus the statements of ``check``."""

    def __init__(self, check: Callable, make: Callable):
        self.check, self.make = check, make

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.make()
        m.d.comb += Assume(ResetSignal() == Initial())
        ports = streams(dut)
        for s in ports.values():
            if s.inward:   # an input stream: free payload and valid
                m.d.comb += [s.payload.eq(AnySeq(len(s.payload))), s.valid.eq(AnySeq(1))]
            else:          # an output stream: free ready
                m.d.comb += s.ready.eq(AnySeq(1))
        self.check(m, dut, ports)
        return m


def _hs(s: Stream):
    return s.valid & s.ready


def _stalled(m, s: Stream):
    """(registered ``valid & ~ready``, registered payload) of stream ``s``."""
    stall = Signal(name="past_stall")
    prev = Signal(len(s.payload), name="past_payload")
    m.d.sync += [stall.eq(s.valid & ~s.ready), prev.eq(s.payload)]
    return stall, prev


def _valid_hold(m, dut, ports):
    stall, _ = _stalled(m, ports["o"])
    with m.If(stall):
        m.d.comb += Assert(ports["o"].valid, "o.valid dropped without a handshake")


def _payload_hold(m, dut, ports):
    stall, prev = _stalled(m, ports["o"])
    with m.If(stall):
        # (both unsigned: a signed payload compared with its copy would sign-extend one side)
        m.d.comb += Assert(ports["o"].payload.as_unsigned() == prev,
                           "o.payload changed while stalled")


def _counter(m, inc, width, name):
    c = Signal(width, name=name)
    with m.If(inc):
        m.d.sync += c.eq(c + 1)
    return c


def _saturating_inc(cond, q, limit):
    """``q + 1`` (at most ``limit``) while ``cond``, else 0."""
    return Mux(cond, Mux(q == limit, q, q + 1), 0)


def _quiet(m, cond, limit, name="quiet"):
    """Consecutive cycles (saturating at ``limit``) in which ``cond`` held."""
    q = Signal(range(limit + 1), name=name)
    m.d.sync += q.eq(_saturating_inc(cond, q, limit))
    return q


_CW = 7  # scoreboard counter width (> every bounded depth)


def _gelu_scoreboard(m, dut, ports):
    import numpy as np

    from einsum import approx as A

    i, o = ports["i"], ports["o"]
    w, ow = dut.in_fmt.width, dut.out_fmt.width
    codes = np.arange(1 << w)
    x = np.where(codes >= 1 << (w - 1), codes - (1 << w), codes)
    golden = Array(Const(int(v), signed(ow)) for v in A.gelu_approx_int(x, dut.in_fmt, dut.out_fmt))
    i_hs, o_hs = _hs(i), _hs(o)
    icnt = _counter(m, i_hs, _CW, "icnt")
    ocnt = _counter(m, o_hs, _CW, "ocnt")
    k = AnyConst(_CW)
    rec = Signal(w, name="rec_x")
    have = Signal(name="have_x")
    with m.If(i_hs & (icnt == k)):
        m.d.sync += [rec.eq(i.payload), have.eq(1)]
    with m.If(o_hs & (ocnt == k)):
        m.d.comb += [Assert(have, "an output before its input"),
                     Assert(o.payload.as_signed() == golden[rec], "output is not gelu of its input")]
    m.d.comb += Assert(ocnt <= icnt, "more outputs than inputs")
    q = _quiet(m, ~i_hs & o.ready, dut.latency + 1)
    with m.If(q == dut.latency + 1):
        m.d.comb += Assert(ocnt == icnt, "an input never reached the output")


def _rows(m, i: Stream, o: Stream, max_len: int, quiet_cond=None, lim=0):
    """Row scoreboard: a row on ``i`` ends at ``last`` or its ``max_len``-th element; the
    k-th row on ``o`` (k an ``AnyConst``) has as many elements as the k-th row on ``i``,
    with ``last`` on its final element only; no row on ``o`` before its input row. With
    ``quiet_cond``: after ``lim`` cycles of it, every input row has left."""
    L = max_len
    i_hs, o_hs = _hs(i), _hs(o)
    ilen = Signal(range(L + 1), name="ilen")
    olen = Signal(range(L + 1), name="olen")
    iend = i_hs & (i.last | (ilen == L - 1))
    oend = o_hs & o.last
    with m.If(i_hs):
        m.d.sync += ilen.eq(_saturating_inc(~iend, ilen, L))
    with m.If(o_hs):
        m.d.sync += olen.eq(_saturating_inc(~oend, olen, L))
    irow = _counter(m, iend, _CW, "irow")
    orow = _counter(m, oend, _CW, "orow")
    k = AnyConst(_CW)
    rec = Signal(range(L + 1), name="rec_len")
    have = Signal(name="have_row")
    with m.If(iend & (irow == k)):
        m.d.sync += [rec.eq(ilen + 1), have.eq(1)]
    with m.If(o_hs):
        m.d.comb += Assert(olen < L, "an output row longer than max_len without last")
    with m.If(o_hs & (orow == k)):
        m.d.comb += Assert(have, "an output row before its input row")
        with m.If(o.last):
            m.d.comb += Assert(olen + 1 == rec, "output row shorter than its input row")
        with m.Else():
            m.d.comb += Assert(olen + 1 < rec, "no last on an output row's final element")
    m.d.comb += Assert(orow <= irow, "more output rows than input rows")
    if quiet_cond is not None:
        q = _quiet(m, quiet_cond, lim)
        with m.If(q == lim):
            m.d.comb += Assert(orow == irow, "an input row never reached the output")


def _softmax_scoreboard(m, dut, ports):
    i, o = ports["i"], ports["o"]
    _rows(m, i, o, dut.max_len, ~_hs(i) & o.ready, dut.latency + 2 * dut.max_len)


def _engine_scoreboard(m, dut, ports):
    # a query tile (up to R rows on q) gives one packet of as many rows on o
    _rows(m, ports["q"], ports["o"], dut.rows)


def _cu_scoreboard(m, dut, ports):
    R = dut.rows
    cmd, i, w, o = ports["cmd"], ports["i"], ports["w"], ports["o"]
    c_hs, o_hs = _hs(cmd), _hs(o)
    ccnt = _counter(m, c_hs, _CW, "ccnt")
    ocnt = _counter(m, o_hs, _CW + 2, "ocnt")
    m.d.comb += Assert(ocnt <= ccnt * R, "more output beats than rows x commands")
    with m.If(c_hs):
        m.d.comb += Assert(ocnt == ccnt * R, "a command accepted before the last tile's rows")
    lim = dut.max_k + 2 + R + 10
    q = _quiet(m, ~c_hs & i.valid & w.valid & o.ready, lim)
    with m.If(q == lim):
        m.d.comb += Assert(ocnt == ccnt * R, "a tile's rows never all reached the output")


_HOLD_DOC = ("o.{}: after a clock edge with o.valid and not o.ready, the next cycle still "
             "has {}")

#: every property, in the order ``einarray prove`` runs them
PROPERTIES: tuple[Property, ...] = tuple(
    Property(unit, name, mode, depth, doc, check)
    for unit, sb_name, sb_depth, sb_doc, sb_check in (
        ("gelu", "scoreboard", 14,
         "the k-th output is gelu_approx_int of the k-th input (golden ROM over all 256 "
         "codes); none lost, duplicated or reordered", _gelu_scoreboard),
        ("softmax", "scoreboard", 64,
         "the k-th output row has as many elements as the k-th input row, last on its "
         "final element only; no row lost or duplicated", _softmax_scoreboard),
        ("compute-unit", "scoreboard", 24,
         "each command gives exactly `rows` output beats, all before the next command is "
         "accepted", _cu_scoreboard),
        # 48: the first tile of one query and one key takes 31 cycles (AttentionEngine.cycles:
        # FIN's shared divider alone is 22), so the bound covers a whole packet and more
        ("attention-engine", "tile-rows", 48,
         "the k-th packet on o has as many rows as the k-th query tile on q, tlast on its "
         "final row only", _engine_scoreboard),
    )
    for name, mode, depth, doc, check in (
        ("valid-hold", "prove", 2, _HOLD_DOC.format("valid", "o.valid"), _valid_hold),
        ("payload-hold", "prove", 2, _HOLD_DOC.format("payload", "the same o.payload"),
         _payload_hold),
        (sb_name, "bmc", sb_depth, sb_doc, sb_check),
    )
)


def properties(unit: str) -> list[Property]:
    """The properties of ``unit`` ("all": every unit's)."""
    return [p for p in PROPERTIES if unit in ("all", p.unit)]
