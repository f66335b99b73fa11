"""Streaming single-pass softmax over rows of up to ``max_len`` scores (base 2, shift rescale).

Bit-exact with :func:`einsum.approx.softmax_approx_int` (numerics and error bounds in the
docstring of :mod:`einsum.approx`).

Protocol
--------
``i.payload`` and ``o.payload`` are structs ``{data: signed(W), last: 1}`` (``data`` in bits
``[0, W)``, ``last`` in bit ``W``).  A row is the scores up to and including the one with
``last = 1``; a row also ends after ``max_len`` scores (the ``max_len``-th score is treated as
``last``).  The block emits each row's probabilities in the same order, the last one with
``last = 1``.  Rows overlap: while a row is emitted from one buffer bank the next row is
accepted into the other, so back-to-back rows of ``n`` scores take ``n + row_gap - 1``
cycles each (``row_interval(n)``; ``i.ready`` is low for ``row_gap - 1`` cycles after a
row's last score while its sum is finished).

Micro-architecture
------------------
Accept side (never stalls): input register, an exp front end (``s2 = x*log2 e`` with one
18-bit constant multiplier; 2**frac table read (64 words of value + slope) and its data
register; slope * fraction (17 x 10 multiplier); add), the running max (one compare per
score) and two interleaved partial sums (even/odd positions): shift amounts, then
``P >> (M_j - L)`` and ``v >> (M_j - n_j)``, then the add -- the loop-carried
shift-then-add has two cycles per update while one score enters per cycle.  The scores are
written to a 2 x ``max_len`` x W buffer (two banks).  Then FIN (3 cycles) aligns and adds the
partial sums, NORM shifts the sum left until its top bit is set (fixed ``norm_cycles``), DIV
computes the 18-bit reciprocal by restoring division (18 cycles), and HAND passes (bank,
length, max, reciprocal, output shift) to the emit side as soon as it is idle.
Emit side (advances when ``en = ~o.valid | o.ready``, so correct under any back-pressure):
buffer read, block-RAM data register, its own exp front end, then the term shift by
``M - n_i``, the 18 x 18 product with the reciprocal, half an LSB, the per-row shift and
saturation.  Every multiplier and block-RAM output feeds a register.

Latency (``latency`` attribute, no stalls, emit side idle): the first probability of a row
is valid ``27 + norm_cycles + div_cycles`` cycles after the cycle in which the row's last
score was accepted (``emit_latency`` = 14 of these are on the emit side); the rest follow
one per cycle.  A row of ``n`` scores alone spans ``2n - 1 + latency`` cycles
(``row_cycles(n)``).  ``row_gap = 14 + norm_cycles + div_cycles``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum import approx as A
from hw.common import check_int, check_qformat, stream_port, to_verilog

__all__ = ["Softmax", "to_verilog"]

_ACCEPT, _DRAIN, _FIN1, _FIN2, _FIN3, _NORM, _DIV, _HAND = range(8)
_NPHASES = 8
_QM = A.RECIP_BITS
_DIV_CYCLES = _QM + 1
_FRONT = 27  # fixed part of the latency (pipeline stages + phase changes)
_GAP = 14  # fixed part of the gap between rows on the input


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
        self.row_gap = _GAP + self.norm_cycles + self.div_cycles
        self.emit_latency = self.latency - self.row_gap + 1
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

    def row_interval(self, n: int) -> int:
        """Steady-state cycles per row of ``n`` when rows are streamed back to back."""
        return n + self.row_gap - 1

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
                               f"probability = 27 + norm_cycles ({self.norm_cycles}) + "
                               f"div_cycles ({self.div_cycles}); row of n: 2n - 1 + latency",
            "row_gap": self.row_gap,
            "row_gap_formula": "cycles from a row's last score to the next row's first score "
                               "= 14 + norm_cycles + div_cycles; back-to-back rows of n: one "
                               "row per n + row_gap - 1 cycles",
            "params": self.params(),
            "buffer_bits": self.max_len * w,
            "throughput": "1 element/cycle; a row is emitted while the next is accepted",
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
        abits = max(1, (self.max_len - 1).bit_length())

        # memories: two row buffers (banks) and the 2**f table (value, slope)
        buf = Memory(shape=signed(W), depth=2 << abits, init=[])
        tab = A.EXP2_TABLE
        nt = 1 << A.EXP2_INDEX_BITS
        rom = Memory(shape=unsigned(24 + 17), depth=nt,
                     init=[tab[k] | ((tab[k + 1] - tab[k]) << 24) for k in range(nt)])
        m.submodules.buf = buf
        m.submodules.rom = rom
        wr = buf.write_port()
        rd = buf.read_port(domain="sync")

        en = Signal()  # emit side advances (output back-pressure)
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        def clamp_bits(v, bits):
            """Non-negative ``v`` clamped to ``2**bits - 1`` with bit checks (no comparator);
            the shifts below give 0 for any amount >= the shifted value's width anyway."""
            return Mux(v[bits:].any(), (1 << bits) - 1, v[:bits])

        def stage(gate, *pairs):
            """Pipeline registers: ``stage(enable or None, (dst, src), ...)``."""
            if gate is None:
                m.d.sync += [d.eq(v) for d, v in pairs]
            else:
                with m.If(gate):
                    m.d.sync += [d.eq(v) for d, v in pairs]

        def front(tag, gate, valid, last, x):
            """exp front end: S1 (x*L), S2 (table read), S2b (table data reg),
            S3 (slope*r), S4 (add).  Returns (valid, last, floor(s2), 2**frac(s2))."""
            trd = rom.read_port(domain="sync")
            v1, l1 = Signal(name=f"{tag}_v1"), Signal(name=f"{tag}_l1")
            s2 = Signal(signed(s2_w), name=f"{tag}_s2")
            stage(gate, (v1, valid), (l1, last), (s2, (x * A.LOG2E_INT).shift_right(sh_in)))
            m.d.comb += [trd.addr.eq(s2[IB:A.S2_FRAC]), trd.en.eq(1 if gate is None else gate)]
            v2, l2 = Signal(name=f"{tag}_v2"), Signal(name=f"{tag}_l2")
            fl2 = Signal(signed(fl_w), name=f"{tag}_fl2")
            rr2 = Signal(unsigned(IB), name=f"{tag}_rr2")
            stage(gate, (v2, v1), (l2, l1), (fl2, s2.shift_right(A.S2_FRAC)), (rr2, s2[:IB]))
            v2b, l2b = Signal(name=f"{tag}_v2b"), Signal(name=f"{tag}_l2b")
            fl2b = Signal(signed(fl_w), name=f"{tag}_fl2b")
            rr2b = Signal(unsigned(IB), name=f"{tag}_rr2b")
            y2b = Signal(unsigned(24), name=f"{tag}_y2b")
            dy2b = Signal(unsigned(17), name=f"{tag}_dy2b")
            stage(gate, (v2b, v2), (l2b, l2), (fl2b, fl2), (rr2b, rr2),
                  (y2b, trd.data[:24]), (dy2b, trd.data[24:]))
            v3, l3 = Signal(name=f"{tag}_v3"), Signal(name=f"{tag}_l3")
            fl3 = Signal(signed(fl_w), name=f"{tag}_fl3")
            y3 = Signal(unsigned(24), name=f"{tag}_y3")
            pm3 = Signal(unsigned(17 + IB), name=f"{tag}_pm3")
            stage(gate, (v3, v2b), (l3, l2b), (fl3, fl2b), (y3, y2b), (pm3, dy2b * rr2b))
            v4, l4 = Signal(name=f"{tag}_v4"), Signal(name=f"{tag}_l4")
            fl4 = Signal(signed(fl_w), name=f"{tag}_fl4")
            ev4 = Signal(unsigned(24), name=f"{tag}_ev4")
            stage(gate, (v4, v3), (l4, l3), (fl4, fl3), (ev4, y3 + pm3[IB:]))
            return v4, l4, fl4, ev4

        # ================= accept side (never stalls) =================
        phase = Signal(range(_NPHASES))
        wbank = Signal()
        wptr = Signal(range(self.max_len + 1))
        nlen = Signal(range(self.max_len + 1))
        accept = Signal()
        in_last = Signal()
        m.d.comb += [
            self.i.ready.eq(phase == _ACCEPT),
            accept.eq(self.i.valid & self.i.ready),
            in_last.eq(self.i.payload.last | (wptr == self.max_len - 1)),
            wr.addr.eq(Cat(wptr[:abits], wbank)),
            wr.data.eq(self.i.payload.data),
            wr.en.eq(accept),
        ]
        with m.If(accept):
            m.d.sync += wptr.eq(wptr + 1)
            with m.If(in_last):
                m.d.sync += [phase.eq(_DRAIN), nlen.eq(wptr + 1)]

        r_valid, r_last, r_x = Signal(), Signal(), Signal(signed(W))
        stage(None, (r_valid, accept), (r_last, in_last), (r_x, self.i.payload.data))
        v4, last4, fl4, ev4 = front("acc", None, r_valid, r_last, r_x)

        # running max (S5), shift amounts (S6), shifts (S7), add (S8)
        mx = Signal(signed(fl_w), init=fl_min)
        par = Signal()
        a5, last5, par5 = Signal(), Signal(), Signal()
        fl5, mj5 = Signal(signed(fl_w)), Signal(signed(fl_w))
        ev5 = Signal(unsigned(24))
        mj = Mux(fl4 > mx, fl4, mx)
        with m.If(v4):
            m.d.sync += [mx.eq(mj), par.eq(~par)]
        stage(None, (a5, v4), (last5, last4), (par5, par), (fl5, fl4), (mj5, mj), (ev5, ev4))

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
        stage(None, (a6, a5), (last6, last5), (par6, par5), (ev6, ev5),
              (rs6, clamp_bits(dr, 6)), (ts6, clamp_bits(dt, 5)))

        part = [Signal(unsigned(SW), name=f"part{k}") for k in range(2)]
        a7, last7, par7 = Signal(), Signal(), Signal()
        t7 = Signal(unsigned(24))
        sh7 = Signal(unsigned(SW))
        stage(None, (a7, a6), (last7, last6), (par7, par6), (t7, ev6 >> ts6),
              (sh7, Mux(par6, part[1], part[0]) >> rs6))
        with m.If(a7):
            with m.If(par7):
                m.d.sync += part[1].eq(sh7 + t7)
            with m.Else():
                m.d.sync += part[0].eq(sh7 + t7)
            with m.If(last7):
                m.d.sync += phase.eq(_FIN1)

        # FIN: combine the partial sums (amounts, shifts, add); NORM; DIV; HAND(off)
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
        sh_min = A.T_FRAC + _QM - fo  # output shift when lead(S) = SUM_FRAC
        c_sh = A.T_FRAC + _QM - A.SUM_FRAC - fo + SW - 1
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
                m.d.sync += phase.eq(_HAND)

        # ================= emit side (advances with en) =================
        e_busy = Signal()
        e_bank = Signal()
        e_nlen = Signal(range(self.max_len + 1))
        e_recip = Signal(unsigned(_QM + 1))
        e_shv = Signal(range(SW + 1))  # per-row output shift beyond sh_min
        e_half = Signal(unsigned(c_sh + 1))
        e_mx5 = Signal(signed(fl_w + 1))
        rptr = Signal(range(self.max_len + 1))
        rd_active = Signal()
        rd_last = Signal()
        issue = Signal()
        m.d.comb += [
            rd.addr.eq(Cat(rptr[:abits], e_bank)),
            rd.en.eq(en),
            issue.eq(en & rd_active),
        ]
        with m.If(issue):
            m.d.sync += [rptr.eq(rptr + 1), rd_last.eq(rptr + 2 == e_nlen)]
            with m.If(rd_last):
                m.d.sync += rd_active.eq(0)

        # handoff: the accept side passes the row to the idle emit side and takes a new row
        with m.If((phase == _HAND) & ~e_busy):
            m.d.sync += [
                e_busy.eq(1), e_bank.eq(wbank), e_nlen.eq(nlen), e_recip.eq(recip),
                e_shv.eq(c_sh - sh_min - e_cnt),
                e_half.eq(Const(1, 1) << (c_sh - 1 - e_cnt).as_unsigned()),
                e_mx5.eq(mx + (A.EXP2_FRAC - A.T_FRAC)),
                rptr.eq(0), rd_active.eq(1), rd_last.eq(nlen == 1),
                phase.eq(_ACCEPT), wbank.eq(~wbank), wptr.eq(0), par.eq(0), mx.eq(fl_min),
                part[0].eq(0), part[1].eq(0),
            ]

        # R (read issued), Q (block-RAM data register), exp front end
        q_valid, q_last = Signal(), Signal()
        e_valid, e_last = Signal(), Signal()
        q_mem = Signal(signed(W), reset_less=True)  # block RAM -> flip-flop only
        stage(en, (e_valid, issue), (e_last, rd_last))
        stage(en, (q_valid, e_valid), (q_last, e_last), (q_mem, rd.data))
        w4, wlast4, gl4, gv4 = front("emit", en, q_valid, q_last, q_mem)

        # shift amount (E5), term (E6), product (E7), round (E8), scale (E9), saturate (E10)
        b5, blast5 = Signal(), Signal()
        ev_e5 = Signal(unsigned(24))
        st5 = Signal(range(32))
        de = Signal(signed(fl_w + 2))
        m.d.comb += de.eq(e_mx5 - gl4)
        stage(en, (b5, w4), (blast5, wlast4), (ev_e5, gv4), (st5, clamp_bits(de, 5)))
        b6, blast6 = Signal(), Signal()
        t6 = Signal(unsigned(A.T_FRAC + 1))
        stage(en, (b6, b5), (blast6, blast5), (t6, ev_e5 >> st5))
        b7, blast7 = Signal(), Signal()
        prod7 = Signal(unsigned(A.T_FRAC + 1 + _QM + 1))
        stage(en, (b7, b6), (blast7, blast6), (prod7, t6 * e_recip))
        b8, blast8 = Signal(), Signal()
        p8 = Signal(unsigned(len(prod7) + 1))
        stage(en, (b8, b7), (blast8, blast7), (p8, prod7 + e_half))
        b9, blast9 = Signal(), Signal()
        q9 = Signal(unsigned(len(p8)))
        stage(en, (b9, b8), (blast9, blast8), (q9, p8[sh_min:] >> e_shv))
        hi = self.out_fmt.max_int
        ovf = q9[ow - 1:].any() if len(q9) > ow - 1 else Const(0)
        stage(en, (self.o.valid, b9), (self.o.payload.last, blast9),
              (self.o.payload.data, Mux(ovf, hi, q9[:ow - 1])))
        with m.If(self.o.valid & self.o.ready & self.o.payload.last):
            m.d.sync += e_busy.eq(0)
        return m
