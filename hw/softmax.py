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
Every multiplier is 2 cycles (operand and product registers) and every block-RAM read is 2
cycles (address, output register) plus a data register, so that no path has more than
about one carry chain or two multiplexer levels (ECP5 LFE5U-25F-6 with ``dsp="ecp5"``:
Fmax over placement seeds in ``reports/hw``). Accept side
(never stalls): input register, an exp front end (``s2 = x*log2 e``: ``x * (L >> 1)`` (2
cycles), then ``2p + x`` with the shift; 2**frac table read (64 words of value + slope)
and its data register; slope * fraction (17 x 10, 2 cycles); add), the running max (on
``floor(s2)``, one stage before ``2**frac(s2)`` is ready; its one-cycle loop has no
comparator: ``n > max(M, n_prev)`` comes from the two compares registered a cycle
earlier), the differences ``M_j - L[k]`` and ``M_j - n_j``, the clamped shift amounts,
then ``P[k] >> (M_j - L[k])`` (one shifter per partial sum: two levels of 8:1
multiplexers) and ``v >> (M_j - n_j)``, then the add -- two interleaved partial sums
(even/odd positions) so that the loop-carried shift-then-add has two cycles per update
while one score enters per cycle. The scores are written to a 2 x ``max_len`` x W buffer
(two banks). Then FIN (3 cycles) aligns the partial sums with the same registers and
shifters and adds them, NORM loads the sum and shifts it left until its top bit is set
(1 + fixed ``norm_cycles``), DIV computes the 18-bit reciprocal by restoring division (18
cycles), and HAND passes (bank, length, max, reciprocal, output shift) to the emit side as
soon as it is idle.
Emit side (advances with ``en``; correct under any back-pressure, no loss or duplication):
buffer read (2 cycles), data register, its own exp front end, then the term shift by
``M - n_i``, the product with the reciprocal (``t[:17] * R[:17]``, 2 cycles, while the top-bit
terms and half an LSB are added beside it), the add, the per-row shift and saturation into
the output register, with a skid register beside it: the emit pipeline stalls only while
the skid register is full, so ``en`` is a flip-flop.

``dsp="ecp5"`` (what ``einarray synth --target ecp5`` uses) instantiates Lattice ECP5 primitives: ``MULT18X18D`` with input
and output registers (:func:`hw.common.ecp5_mult18x18d`; a product whose operands exceed
18 signed bits, ``x * (L >> 1)`` for ``width > 18``, stays generic), ``DP16KD`` with the
output register for the row buffer (:func:`hw.common.ecp5_dp16kd_sdp`) and the shifters'
8:1 multiplexers as ``LUT4``/``PFUMX``/``L6MUX21`` (:func:`hw.common.ecp5_mux8`) -- yosys
does not pack registers into ECP5 DSPs or block RAMs.  ``dsp="generic"`` (default)
describes the same pipeline (same latency) with ``*``, an Amaranth ``Memory`` plus a
register, and ``>>``: portable Verilog, simulable by any simulator, but slower on ECP5.

Latency (``latency`` attribute, no stalls, emit side idle): the first probability of a row
is valid ``36 + norm_cycles + div_cycles`` cycles after the cycle in which the row's last
score was accepted (``emit_latency`` = 19 of these are on the emit side); the rest follow
one per cycle.  A row of ``n`` scores alone spans ``2n - 1 + latency`` cycles
(``row_cycles(n)``).  ``row_gap = 18 + norm_cycles + div_cycles``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum import approx as A
from einsum.errors import ConfigError
from hw.common import (DSP_KINDS, check_int, check_qformat, ecp5_dp16kd_sdp, ecp5_mult18x18d,
                       ecp5_mux8,
                       stream_port, to_verilog)

__all__ = ["Softmax", "to_verilog"]

_ACCEPT, _DRAIN, _FIN1, _FIN2, _FIN3, _NORM, _DIV, _HAND = range(8)
_NPHASES = 8
_QM = A.RECIP_BITS
_DIV_CYCLES = _QM + 1
_FRONT = 36  # fixed part of the latency (pipeline stages + phase changes)
_GAP = 18  # fixed part of the gap between rows on the input


