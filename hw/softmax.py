"""Streaming single-pass softmax over rows of up to ``max_len`` scores (base 2, shift rescale).

Bit-exact with :func:`einsum.approx.softmax_approx_int` (numerics and error bounds in the
docstring of :mod:`einsum.approx`).

Protocol
--------
``i.payload`` and ``o.payload`` are structs ``{data: signed(W), last: 1}`` (``data`` in bits
``[0, W)``, ``last`` in bit ``W``).  A row is the scores up to and including the one with
``last = 1``; a row also ends after ``max_len`` scores (the ``max_len``-th score is treated as
``last``).  After a row has been accepted the block emits that row's probabilities in the
same order, the last one with ``last = 1``; it accepts the next row once the previous row's
last probability has been handed off (``i.ready`` is low meanwhile).

Micro-architecture
------------------
Phases ACCEPT -> DRAIN -> NORM -> DIV -> EMIT.  A shared 4-stage exp front end (input or
buffer register, ``s2 = x*log2 e`` (one 18-bit constant multiplier), 2**frac table read
(65 x 24-bit ROM as 64 words of value + slope), interpolation (one 17 x 10 multiplier))
feeds, during ACCEPT, the running (max, sum) update -- a compare, a barrel shift and an add
per score -- and the scores are written to a ``max_len`` x W buffer.  NORM shifts the sum
left until its top bit is set (fixed ``norm_cycles``), DIV computes the 18-bit reciprocal
by restoring division (18 cycles).  EMIT re-reads the buffer through the same front end,
shifts each term by ``m - n_i``, multiplies by the reciprocal (18 x 18) and rounds by a
per-row shift.  Every phase processes one element per cycle; the stream pipeline advances
when ``en = ~o.valid | o.ready`` (correct under any back-pressure).

Latency (``latency`` attribute, no stalls): the first probability of a row is valid
``12 + norm_cycles + div_cycles`` = ``latency`` cycles after the cycle in which the row's last
score was accepted; the rest follow one per cycle.  A row of ``n`` scores thus occupies
``n + latency + n`` cycles (``row_cycles(n)``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum import approx as A
from hw.common import check_int, check_qformat, stream_port, to_verilog

__all__ = ["Softmax", "to_verilog"]

_ACCEPT, _DRAIN, _NORM, _DIV, _EMIT = range(5)
_QM = A.RECIP_BITS
_DIV_CYCLES = _QM + 1
_FRONT = 12  # fixed part of the latency (pipeline stages + phase changes)


class Softmax(wiring.Component):
    """Streaming softmax.

    Parameters (keyword-only)
    -------------------------
    width, frac_bits:          score format (default 16, 10 = Q6.10; width 4..32)
    out_width, out_frac_bits:  probability format (default 16, 14 = Q2.14; frac <= 30)
    max_len:                   longest row (default 1024; 2..65536), size of the row buffer

    Ports: ``i = In(stream.Signature(StructLayout({"data": signed(width), "last": 1})))``,
    ``o = Out(stream.Signature(StructLayout({"data": signed(out_width), "last": 1})))``.
    """

    def __init__(
        self,
        *,
        width: int = 16,
        frac_bits: int = 10,
        out_width: int = 16,
        out_frac_bits: int = 14,
        max_len: int = 1024,
    ) -> None:
        self.in_fmt = check_qformat("Softmax", "", width, frac_bits, 32)
        self.out_fmt = check_qformat("Softmax", "out_", out_width, out_frac_bits, 32)
        if width < 4:
            raise ValueError(f"Softmax: width must be >= 4, got {width}")
        check_int("Softmax", "out_frac_bits", out_frac_bits, 0, 30)
        self.max_len = check_int("Softmax", "max_len", max_len, 2, 1 << 16)
        self.sum_width = A.SUM_FRAC + (2 * max_len - 1).bit_length()
        self.norm_cycles = self.sum_width - 1 - A.SUM_FRAC
        self.div_cycles = _DIV_CYCLES
        self.latency = _FRONT + self.norm_cycles + self.div_cycles
        self.in_layout = data.StructLayout({"data": signed(width), "last": 1})
        self.out_layout = data.StructLayout({"data": signed(out_width), "last": 1})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    # -- description ---------------------------------------------------------------
    def row_cycles(self, n: int) -> int:
        """Cycles from a row's first input handshake to its last output (no stalls)."""
        return n + self.latency + n - 1

    def params(self) -> dict:
        return {
            "width": self.in_fmt.width,
            "frac_bits": self.in_fmt.frac,
            "out_width": self.out_fmt.width,
            "out_frac_bits": self.out_fmt.frac,
            "max_len": self.max_len,
        }

    def describe(self) -> dict:
        """Ports, latency and parameters (the JSON written beside the Verilog)."""
        w, ow = self.in_fmt.width, self.out_fmt.width
        return {
            "top": "softmax",
            "clock": "clk",
            "reset": "rst",
            "ports": {
                "i": stream_port("i", self.in_fmt, payload_width=w + 1,
                                 fields={"data": [0, w], "last": [w, 1]}),
                "o": stream_port("o", self.out_fmt, payload_width=ow + 1,
                                 fields={"data": [0, ow], "last": [ow, 1]}),
            },
            "latency": self.latency,
            "latency_formula": "cycles from the handshake of a row's last score to its first "
                               f"probability = 12 + norm_cycles ({self.norm_cycles}) + "
                               f"div_cycles ({self.div_cycles}); row of n: 2n - 1 + latency",
            "params": self.params(),
            "buffer_bits": self.max_len * w,
            "throughput": "1 element/cycle in each phase; rows are not overlapped",
            "golden": "einsum.approx.softmax_approx_int",
        }

    def model(self, rows):
        """Golden integer model for this instance (rows along the last axis)."""
        return A.softmax_approx_int(rows, self.in_fmt, self.out_fmt, max_len=self.max_len)

    # -- hardware ------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        W, fi = self.in_fmt.width, self.in_fmt.frac
        fo = self.out_fmt.frac
        SW = self.sum_width
        sh_in = fi + A.LOG2E_BITS - A.S2_FRAC
        fl_w = W + 2 - fi + 1  # width of floor(s2) (with a spare bit)
        fl_min = ((self.in_fmt.min_int * A.LOG2E_INT) >> sh_in) >> A.S2_FRAC
        s2_w = fl_w + A.S2_FRAC

        # memories: score buffer, 2**f table (value, slope)
        buf = Memory(shape=signed(W), depth=self.max_len, init=[])
        tab = A.EXP2_TABLE
        nt = 1 << A.EXP2_INDEX_BITS
        rom = Memory(shape=unsigned(24 + 17), depth=nt,
                     init=[tab[k] | ((tab[k + 1] - tab[k]) << 24) for k in range(nt)])
        m.submodules.buf = buf
        m.submodules.rom = rom
        wr = buf.write_port()
        rd = buf.read_port(domain="sync")
        trd = rom.read_port(domain="sync")

        phase = Signal(range(5))
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        emit = phase == _EMIT

        # ---- input side
        wptr = Signal(range(self.max_len + 1))
        nlen = Signal(range(self.max_len + 1))
        accept = Signal()
        in_last = Signal()
        m.d.comb += [
            self.i.ready.eq(en & (phase == _ACCEPT)),
            accept.eq(self.i.valid & self.i.ready),
            in_last.eq(self.i.payload.last | (wptr == self.max_len - 1)),
            wr.addr.eq(wptr),
            wr.data.eq(self.i.payload.data),
            wr.en.eq(accept),
        ]
        with m.If(accept):
            m.d.sync += wptr.eq(wptr + 1)
            with m.If(in_last):
                m.d.sync += [phase.eq(_DRAIN), nlen.eq(wptr + 1)]

        # ---- buffer reader (EMIT)
        rptr = Signal(range(self.max_len + 1))
        rd_active = Signal()
        issue = Signal()
        m.d.comb += [
            rd.addr.eq(rptr),
            rd.en.eq(en),
            issue.eq(en & emit & rd_active),
        ]
        with m.If(issue):
            m.d.sync += rptr.eq(rptr + 1)
            with m.If(rptr == nlen - 1):
                m.d.sync += rd_active.eq(0)

        # ---- shared exp front end
        r_valid, r_last, r_x = Signal(), Signal(), Signal(signed(W))
        with m.If(en):
            m.d.sync += [
                r_valid.eq(accept | issue),
                r_last.eq(Mux(emit, rptr == nlen - 1, in_last)),
                r_x.eq(self.i.payload.data),
            ]
        x_src = Mux(emit, rd.data, r_x)

        v1, last1 = Signal(), Signal()
        s2 = Signal(signed(s2_w))
        with m.If(en):
            m.d.sync += [v1.eq(r_valid), last1.eq(r_last),
                         s2.eq((x_src * A.LOG2E_INT).shift_right(sh_in))]
        m.d.comb += [trd.addr.eq(s2[A.EXP2_INTERP_BITS:A.S2_FRAC]), trd.en.eq(en)]

        v2, last2 = Signal(), Signal()
        fl2 = Signal(signed(fl_w))
        rr2 = Signal(unsigned(A.EXP2_INTERP_BITS))
        with m.If(en):
            m.d.sync += [v2.eq(v1), last2.eq(last1), fl2.eq(s2.shift_right(A.S2_FRAC)),
                         rr2.eq(s2[:A.EXP2_INTERP_BITS])]
        y0 = trd.data[:24]
        dy = trd.data[24:]

        v3, last3 = Signal(), Signal()
        fl3 = Signal(signed(fl_w))
        ev3 = Signal(unsigned(24))
        with m.If(en):
            m.d.sync += [v3.eq(v2), last3.eq(last2), fl3.eq(fl2),
                         ev3.eq(y0 + (dy * rr2)[A.EXP2_INTERP_BITS:])]

        # ---- running max / sum (ACCEPT, DRAIN), normalisation, division
        mx = Signal(signed(fl_w), init=fl_min)
        S = Signal(unsigned(SW))
        diff = Signal(signed(fl_w + 1))
        m.d.comb += diff.eq(fl3 - mx)
        grow_sh = Mux(diff > SW, SW, diff[:len(diff) - 1])
        keep_sh = Mux(-diff > 24, 24, (-diff)[:len(diff) - 1])
        e_cnt = Signal(range(SW + 1))
        cnt = Signal(range(max(self.norm_cycles, _DIV_CYCLES) + 1))
        rem = Signal(unsigned(_QM + 2))
        recip = Signal(unsigned(_QM + 1))
        m_int = S[SW - 1 - _QM:]
        rem2 = Cat(Const(0, 1), rem[:_QM + 1])
        sh_row = Signal(range(64))
        sh_m1 = Signal(range(64))
        c_sh = A.T_FRAC + _QM - A.SUM_FRAC - fo + SW - 1

        with m.If(v3 & ((phase == _ACCEPT) | (phase == _DRAIN))):
            with m.If(diff > 0):
                m.d.sync += [S.eq((S >> grow_sh) + ev3), mx.eq(fl3)]
            with m.Else():
                m.d.sync += S.eq(S + (ev3 >> keep_sh))
            with m.If(last3):
                m.d.sync += [phase.eq(_NORM), cnt.eq(0), e_cnt.eq(0)]
        with m.If(phase == _NORM):
            with m.If(~S[SW - 1]):
                m.d.sync += [S.eq(S << 1), e_cnt.eq(e_cnt + 1)]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == self.norm_cycles - 1):
                m.d.sync += [phase.eq(_DIV), cnt.eq(0), rem.eq(1 << (_QM - 1)), recip.eq(0)]
        with m.If(phase == _DIV):
            with m.If(rem2 >= m_int):
                m.d.sync += [rem.eq(rem2 - m_int), recip.eq(Cat(Const(1, 1), recip))]
            with m.Else():
                m.d.sync += [rem.eq(rem2), recip.eq(Cat(Const(0, 1), recip))]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == _DIV_CYCLES - 1):
                m.d.sync += [phase.eq(_EMIT), rptr.eq(0), rd_active.eq(1),
                             sh_row.eq(c_sh - e_cnt), sh_m1.eq(c_sh - 1 - e_cnt)]

        # ---- emit back end
        v4, last4 = Signal(), Signal()
        t4 = Signal(unsigned(A.T_FRAC + 1))
        t_sh = Signal(range(64))
        m.d.comb += t_sh.eq(Mux(keep_sh + (A.EXP2_FRAC - A.T_FRAC) > 24, 24,
                                keep_sh + (A.EXP2_FRAC - A.T_FRAC)))
        v5, last5 = Signal(), Signal()
        prod = Signal(unsigned(A.T_FRAC + 1 + _QM + 1))
        half = Signal(unsigned(64))
        m.d.comb += half.eq(Const(1, 1) << sh_m1)
        p = Signal(unsigned(len(prod) + 1))
        m.d.comb += p.eq((prod + half) >> sh_row)
        hi = self.out_fmt.max_int
        with m.If(en):
            m.d.sync += [
                v4.eq(v3 & emit), last4.eq(last3), t4.eq(ev3 >> t_sh),
                v5.eq(v4), last5.eq(last4), prod.eq(t4 * recip),
                self.o.valid.eq(v5),
                self.o.payload.last.eq(last5),
                self.o.payload.data.eq(Mux(p > hi, hi, p)),
            ]
        with m.If(self.o.valid & self.o.ready & self.o.payload.last):
            m.d.sync += [phase.eq(_ACCEPT), wptr.eq(0), S.eq(0), mx.eq(fl_min)]
        return m
