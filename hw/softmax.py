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
Phases ACCEPT -> DRAIN -> FIN (3 cycles) -> NORM -> DIV -> EMIT.  A shared 8-stage exp
front end (input register or buffer read + data register, source select, ``s2 = x*log2 e``
(one 18-bit constant multiplier), 2**frac table read (64 words of value + slope) and its
data register, slope * fraction (17 x 10 multiplier), add) feeds, during ACCEPT, the running
max (one 9-bit compare per score) and two interleaved partial sums (even/odd positions):
shift amounts, then ``P >> (M_j - L)`` and ``v >> (M_j - n_j)``, then the add -- so the
loop-carried shift-then-add has two cycles per update while one score enters per cycle.
The scores are written to a ``max_len`` x W buffer.  FIN aligns and adds the partial sums,
NORM shifts the sum left until its top bit is set (fixed ``norm_cycles``), DIV computes the
18-bit reciprocal by restoring division (18 cycles).  EMIT re-reads the buffer through the
same front end, shifts each term by ``M - n_i``, multiplies by the reciprocal (18 x 18),
adds half an LSB, applies the per-row shift and saturates (6 stages).  Every phase handles
one element per cycle; the stream pipeline advances when ``en = ~o.valid | o.ready``
(correct under any back-pressure).  Every multiplier and block-RAM output feeds a register.

