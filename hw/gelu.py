"""Pipelined erf-GELU: ``gelu(x) = relu(x) - delta(|x|)`` with a 1288-bit quadratic ROM.

Bit-exact with :func:`einsum.approx.gelu_approx_int` (see its module docstring for the
numerics and error bounds).  Structure (one element per cycle, 9 register stages; each
multiplier stage is ``D`` = 1 cycle with ``dsp="generic"``, 2 with ``dsp="ecp5"``)::

    stage 1  |x| and the sign of x
    stage 1b segment index (ROM address), fine/coarse segment flag, |x| >= 5 flag
    stage 2  a2 ROM read; t = in-segment position (0 for |x| >= 5, so that d = 0 there)
    stage 3  m1 = a2 * t                       (13 x 16 multiplier); a1 ROM read
    stage 4  s1 = a1 + (m1 >> 16); t again
    stage 5  m2 = s1 * t                       (17 x 16 multiplier); a0 ROM read
    stage 6  d = a0 + (m2 >> 16); relu(x) aligned, plus half an LSB
    stage 7  y = relu(x) + half - d  (the rounding shift to the output format is wiring)
    stage 8  saturation to the output format (sign-bit checks) -> ``o.payload``

One carry chain (or one multiplier) per stage, for >= 200 MHz on ECP5. The coefficient
ROM (28 x (17 + 16 + 13) bits) is three ROMs, each read just before its coefficient is
used, so only the 5-bit segment index travels along the pipeline (not the coefficients),
and t is recomputed before each multiplier from the 16 bits of |x| it needs. relu(x) waits
for d in a delay line: registers with ``dsp="generic"``, a 16-word LUT RAM ring with
``dsp="ecp5"`` (one TRELLIS_DPR16X4 per 4 bits instead of 7 flip-flops per bit). For
|x| >= 5 the segment is 0, whose a0 = 0, and t = 0, so d = 0 without a multiplexer after
the adder.

Flow control: the whole pipeline advances when ``en = ~o.valid | o.ready``, and
``i.ready = en``: full throughput while the consumer is ready, no data lost or duplicated
under any valid/ready pattern (``o.valid`` never depends on ``o.ready``).
Latency: an input accepted in cycle ``c`` appears on ``o`` (valid) in cycle ``c + 9``
(``c + 11`` with ``dsp="ecp5"``).
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
        D = 1 if self.dsp == "generic" else 2  # multiplier latency

        def reg(v, name):
            r = Signal.like(v, name=name)
            with m.If(en):
                m.d.sync += r.eq(v)
            return r

        def stages(sigs: dict, n: int, name: str) -> list[dict]:
            """``sigs`` after 1..n register stages (the pipeline's side band)."""
            out = []
            for j in range(n):
                sigs = {k: reg(v, f"{k}_{name}{j}") for k, v in sigs.items()}
                out.append(sigs)
            return out

        def rom(col: int, width: int, addr, name: str):
            """Coefficient ``col`` of segment ``addr``: a ROM read with the pipeline enable
            (its data register holds the word one cycle after the address)."""
            mem = Memory(shape=unsigned(width), depth=A.GELU_SEGMENTS,
                         init=[c[col] & ((1 << width) - 1) for c in A.GELU_COEFFS])
            m.submodules[name] = mem
            rd = mem.read_port(domain="sync")
            m.d.comb += [rd.addr.eq(addr), rd.en.eq(en)]
            return rd.data

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

        def delay_line(sig, n: int, name: str):
            """``sig`` after ``n`` pipeline advances. ECP5 path: a LUT-RAM ring (write and
            read pointers advancing with ``en``) plus one output register instead of ``n``
            registers (``len(sig) * (n - 1)`` flip-flops fewer); generic: registers."""
            if self.dsp != "ecp5" or n < 3:
                return stages({"x": sig}, n, name)[-1]["x"]
            depth = max(16, 1 << (n - 1).bit_length())
            mem = Memory(shape=unsigned(len(sig)), depth=depth, init=[])
            m.submodules[name] = mem
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            wp = Signal(range(depth), name=f"{name}_wp")
            rp = Signal(range(depth), name=f"{name}_rp", init=(1 - n) % depth)
            out = Signal(len(sig), name=f"{name}_q")
            m.d.comb += [wr.addr.eq(wp), wr.data.eq(sig), wr.en.eq(en), rd.addr.eq(rp)]
            with m.If(en):
                # out = the word written n - 1 advances ago (never the one being written)
                m.d.sync += [wp.eq(wp + 1), rp.eq(rp + 1), out.eq(rd.data)]
            return out

        def u18(ax):
            """|x| at 18 fraction bits (truncated): wiring."""
            return ax[fi - uf:] if fi >= uf else Cat(Const(0, uf - fi), ax)

        # stage 1: |x| (width bits, unsigned) and the sign of x
        w = self.in_fmt.width
        (s1,) = stages({"v": self.i.valid, "ax": abs(self.i.payload)[:w],
                        "neg": self.i.payload[-1]}, 1, "s1_")

        # segment index from q = u in units of 1/4 (small-width logic only):
        # fine (u < 2): seg = u*8, coarse (2 <= u < 5): seg = 16 + (q - 8) = q + 8
        u1 = u18(s1["ax"])
        q = u1[uf - 2:]
        fine = Signal()
        big = Signal()
        seg = Signal(range(A.GELU_SEGMENTS))
        assert A.GELU_SPLIT == 2 and A.GELU_UMAX == 5 and A.GELU_COEFFS[0][0] == 0
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

        def t_of(sig, u):
            """In-segment position (16 bits) from the registered low bits ``u`` of |x| (at 18
            fraction bits) and flags; 0 for |x| >= 5, where the segment is 0 and a0 = 0, so
            that d = 0."""
            t = Mux(sig["fine"], Cat(Const(0, 1), u[:uf - 3]), u[:uf - 2])
            return Mux(sig["big"], 0, t)[:tb]

        # stage 1b: segment index and flags registered (the ROM address is a register);
        # from here on only the bits of |x| that t needs travel with them, and relu(x)
        # goes through a delay line to stage 6
        (s1b,) = stages({"v": s1["v"], "seg": seg, "fine": fine, "big": big}, 1, "s1b_")
        if self.dsp == "ecp5":
            ut = stages({"u": u1[:uf - 2]}, 2 + D, "ut")     # stages 1b .. 3
            ut_1b, ut_3 = ut[0]["u"], ut[-1]["u"]
            relu5 = delay_line(Mux(s1["neg"], 0, s1["ax"])[:w - 1], 3 + 2 * D, "relu")
        else:  # registers: |x| itself travels, t's bits are taps of it
            ax = stages({"ax": s1["ax"], "neg": s1["neg"]}, 3 + 2 * D, "ax")
            ut_1b, ut_3 = (u18(ax[j]["ax"])[:uf - 2] for j in (0, 1 + D))
            relu5 = Mux(ax[-1]["neg"], 0, ax[-1]["ax"])
        # stage 2: a2 (ROM data register) and t
        a2 = rom(2, _W2, s1b["seg"], "rom_a2").as_signed()
        t2 = reg(t_of(s1b, ut_1b), "t2")
        (s2,) = stages(s1b, 1, "s2_")

        # stage 3 (D cycles): m1 = a2 * t; a1 read one cycle before the product is ready
        m1 = mul(a2, t2, _W2 + tb + 1, "m1")
        s3 = stages(s2, D, "s3_")
        a1 = rom(1, _W1, ([s2] + s3)[D - 1]["seg"], "rom_a1").as_signed()
        s3 = s3[-1]

        # stage 4: s1 = a1 + (m1 >> 16), t again
        s1_4 = Signal(signed(_W1 + 2), name="s1")
        with m.If(en):
            m.d.sync += s1_4.eq(a1 + m1.shift_right(tb))
        t4 = reg(t_of(s3, ut_3), "t4")
        (s4,) = stages({k: s3[k] for k in ("v", "seg")}, 1, "s4_")

        # stage 5 (D cycles): m2 = s1 * t; a0 read one cycle before the product is ready
        m2 = mul(s1_4, t4, _W1 + 2 + tb + 1, "m2")
        s5 = stages({"v": s4["v"]}, D, "s5_")
        a0 = rom(0, _W0, ([s4] + stages({"seg": s4["seg"]}, D - 1, "seg5_"))[D - 1]["seg"],
                 "rom_a0")
        s5 = s5[-1]

        # stage 6: d = a0 + (m2 >> 16), relu(x) aligned plus half an LSB
        fa = max(fi, cf)
        k = fa - fo  # final right shift (<= 0: left shift)
        half = (1 << (k - 1)) if k > 0 else 0
        v6 = reg(s5["v"], "v6")
        d6 = Signal(signed(_W0 + 2))
        rh6 = Signal(signed(self.in_fmt.width + fa - fi + 2))
        relu = relu5
        with m.If(en):
            m.d.sync += [d6.eq(a0 + m2.shift_right(tb)), rh6.eq((relu << (fa - fi)) + half)]

        # stage 7: y = relu + half - d  (then the rounding shift is wiring)
        v7 = reg(v6, "v7")
        y7 = Signal(signed(len(rh6) + 1))
        with m.If(en):
            m.d.sync += y7.eq(rh6 - (d6 << (fa - cf)))
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