class Softmax(wiring.Component):
    """Streaming softmax.

    Parameters (keyword-only)
    -------------------------
    width, frac_bits:          score format (default 16, 10 = Q6.10; width 4..32)
    out_width, out_frac_bits:  probability format (default 16, 14 = Q2.14; frac <= 30)
    max_len:                   longest row (default 1024; 2..65536), size of the row buffer
    dsp:                       "generic" (default: portable ``*``, inferred RAM, ``>>``) or
                               "ecp5" (MULT18X18D, DP16KD with output register and
                               wide-multiplexer primitives, same latency; the ECP5 path;
                               simulate with their models)

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
        dsp: str = "generic",
    ) -> None:
        self.in_fmt = check_qformat("Softmax", "", width, frac_bits, 32)
        self.out_fmt = check_qformat("Softmax", "out_", out_width, out_frac_bits, 32)
        if width < 4:
            raise ValueError(f"Softmax: width must be >= 4, got {width}")
        check_int("Softmax", "out_frac_bits", out_frac_bits, 0, 30)
        self.max_len = check_int("Softmax", "max_len", max_len, 2, 1 << 16)
        if dsp not in DSP_KINDS:
            raise ConfigError(f"Softmax: dsp must be one of {', '.join(DSP_KINDS)}, got {dsp!r}")
        self.dsp = dsp
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
            "dsp": self.dsp,
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
                               f"probability = 36 + norm_cycles ({self.norm_cycles}) + "
                               f"div_cycles ({self.div_cycles}); row of n: 2n - 1 + latency",
            "row_gap": self.row_gap,
            "row_gap_formula": "cycles from a row's last score to the next row's first score "
                               "= 18 + norm_cycles + div_cycles; back-to-back rows of n: one "
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
        tab = A.EXP2_TABLE
        nt = 1 << A.EXP2_INDEX_BITS
        rom = Memory(shape=unsigned(24 + 17), depth=nt,
                     init=[tab[k] | ((tab[k + 1] - tab[k]) << 24) for k in range(nt)])
        m.submodules.rom = rom
        ecp5 = self.dsp == "ecp5"

        en = Signal()  # emit side advances (output back-pressure)
        # output skid register: the pipeline stalls only while it holds a word, so ``en`` is
        # a flip-flop (no path from o.ready through the pipeline's clock enables)
        sk_valid = Signal()
        m.d.comb += en.eq(~sk_valid)

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

        def delay(gate, sig, n, name):
            """``sig`` through ``n`` pipeline registers."""
            for j in range(n):
                nxt = Signal.like(sig, name=f"{name}_d{j}")
                stage(gate, (nxt, sig))
                sig = nxt
            return sig

        def fits18(v):
            return len(v) <= (18 if v.shape().signed else 17)

        def mul(gate, a, b, shape, name):
            """Product ``a * b`` 2 cycles (of ``gate``) later: a registered MULT18X18D
            (``dsp="ecp5"``, operands of at most 18 signed / 17 unsigned bits) or a product
            register and one more register."""
            p = Signal(shape, name=name)
            if ecp5 and fits18(a) and fits18(b):
                p36 = Signal(36, name=f"{name}_p36")
                m.submodules[f"{name}_dsp"] = ecp5_mult18x18d(
                    a, b, p36, ce=Const(1) if gate is None else gate)
                m.d.comb += p.eq(p36[:len(p)])
            else:
                p1 = Signal(shape, name=f"{name}_p1")
                stage(gate, (p1, a * b), (p, p1))
            return p

        def shift_right(v, amt, name):
            """``v >> amt`` (unsigned): two levels of 8:1 multiplexers (amount bits 3..5,
            then 0..2); with ``dsp="ecp5"`` each 8:1 multiplexer is built from LUT4s,
            PFUMXs and an L6MUX21 (one slice pair, the ECP5 wide-function multiplexer)."""
            assert len(amt) <= 6
            amt = Cat(amt, Const(0, 6 - len(amt)))
            if not ecp5:
                return v >> amt
            n = len(v)
            mid = Signal(n, name=f"{name}_c")
            m.d.comb += mid.eq(mux8_shift(v, amt[3:6], 8, f"{name}_c"))
            return mux8_shift(mid, amt[:3], 1, f"{name}_f")

        def mux8_shift(v, sel, step, name):
            out = []
            for i in range(len(v)):
                d = [v[i + step * k] if i + step * k < len(v) else Const(0, 1) for k in range(8)]
                out.append(ecp5_mux8(m, f"{name}{i}", d, sel))
            return Cat(*out)

        def front(tag, gate, valid, last, x):
            """exp front end: M (x * (L >> 1), 2 cycles), S1 (s2 = x*L >> sh), S2 (table
            read), S2b (table data reg), M3 (slope*r, 2 cycles), S4 (add).
            Returns (valid, last, floor(s2), 2**frac(s2))."""
            trd = rom.read_port(domain="sync")
            assert A.LOG2E_INT & 1
            pm = mul(gate, x, Const(A.LOG2E_INT >> 1, unsigned(17)), signed(W + 18), f"{tag}_xl")
            v0, l0 = delay(gate, valid, 2, f"{tag}_v0"), delay(gate, last, 2, f"{tag}_l0")
            x0 = delay(gate, x, 2, f"{tag}_x0")
            v1, l1 = Signal(name=f"{tag}_v1"), Signal(name=f"{tag}_l1")
            s2 = Signal(signed(s2_w), name=f"{tag}_s2")
            stage(gate, (v1, v0), (l1, l0), (s2, ((pm << 1) + x0).shift_right(sh_in)))
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
            pm3 = mul(gate, dy2b, rr2b, unsigned(17 + IB), f"{tag}_pm3")
            v3, l3 = delay(gate, v2b, 2, f"{tag}_v3"), delay(gate, l2b, 2, f"{tag}_l3")
            fl3a = delay(gate, fl2b, 1, f"{tag}_fl3a")
            fl3, y3 = delay(gate, fl3a, 1, f"{tag}_fl3"), delay(gate, y2b, 2, f"{tag}_y3")
            v4, l4 = Signal(name=f"{tag}_v4"), Signal(name=f"{tag}_l4")
            fl4 = Signal(signed(fl_w), name=f"{tag}_fl4")
            ev4 = Signal(unsigned(24), name=f"{tag}_ev4")
            stage(gate, (v4, v3), (l4, l3), (fl4, fl3), (ev4, y3 + pm3[IB:]))
            return v4, l4, fl4, ev4, v3, fl3, fl3a

        # ================= accept side (never stalls) =================
        phase = Signal(range(_NPHASES))
        wbank = Signal()
        wptr = Signal(range(self.max_len + 1))
        nlen = Signal(range(self.max_len + 1))
        accept = Signal()
        in_last = Signal()
        acc_open = Signal(init=1)  # == (phase == _ACCEPT), as a flip-flop
        in_hand = Signal()  # == (phase == _HAND), as a flip-flop
        acc_clr = Signal()
        in_norm, in_div = Signal(), Signal()  # == (phase == _NORM / _DIV), flip-flops
        at_end = Signal()  # wptr == max_len - 1, as a flip-flop
        m.d.comb += [
            self.i.ready.eq(acc_open),
            accept.eq(self.i.valid & self.i.ready),
            in_last.eq(self.i.payload.last | at_end),
        ]
        with m.If(accept):
            m.d.sync += [wptr.eq(wptr + 1), at_end.eq(wptr == self.max_len - 2)]
            with m.If(in_last):
                m.d.sync += [phase.eq(_DRAIN), nlen.eq(wptr + 1), acc_open.eq(0)]

        r_valid, r_last, r_x = Signal(), Signal(), Signal(signed(W))
        stage(None, (r_valid, accept), (r_last, in_last), (r_x, self.i.payload.data))
        v4, last4, fl4, ev4, v3, fl3, fl3a = front("acc", None, r_valid, r_last, r_x)

        # running max (S4, from floor(s2) a stage before 2**frac(s2) is ready), differences
        # (S5), shift amounts (S6), shifts (S7), add (S8)
        mx = Signal(signed(fl_w), init=fl_min)
        par = Signal()
        par4 = Signal()
        # no compare in the one-cycle loop: fl3 > max(mx, previous fl3) is decided from two
        # compares registered a cycle earlier (fl3a is the next fl3)
        # (each compare is the sign of a subtraction: a carry chain straight into the flip-flop)
        gt_m, gt_p = Signal(), Signal()
        d_m, d_p = Signal(signed(fl_w + 1)), Signal(signed(fl_w + 1))
        m.d.comb += [d_m.eq(mx - fl3a), d_p.eq(fl3 - fl3a)]
        m.d.sync += [gt_m.eq(d_m[-1]), gt_p.eq(d_p[-1])]
        with m.If(v3):
            m.d.sync += par.eq(~par)
            with m.If(gt_m & (gt_p | ~v4)):
                m.d.sync += mx.eq(fl3)
        stage(None, (par4, par))
        # with a score in S5 (v4), mx holds its M_j (mx only changes with valid scores)

        mlast = [Signal(signed(fl_w), init=fl_min, name=f"mlast{k}") for k in range(2)]
        a5, last5, par5 = Signal(), Signal(), Signal()
        ev5 = Signal(unsigned(24))
        dr5 = [Signal(signed(fl_w + 1), name=f"dr5_{k}") for k in range(2)]
        dt5 = Signal(signed(fl_w + 1))
        with m.If(v4):
            with m.If(par4):
                m.d.sync += mlast[1].eq(mx)
            with m.Else():
                m.d.sync += mlast[0].eq(mx)
        # after the row's last add (no scores in flight) the same registers and shifters
        # give the final alignment m - L[k] (FIN)
        stage(None, (a5, v4), (last5, last4), (par5, par4), (ev5, ev4), (dt5, mx - fl4),
              *[(dr5[k], mx - mlast[k]) for k in range(2)])

        a6, last6, par6 = Signal(), Signal(), Signal()
        ev6 = Signal(unsigned(24))
        rs6 = [Signal(range(64), name=f"rs6_{k}") for k in range(2)]
        ts6 = Signal(range(32))
        stage(None, (a6, a5), (last6, last5), (par6, par5), (ev6, ev5),
              (ts6, clamp_bits(dt5, 5)), *[(rs6[k], clamp_bits(dr5[k], 6)) for k in range(2)])

        part = [Signal(unsigned(SW), name=f"part{k}") for k in range(2)]
        a7, last7, par7 = Signal(), Signal(), Signal()
        t7 = Signal(unsigned(24))
        # each partial sum has its own shifter (S7) and adder (S8): no selects in the loop
        sh7 = [Signal(unsigned(SW), name=f"sh7_{k}") for k in range(2)]
        stage(None, (a7, a6), (last7, last6), (par7, par6), (t7, shift_right(ev6, ts6, 't7')),
              *[(sh7[k], shift_right(part[k], rs6[k], f"sh7_{k}")) for k in range(2)])
        for k in range(2):
            with m.If(a7 & (par7 == k)):
                m.d.sync += part[k].eq(sh7[k] + t7)
        with m.If(a7 & last7):
            m.d.sync += phase.eq(_FIN1)

        # FIN: combine the partial sums: m - L[k] (dr5, from the last add on), amounts
        # (rs6, FIN1), shifts (sh7, FIN2), add (FIN3); NORM; DIV; HAND(off)
        S = Signal(unsigned(SW))
        with m.If(phase == _FIN1):
            m.d.sync += phase.eq(_FIN2)
        with m.If(phase == _FIN2):
            m.d.sync += phase.eq(_FIN3)
        e_cnt = Signal(range(SW + 1))
        s_add = Signal(unsigned(SW))
        s_load = Signal()
        cnt = Signal(range(max(self.norm_cycles, _DIV_CYCLES) + 1))
        with m.If(phase == _FIN3):
            m.d.sync += [s_add.eq(sh7[0] + sh7[1]), phase.eq(_NORM), cnt.eq(0), e_cnt.eq(0),
                         in_norm.eq(1),
                         s_load.eq(1)]
        rem = Signal(unsigned(_QM + 2))
        recip = Signal(unsigned(_QM + 1))
        m_int = Signal(unsigned(_QM + 1))
        m.d.comb += m_int.eq(S[SW - 1 - _QM:])
        rem2 = Cat(Const(0, 1), rem[:_QM + 1])
        rdiff = Signal(signed(_QM + 3))
        m.d.comb += rdiff.eq(rem2 - m_int)
        sh_min = A.T_FRAC + _QM - fo  # output shift when lead(S) = SUM_FRAC
        c_sh = A.T_FRAC + _QM - A.SUM_FRAC - fo + SW - 1
        with m.If(in_norm):
            with m.If(s_load):  # first NORM cycle: S = the registered sum
                m.d.sync += [S.eq(s_add), s_load.eq(0)]
            with m.Elif(~S[SW - 1]):
                m.d.sync += [S.eq(S << 1), e_cnt.eq(e_cnt + 1)]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == self.norm_cycles):
                m.d.sync += [phase.eq(_DIV), cnt.eq(0), rem.eq(1 << (_QM - 1)), recip.eq(0),
                             in_norm.eq(0), in_div.eq(1),
                             acc_clr.eq(1)]
        # one cycle after NORM (no score in flight): keep the row max, clear the running
        # state for the next row (not at the hand-over: fewer loads on that signal)
        mx_row = Signal(signed(fl_w))
        with m.If(acc_clr):
            m.d.sync += [acc_clr.eq(0), mx_row.eq(mx), mx.eq(fl_min), par.eq(0),
                         part[0].eq(0), part[1].eq(0)]
        # the per-row output shift and half LSB, from e_cnt (final during DIV)
        h_shv = Signal(range(SW + 1))
        h_half = Signal(unsigned(c_sh + 1))
        h_amt = Signal(range(c_sh + 1))
        with m.If(in_div):  # (two register steps; DIV lasts 18 cycles)
            m.d.sync += [h_shv.eq(c_sh - sh_min - e_cnt), h_amt.eq(c_sh - 1 - e_cnt),
                         h_half.eq(Const(1, 1) << h_amt)]
            with m.If(~rdiff[-1]):
                m.d.sync += [rem.eq(rdiff), recip.eq(Cat(Const(1, 1), recip))]
            with m.Else():
                m.d.sync += [rem.eq(rem2), recip.eq(Cat(Const(0, 1), recip))]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == _DIV_CYCLES - 1):
                m.d.sync += [phase.eq(_HAND), in_hand.eq(1), in_div.eq(0)]

        # ================= emit side (advances with en) =================
        e_busy = Signal()
        e_bank = Signal()
        # reads left - 2: loaded with the row length - 2, the sign of its decrement is the
        # next rd_last (no comparator)
        rcnt = Signal(signed(abits + 3))
        rdec = Signal(signed(abits + 3))
        m.d.comb += rdec.eq(rcnt - 1)
        e_recip = Signal(unsigned(_QM + 1))
        e_shv = Signal(range(SW + 1))  # per-row output shift beyond sh_min
        e_half = Signal(unsigned(c_sh + 1))
        e_mx5 = Signal(signed(fl_w + 1))
        rptr = Signal(range(self.max_len + 1))
        rd_active = Signal()
        rd_last = Signal()
        issue = Signal()
        m.d.comb += issue.eq(en & rd_active)
        # row buffer: written on accept, read with en; the read word is registered twice
        # (block-RAM output register, then q_mem) before any logic
        rdata = Signal(signed(W))
        waddr, raddr = Cat(wptr[:abits], wbank), Cat(rptr[:abits], e_bank)
        if ecp5:
            ecp5_dp16kd_sdp(m, "buf", depth=2 << abits, width=W, waddr=waddr,
                            wdata=self.i.payload.data, we=accept, raddr=raddr, rdata=rdata,
                            rce=en)
        else:
            buf = Memory(shape=signed(W), depth=2 << abits, init=[])
            m.submodules.buf = buf
            wr = buf.write_port()
            rd = buf.read_port(domain="sync")
            m.d.comb += [wr.addr.eq(waddr), wr.data.eq(self.i.payload.data), wr.en.eq(accept),
                         rd.addr.eq(raddr), rd.en.eq(en)]
            stage(en, (rdata, rd.data))
        with m.If(issue):
            m.d.sync += [rptr.eq(rptr + 1), rcnt.eq(rdec), rd_last.eq(rdec[-1])]
            with m.If(rd_last):
                m.d.sync += rd_active.eq(0)

        # handoff: the accept side passes the row to the idle emit side and takes a new row
        with m.If(in_hand & ~e_busy):
            m.d.sync += [
                in_hand.eq(0),
                e_busy.eq(1), e_bank.eq(wbank), rcnt.eq(nlen - 2), e_recip.eq(recip),
                e_shv.eq(h_shv), e_half.eq(h_half),
                e_mx5.eq(mx_row + (A.EXP2_FRAC - A.T_FRAC)),
                rptr.eq(0), rd_active.eq(1), rd_last.eq(nlen == 1),
                phase.eq(_ACCEPT), acc_open.eq(1), at_end.eq(0), wbank.eq(~wbank), wptr.eq(0),
            ]

        # R (read issued), Q (block-RAM data register), exp front end
        q_valid, q_last = Signal(), Signal()
        e_valid, e_last = Signal(), Signal()
        o_valid, o_last = Signal(), Signal()
        q_mem = Signal(signed(W), reset_less=True)  # block RAM -> flip-flop only
        stage(en, (e_valid, issue), (e_last, rd_last))
        stage(en, (o_valid, e_valid), (o_last, e_last))
        stage(en, (q_valid, o_valid), (q_last, o_last), (q_mem, rdata))
        w4, wlast4, gl4, gv4, _, gl3, _ = front("emit", en, q_valid, q_last, q_mem)

        # shift amount (E5), term (E6), product (E7), round (E8), scale (E9), saturate (E10)
        b5, blast5 = Signal(), Signal()
        ev_e5 = Signal(unsigned(24))
        st5 = Signal(range(32))
        de4 = Signal(signed(fl_w + 2))  # difference registered beside the last front stage
        stage(en, (de4, e_mx5 - gl3))
        stage(en, (b5, w4), (blast5, wlast4), (ev_e5, gv4), (st5, clamp_bits(de4, 5)))
        b6, blast6 = Signal(), Signal()
        t6 = Signal(unsigned(A.T_FRAC + 1))
        stage(en, (b6, b5), (blast6, blast5), (t6, shift_right(ev_e5, st5, 't6')[:len(t6)]))
        # t * R as t[:17] * R[:17] (2 cycles) plus the top-bit terms and half an LSB,
        # added up beside the multiplier (R = 2**17 only when R[:17] = 0)
        assert len(t6) == 18 and len(e_recip) == 18
        pr7 = mul(en, t6[:17], e_recip[:17], unsigned(34), "pr7")
        b7, blast7 = delay(en, b6, 2, "b7"), delay(en, blast6, 2, "blast7")
        c6 = Signal(unsigned(19))
        stage(en, (c6, Mux(t6[17], e_recip[:17], 0) + Mux(e_recip[17], t6, 0)))
        c7 = Signal(unsigned(19 + 17 + 1))
        stage(en, (c7, (c6 << 17) + e_half))
        b8, blast8 = Signal(), Signal()
        p8 = Signal(unsigned(A.T_FRAC + 1 + _QM + 1 + 1))
        stage(en, (b8, b7), (blast8, blast7), (p8, pr7 + c7))
        b9, blast9 = Signal(), Signal()
        q9 = Signal(unsigned(len(p8)))
        stage(en, (b9, b8), (blast9, blast8), (q9, shift_right(p8[sh_min:], e_shv, 'q9')))
        hi = self.out_fmt.max_int
        ovf = q9[ow - 1:].any() if len(q9) > ow - 1 else Const(0)
        sat = Signal(ow)
        m.d.comb += sat.eq(Mux(ovf, hi, q9[:ow - 1]))
        sk_last, sk_data = Signal(), Signal(ow)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(sk_valid):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(sk_last),
                             self.o.payload.data.eq(sk_data), sk_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.valid.eq(b9), self.o.payload.last.eq(blast9),
                             self.o.payload.data.eq(sat)]
        with m.Elif(~sk_valid):
            m.d.sync += [sk_valid.eq(b9), sk_last.eq(blast9), sk_data.eq(sat)]
        with m.If(self.o.valid & self.o.ready & self.o.payload.last):
            m.d.sync += e_busy.eq(0)
        return m