Latency (``latency`` attribute, no stalls): the first probability of a row is valid
``29 + norm_cycles + div_cycles`` = ``latency`` cycles after the cycle in which the row's last
score was accepted; the rest follow one per cycle.  A row of ``n`` scores thus occupies
``2n - 1 + latency`` cycles (``row_cycles(n)``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum import approx as A
from hw.common import check_int, check_qformat, stream_port, to_verilog

__all__ = ["Softmax", "to_verilog"]

_ACCEPT, _DRAIN, _FIN1, _FIN2, _FIN3, _NORM, _DIV, _EMIT = range(8)
_NPHASES = 8
_QM = A.RECIP_BITS
_DIV_CYCLES = _QM + 1
_FRONT = 29  # fixed part of the latency (pipeline stages + phase changes)


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
        """Cycles spanned by a row of ``n`` (no stalls), from the cycle of its first input
        handshake to the cycle of its last output handshake, both included."""
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
                               f"probability = 29 + norm_cycles ({self.norm_cycles}) + "
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
        fo, ow = self.out_fmt.frac, self.out_fmt.width
        SW = self.sum_width
        sh_in = fi + A.LOG2E_BITS - A.S2_FRAC
        fl_w = W + 2 - fi + 1  # width of floor(s2) (with a spare bit)
        fl_min = ((self.in_fmt.min_int * A.LOG2E_INT) >> sh_in) >> A.S2_FRAC
        s2_w = fl_w + A.S2_FRAC
        IB = A.EXP2_INTERP_BITS

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

        phase = Signal(range(_NPHASES))
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        emit = Signal()
        acc = Signal()
        m.d.comb += [emit.eq(phase == _EMIT), acc.eq((phase == _ACCEPT) | (phase == _DRAIN))]

        def clamp_bits(v, bits):
            """Non-negative ``v`` clamped to ``2**bits - 1`` with bit checks (no comparator);
            the shifts below give 0 for any amount >= the shifted value's width anyway."""
            return Mux(v[bits:].any(), (1 << bits) - 1, v[:bits])

        def stage(*pairs):
            """Pipeline registers advancing with ``en``: ``stage((dst, src), ...)``."""
            with m.If(en):
                m.d.sync += [d.eq(v) for d, v in pairs]

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
        rd_last = Signal()
        issue = Signal()
        m.d.comb += [
            rd.addr.eq(rptr),
            rd.en.eq(en),
            issue.eq(en & emit & rd_active),
        ]
        with m.If(issue):
            m.d.sync += [rptr.eq(rptr + 1), rd_last.eq(rptr + 2 == nlen)]
            with m.If(rd_last):
                m.d.sync += rd_active.eq(0)

        # ---- shared exp front end.  Memory outputs go straight into registers (ECP5 block
        # RAM has a slow clock-to-output) and every multiplier reads registers:
        # R (input reg / buffer read), R2 (buffer data reg), R3 (source select),
        # S1 (x*L), S2 (table read), S2b (table data reg), S3 (slope*r), S4 (add)
        r_valid, r_last, r_x = Signal(), Signal(), Signal(signed(W))
        stage((r_valid, accept | issue), (r_last, Mux(emit, rd_last, in_last)),
              (r_x, self.i.payload.data))
        q_valid, q_last, q_x = Signal(), Signal(), Signal(signed(W))
        q_mem = Signal(signed(W), reset_less=True)  # no reset: block RAM -> flip-flop only
        stage((q_valid, r_valid), (q_last, r_last), (q_mem, rd.data), (q_x, r_x))
        x_valid, x_last, x_src = Signal(), Signal(), Signal(signed(W))
        stage((x_valid, q_valid), (x_last, q_last), (x_src, Mux(emit, q_mem, q_x)))

        v1, last1 = Signal(), Signal()
        s2 = Signal(signed(s2_w))
        stage((v1, x_valid), (last1, x_last), (s2, (x_src * A.LOG2E_INT).shift_right(sh_in)))
        m.d.comb += [trd.addr.eq(s2[IB:A.S2_FRAC]), trd.en.eq(en)]

        v2, last2 = Signal(), Signal()
        fl2 = Signal(signed(fl_w))
        rr2 = Signal(unsigned(IB))
        stage((v2, v1), (last2, last1), (fl2, s2.shift_right(A.S2_FRAC)), (rr2, s2[:IB]))

        v2b, last2b = Signal(), Signal()
        fl2b = Signal(signed(fl_w))
        rr2b = Signal(unsigned(IB))
        y2b, dy2b = Signal(unsigned(24)), Signal(unsigned(17))
        stage((v2b, v2), (last2b, last2), (fl2b, fl2), (rr2b, rr2),
              (y2b, trd.data[:24]), (dy2b, trd.data[24:]))

        v3, last3 = Signal(), Signal()
        fl3 = Signal(signed(fl_w))
        y3 = Signal(unsigned(24))
        pm3 = Signal(unsigned(17 + IB))
        stage((v3, v2b), (last3, last2b), (fl3, fl2b), (y3, y2b), (pm3, dy2b * rr2b))

        v4, last4 = Signal(), Signal()
        fl4 = Signal(signed(fl_w))
        ev4 = Signal(unsigned(24))
        stage((v4, v3), (last4, last3), (fl4, fl3), (ev4, y3 + pm3[IB:]))

        # ---- ACCEPT: running max (S5), shift amounts (S6), shifts (S7), add (S8)
        mx = Signal(signed(fl_w), init=fl_min)
        par = Signal()
        a5, last5, par5 = Signal(), Signal(), Signal()
        fl5, mj5 = Signal(signed(fl_w)), Signal(signed(fl_w))
        ev5 = Signal(unsigned(24))
        mj = Mux(fl4 > mx, fl4, mx)
        with m.If(v4 & acc):
            m.d.sync += [mx.eq(mj), par.eq(~par)]
        stage((a5, v4 & acc), (last5, last4), (par5, par), (fl5, fl4), (mj5, mj), (ev5, ev4))

        mlast = [Signal(signed(fl_w), init=fl_min, name=f"mlast{k}") for k in range(2)]
        a6, last6, par6 = Signal(), Signal(), Signal()
        ev6 = Signal(unsigned(24))
        rs6 = Signal(range(64))
        ts6 = Signal(range(32))
        dr = Signal(signed(fl_w + 1))
        dt = Signal(signed(fl_w + 1))
        m.d.comb += [dr.eq(mj5 - Mux(par5, mlast[1], mlast[0])), dt.eq(mj5 - fl5)]
        with m.If(a5):
            with m.If(par5):
                m.d.sync += mlast[1].eq(mj5)
            with m.Else():
                m.d.sync += mlast[0].eq(mj5)
        stage((a6, a5), (last6, last5), (par6, par5), (ev6, ev5),
              (rs6, clamp_bits(dr, 6)), (ts6, clamp_bits(dt, 5)))

        part = [Signal(unsigned(SW), name=f"part{k}") for k in range(2)]
        a7, last7, par7 = Signal(), Signal(), Signal()
        t7 = Signal(unsigned(24))
        sh7 = Signal(unsigned(SW))
        stage((a7, a6), (last7, last6), (par7, par6), (t7, ev6 >> ts6),
              (sh7, Mux(par6, part[1], part[0]) >> rs6))
        with m.If(a7):
            with m.If(par7):
                m.d.sync += part[1].eq(sh7 + t7)
            with m.Else():
                m.d.sync += part[0].eq(sh7 + t7)
            with m.If(last7):
                m.d.sync += phase.eq(_FIN1)

        # ---- FIN: combine the partial sums (amounts, shifts, add); NORM; DIV
        S = Signal(unsigned(SW))
        famt = [Signal(range(64), name=f"famt{k}") for k in range(2)]
        fsh = [Signal(unsigned(SW), name=f"fsh{k}") for k in range(2)]
        with m.If(phase == _FIN1):
            for k in range(2):
                d = Signal(signed(fl_w + 1), name=f"fd{k}")
                m.d.comb += d.eq(mx - mlast[k])
                m.d.sync += famt[k].eq(clamp_bits(d, 6))
            m.d.sync += phase.eq(_FIN2)
        with m.If(phase == _FIN2):
            m.d.sync += [fsh[k].eq(part[k] >> famt[k]) for k in range(2)]
            m.d.sync += phase.eq(_FIN3)
        e_cnt = Signal(range(SW + 1))
        cnt = Signal(range(max(self.norm_cycles, _DIV_CYCLES) + 1))
        with m.If(phase == _FIN3):
            m.d.sync += [S.eq(fsh[0] + fsh[1]), phase.eq(_NORM), cnt.eq(0), e_cnt.eq(0)]
        rem = Signal(unsigned(_QM + 2))
        recip = Signal(unsigned(_QM + 1))
        m_int = Signal(unsigned(_QM + 1))
        m.d.comb += m_int.eq(S[SW - 1 - _QM:])
        rem2 = Cat(Const(0, 1), rem[:_QM + 1])
        rdiff = Signal(signed(_QM + 3))
        m.d.comb += rdiff.eq(rem2 - m_int)
        sh_min = A.T_FRAC + _QM - A.SUM_FRAC - fo + A.SUM_FRAC  # shift when lead(S) = 22
        c_sh = A.T_FRAC + _QM - A.SUM_FRAC - fo + SW - 1
        sh_var = Signal(range(SW + 1))  # per-row shift beyond sh_min (= lead(S) - 22)
        half_r = Signal(unsigned(c_sh + 1))
        mx5 = Signal(signed(fl_w + 1))
        with m.If(phase == _NORM):
            with m.If(~S[SW - 1]):
                m.d.sync += [S.eq(S << 1), e_cnt.eq(e_cnt + 1)]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == self.norm_cycles - 1):
                m.d.sync += [phase.eq(_DIV), cnt.eq(0), rem.eq(1 << (_QM - 1)), recip.eq(0)]
        with m.If(phase == _DIV):
            with m.If(~rdiff[-1]):
                m.d.sync += [rem.eq(rdiff), recip.eq(Cat(Const(1, 1), recip))]
            with m.Else():
                m.d.sync += [rem.eq(rem2), recip.eq(Cat(Const(0, 1), recip))]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == _DIV_CYCLES - 1):
                m.d.sync += [phase.eq(_EMIT), rptr.eq(0), rd_active.eq(1),
                             rd_last.eq(nlen == 1),
                             sh_var.eq(c_sh - sh_min - e_cnt),
                             half_r.eq(Const(1, 1) << (c_sh - 1 - e_cnt).as_unsigned()),
                             mx5.eq(mx + (A.EXP2_FRAC - A.T_FRAC))]

        # ---- EMIT back end: shift amount (E5), term (E6), product (E7), round (E8),
        #      scale (E9), saturate (E10) -> o
        b5, blast5 = Signal(), Signal()
        ev_e5 = Signal(unsigned(24))
        st5 = Signal(range(32))
        de = Signal(signed(fl_w + 2))
        m.d.comb += de.eq(mx5 - fl4)
        stage((b5, v4 & emit), (blast5, last4), (ev_e5, ev4),
              (st5, clamp_bits(de, 5)))
        b6, blast6 = Signal(), Signal()
        t6 = Signal(unsigned(A.T_FRAC + 1))
        stage((b6, b5), (blast6, blast5), (t6, ev_e5 >> st5))
        b7, blast7 = Signal(), Signal()
        prod7 = Signal(unsigned(A.T_FRAC + 1 + _QM + 1))
        stage((b7, b6), (blast7, blast6), (prod7, t6 * recip))
        b8, blast8 = Signal(), Signal()
        p8 = Signal(unsigned(len(prod7) + 1))
        stage((b8, b7), (blast8, blast7), (p8, prod7 + half_r))
        b9, blast9 = Signal(), Signal()
        q9 = Signal(unsigned(len(p8)))
        stage((b9, b8), (blast9, blast8), (q9, p8[sh_min:] >> sh_var))
        hi = self.out_fmt.max_int
        ovf = q9[ow - 1:].any() if len(q9) > ow - 1 else Const(0)
        stage((self.o.valid, b9), (self.o.payload.last, blast9),
              (self.o.payload.data, Mux(ovf, hi, q9[:ow - 1])))
        with m.If(self.o.valid & self.o.ready & self.o.payload.last):
            m.d.sync += [phase.eq(_ACCEPT), wptr.eq(0), par.eq(0), mx.eq(fl_min),
                         part[0].eq(0), part[1].eq(0)]
        return m
