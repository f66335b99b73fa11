"""Pipelined erf-GELU: ``gelu(x) = relu(x) - delta(|x|)`` with a 1288-bit quadratic ROM.

Bit-exact with :func:`einsum.approx.gelu_approx_int` (see its module docstring for the
numerics and error bounds).  Structure (one element per cycle, 9 register stages)::

    stage 1  x, u = |x| at 18 fraction bits (truncated)
    stage 1b segment index (ROM address), t = in-segment position, |x| >= 5 flag
    stage 2  ROM (28 x 46 bits: a0 u17, a1 s16, a2 s13) read
    stage 3  m1 = a2 * t                       (13 x 16 multiplier)
    stage 4  s1 = a1 + (m1 >> 16)
    stage 5  m2 = s1 * t                       (17 x 16 multiplier)
    stage 6  d = a0 + (m2 >> 16) (0 for |x| >= 5); relu(x) aligned, plus half an LSB
    stage 7  y = relu(x) + half - d  (the rounding shift to the output format is wiring)
    stage 8  saturation to the output format (sign-bit checks) -> ``o.payload``

One carry chain (or one multiplier) per stage, for >= 200 MHz on ECP5.

Flow control: the whole pipeline advances when ``en = ~o.valid | o.ready``, and
``i.ready = en``: full throughput while the consumer is ready, no data lost or duplicated
under any valid/ready pattern (``o.valid`` never depends on ``o.ready``).
Latency: an input accepted in cycle ``c`` appears on ``o`` (valid) in cycle ``c + 9`` (``c + 11`` with ``dsp="ecp5"``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum import approx as A
from einsum.errors import ConfigError
from hw.common import DSP_KINDS, check_qformat, ecp5_mult18x18d, stream_port, to_verilog

__all__ = ["Gelu", "to_verilog"]

_W0, _W1, _W2 = A.GELU_COEFF_WIDTHS


def _pack(a0: int, a1: int, a2: int) -> int:
    return a0 | ((a1 & ((1 << _W1) - 1)) << _W0) | ((a2 & ((1 << _W2) - 1)) << (_W0 + _W1))


class Gelu(wiring.Component):
    """Streaming erf-GELU.

    Parameters (keyword-only)
    -------------------------
    width, frac_bits:          input Q format (default 18, 14 = Q4.14; width 4..40)
    out_width, out_frac_bits:  output Q format (default: same as the input)
    dsp:                       "generic" (``*`` into a register; latency 9) or "ecp5" (Lattice
                               MULT18X18D instances with input/output registers, latency 11;
                               simulate with a MULT18X18D model)

    Ports: ``i`` = ``In(stream.Signature(signed(width)))``,
    ``o`` = ``Out(stream.Signature(signed(out_width)))``.
    """

    LATENCY = 9
    ROM_BITS = A.GELU_ROM_BITS

    def __init__(
        self,
        *,
        width: int = 18,
        frac_bits: int = 14,
        out_width: int | None = None,
        out_frac_bits: int | None = None,
        dsp: str = "generic",
    ) -> None:
        self.in_fmt = check_qformat("Gelu", "", width, frac_bits, A.MAX_MODEL_WIDTH)
        if width < 4:
            raise ValueError(f"Gelu: width must be >= 4, got {width}")
        out_width = width if out_width is None else out_width
        out_frac_bits = frac_bits if out_frac_bits is None else out_frac_bits
        self.out_fmt = check_qformat("Gelu", "out_", out_width, out_frac_bits, A.MAX_MODEL_WIDTH)
        if dsp not in DSP_KINDS:
            raise ConfigError(f"Gelu: dsp must be one of {', '.join(DSP_KINDS)}, got {dsp!r}")
        self.dsp = dsp
        # each registered ECP5 multiplier takes one cycle more than the generic one
        self.latency = self.LATENCY + (2 if dsp == "ecp5" else 0)
        super().__init__({
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(signed(out_width))),
        })

    # -- description ---------------------------------------------------------------
    def params(self) -> dict:
        return {
            "width": self.in_fmt.width,
            "frac_bits": self.in_fmt.frac,
            "out_width": self.out_fmt.width,
            "out_frac_bits": self.out_fmt.frac,
            "dsp": self.dsp,
        }

    def describe(self) -> dict:
        """Ports, latency and parameters (the JSON written beside the Verilog)."""
        return {
            "top": "gelu",
            "clock": "clk",
            "reset": "rst",
            "ports": {"i": stream_port("i", self.in_fmt), "o": stream_port("o", self.out_fmt)},
            "latency": self.latency,
            "params": self.params(),
            "rom_bits": self.ROM_BITS,
            "throughput": "1 element/cycle",
            "golden": "einsum.approx.gelu_approx_int",
        }

    def model(self, x):
        """Golden integer model for this instance's formats."""
        return A.gelu_approx_int(x, self.in_fmt, self.out_fmt)

    # -- hardware ------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        fi, fo = self.in_fmt.frac, self.out_fmt.frac
        uf, cf, tb = A.GELU_UFRAC, A.GELU_CFRAC, 16
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        # ROM: a memory with a synchronous read port (enable = pipeline advance)
        rom = Memory(shape=unsigned(_W0 + _W1 + _W2), depth=A.GELU_SEGMENTS,
                     init=[_pack(*c) for c in A.GELU_COEFFS])
        m.submodules.rom = rom
        rd = rom.read_port(domain="sync")
        rom_addr = rd.addr
        rom_data = rd.data
        m.d.comb += rd.en.eq(en)

        # stage 1: |x| at 18 fraction bits
        v1, x1 = Signal(), Signal(signed(self.in_fmt.width))
        uw = self.in_fmt.width + max(0, uf - fi)
        u1 = Signal(unsigned(uw))
        ax = abs(self.i.payload)
        u_in = ax[fi - uf:] if fi >= uf else Cat(Const(0, uf - fi), ax)
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), x1.eq(self.i.payload), u1.eq(u_in)]

        # segment index from q = u in units of 1/4 (small-width logic only):
        # fine (u < 2): seg = u*8, coarse (2 <= u < 5): seg = 16 + (q - 8) = q + 8
        q = u1[uf - 2:]
        fine = Signal()
        big = Signal()
        seg = Signal(range(A.GELU_SEGMENTS))
        t = Signal(unsigned(tb))
        assert A.GELU_SPLIT == 2 and A.GELU_UMAX == 5
        m.d.comb += [
            fine.eq(~q[3:].any()),
            # q >= 20 as an OR of the high bits plus a 5-bit compare (no wide comparator)
            big.eq((q[5:].any() if len(q) > 5 else 0) | (q[:5] >= 4 * A.GELU_UMAX)),
        ]
        with m.If(big):
            m.d.comb += seg.eq(0)
        with m.Elif(fine):
            m.d.comb += seg.eq(u1[uf - 3:uf + 1])
        with m.Else():
            m.d.comb += seg.eq(q[:5] + 8)
        m.d.comb += t.eq(Mux(fine, Cat(Const(0, 1), u1[:uf - 3]), u1[:uf - 2]))

        # stage 1b: segment index registered (the ROM logic reads a register)
        v1b, x1b, t1b, big1b = Signal(), Signal.like(x1), Signal.like(t), Signal()
        seg1b = Signal.like(seg)
        with m.If(en):
            m.d.sync += [v1b.eq(v1), x1b.eq(x1), t1b.eq(t), big1b.eq(big), seg1b.eq(seg)]
        m.d.comb += rom_addr.eq(seg1b)

        # stage 2: ROM data valid
        v2, x2, t2, big2 = Signal(), Signal.like(x1), Signal.like(t), Signal()
        with m.If(en):
            m.d.sync += [v2.eq(v1b), x2.eq(x1b), t2.eq(t1b), big2.eq(big1b)]
        a0 = rom_data[:_W0]
        a1 = rom_data[_W0:_W0 + _W1].as_signed()
        a2 = rom_data[_W0 + _W1:].as_signed()

        D = 1 if self.dsp == "generic" else 2  # multiplier latency

        def delay(sig, n, name):
            for j in range(n):
                nxt = Signal.like(sig, name=f"{name}_d{j}")
                with m.If(en):
                    m.d.sync += nxt.eq(sig)
                sig = nxt
            return sig

        def mul(a, b, width, name):
            p = Signal(signed(width), name=name)
            if self.dsp == "generic":
                with m.If(en):
                    m.d.sync += p.eq(a * b)
            else:
                p36 = Signal(36, name=f"{name}_p36")
                m.submodules[f"{name}_dsp"] = ecp5_mult18x18d(a, b, p36, ce=en)
                m.d.comb += p.eq(p36[:width])
            return p

        # stage 3 (+1 with ECP5 DSPs): m1 = a2 * t
        m1 = mul(a2, t2, _W2 + tb + 1, "m1")
        v3, x3, t3, big3 = (delay(v2, D, "v3"), delay(x2, D, "x3"), delay(t2, D, "t3"),
                            delay(big2, D, "big3"))
        a0_3, a1_3 = delay(a0, D, "a0_3"), delay(a1, D, "a1_3")

        # stage 4: s1 = a1 + (m1 >> 16)
        v4, x4, t4, big4 = Signal(), Signal.like(x1), Signal.like(t), Signal()
        a0_4 = Signal(unsigned(_W0))
        s1 = Signal(signed(_W1 + 2))
        with m.If(en):
            m.d.sync += [v4.eq(v3), x4.eq(x3), t4.eq(t3), big4.eq(big3), a0_4.eq(a0_3),
                         s1.eq(a1_3 + m1.shift_right(tb))]

        # stage 5 (+1 with ECP5 DSPs): m2 = s1 * t
        m2 = mul(s1, t4, _W1 + 2 + tb + 1, "m2")
        v5, x5, big5 = delay(v4, D, "v5"), delay(x4, D, "x5"), delay(big4, D, "big5")
        a0_5 = delay(a0_4, D, "a0_5")

        # stage 6: d = a0 + (m2 >> 16) (0 beyond the cut), relu(x) aligned plus half an LSB
        fa = max(fi, cf)
        k = fa - fo  # final right shift (<= 0: left shift)
        half = (1 << (k - 1)) if k > 0 else 0
        v6 = Signal()
        d6 = Signal(signed(_W0 + 2))
        rh6 = Signal(signed(self.in_fmt.width + fa - fi + 2))
        relu = Mux(x5[-1], 0, x5)
        with m.If(en):
            m.d.sync += [v6.eq(v5), d6.eq(Mux(big5, 0, a0_5 + m2.shift_right(tb))),
                         rh6.eq((relu << (fa - fi)) + half)]

        # stage 7: y = relu + half - d  (then the rounding shift is wiring)
        v7 = Signal()
        y7 = Signal(signed(len(rh6) + 1))
        with m.If(en):
            m.d.sync += [v7.eq(v6), y7.eq(rh6 - (d6 << (fa - cf)))]
        r = y7.shift_right(k) if k > 0 else (y7 << -k)

        # stage 8: saturate (overflow iff the bits above the output sign bit differ from it)
        ow = self.out_fmt.width
        lo, hi = self.out_fmt.min_int, self.out_fmt.max_int
        if len(r) > ow:
            top = r[ow - 1:]
            ovf_hi = ~r[-1] & top.any()
            ovf_lo = r[-1] & ~top.all()
            sat = Mux(ovf_hi, hi, Mux(ovf_lo, lo, r[:ow]))
        else:
            sat = r
        with m.If(en):
            m.d.sync += [self.o.valid.eq(v7), self.o.payload.eq(sat)]
        return m
