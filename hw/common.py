"""Helpers shared by the RTL generators: parameter validation, port descriptions, Verilog.

Conventions of every block (see ``describe()``): clock ``clk``, active-high synchronous
reset ``rst``, ``amaranth.lib.stream`` ports ``i`` (in) and ``o`` (out) whose Verilog
signals are ``i__payload``/``i__valid``/``i__ready`` and likewise for ``o``.
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, ClockSignal, Const, Instance, Mux, ResetSignal, Signal
from amaranth.back import verilog

from einsum.errors import ConfigError, NumericError
from einsum.fixed import QFormat

__all__ = ["check_int", "check_qformat", "stream_port", "to_verilog", "DSP_KINDS",
           "ecp5_mult18x18d", "ecp5_dp16kd_sdp", "ecp5_mux8"]

#: ``dsp`` parameter values: "generic" (``a * b`` into a register, 1 cycle) or "ecp5" (a
#: Lattice MULT18X18D with input and output registers, 2 cycles, >= 200 MHz on ECP5: yosys
#: does not pack registers into ECP5 DSPs, so the generic product is combinational there)
DSP_KINDS = ("generic", "ecp5")


def check_int(owner: str, name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` must be an int in ``[lo, hi]``; otherwise ConfigError naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}: {name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{owner}: {name} must be in {lo}..{hi}, got {value}")
    return value


def check_qformat(owner: str, prefix: str, width: Any, frac: Any, max_width: int) -> QFormat:
    """Validated :class:`QFormat` from ``width``/``frac`` params (ConfigError on failure)."""
    check_int(owner, f"{prefix}width", width, 2, max_width)
    check_int(owner, f"{prefix}frac_bits", frac, 0, width - 1)
    try:
        return QFormat(width, frac)
    except NumericError as e:  # pragma: no cover - ranges checked above
        raise ConfigError(f"{owner}: {e}") from None


def stream_port(name: str, fmt: QFormat, **extra: Any) -> dict:
    """The JSON description of stream port ``name`` carrying ``fmt`` numbers."""
    d = {
        "payload": f"{name}__payload",
        "valid": f"{name}__valid",
        "ready": f"{name}__ready",
        "width": fmt.width,
        "frac_bits": fmt.frac,
        "signed": True,
    }
    d.update(extra)
    return d


def to_verilog(component, name: str) -> str:
    """Verilog text of ``component`` (a ``wiring.Component``) with top module ``name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"invalid Verilog module name {name!r}")
    return verilog.convert(component, name=name, emit_src=False)


def ecp5_mult18x18d(a, b, p36, *, ce):
    """Lattice ECP5 ``MULT18X18D``: signed 18 x 18 product ``p36`` of ``a`` and ``b``
    (sign-extended if narrower; pass unsigned operands of at most 17 bits), with the A/B
    input registers and the output register on CLK0, clock enable ``ce`` (CE0) and the
    synchronous reset (RST0): the product appears 2 cycles (of ``ce``) after its operands."""
    def sext18(v):
        if len(v) > 18:
            raise ConfigError(f"MULT18X18D operand wider than 18 bits ({len(v)})")
        pad = v[-1] if v.shape().signed else Const(0, 1)
        return Cat(v, *([pad] * (18 - len(v))))

    a18, b18 = sext18(a), sext18(b)
    ports = {f"i_A{j}": a18[j] for j in range(18)}
    ports.update({f"i_B{j}": b18[j] for j in range(18)})
    ports.update({f"o_P{j}": p36[j] for j in range(36)})
    return Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
        p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE",
        i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0), i_SOURCEB=Const(0),
        i_CLK0=ClockSignal(), i_CLK1=Const(0), i_CLK2=Const(0), i_CLK3=Const(0),
        i_CE0=ce, i_CE1=Const(0), i_CE2=Const(0), i_CE3=Const(0),
        i_RST0=ResetSignal(), i_RST1=Const(0), i_RST2=Const(0), i_RST3=Const(0),
        **ports,
    )


#: DP16KD data-width modes: (bits per word, words, lowest used address bit)
_DP16KD_MODES = ((18, 1024, 4), (9, 2048, 3), (4, 4096, 2), (2, 8192, 1), (1, 16384, 0))


def ecp5_dp16kd_sdp(m, name, *, depth, width, waddr, wdata, we, raddr, rdata, rce):
    """A ``depth`` x ``width`` simple-dual-port RAM of Lattice ECP5 ``DP16KD`` blocks added to
    module ``m``: port A writes ``wdata`` at ``waddr`` when ``we``, port B reads ``raddr``
    with the block's output register (``REGMODE_B = "OUTREG"``): ``rdata`` holds the word
    2 cycles (of ``rce``, the read clock enable of both the address and the output register)
    after its address.  Reading the address being written gives an undefined word.  Words
    of one block: 1024 x 18, 2048 x 9, 4096 x 4, 8192 x 2 or 16384 x 1 (the narrowest mode
    that holds ``depth``); deeper RAMs stack blocks of 16384 x 1 and select the output
    (delayed block index, a multiplexer after the output registers)."""
    bits, words, lo = next((md for md in _DP16KD_MODES if md[1] >= depth), _DP16KD_MODES[-1])
    abits = max(1, (depth - 1).bit_length())
    nrows = -(-depth // words)
    ncols = -(-width // bits)
    ab = min(abits, 14 - lo)
    outs = []
    for r in range(nrows):
        row_out = []
        sel_w = (waddr[ab:] == r) if nrows > 1 else Const(1)
        for c in range(ncols):
            dout = Signal(18, name=f"{name}_r{r}c{c}_do")
            din = wdata[c * bits:(c + 1) * bits]
            ports = {}
            for j in range(14):
                k = j - lo
                ports[f"i_ADA{j}"] = waddr[k] if 0 <= k < ab else Const(int(bits == 18 and j < 2))
                ports[f"i_ADB{j}"] = raddr[k] if 0 <= k < ab else Const(0)
            for j in range(18):
                ports[f"i_DIA{j}"] = din[j] if j < len(din) else Const(0)
                ports[f"i_DIB{j}"] = Const(0)
                ports[f"o_DOB{j}"] = dout[j]
            m.submodules[f"{name}_r{r}c{c}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal(), i_CEA=Const(1), i_OCEA=Const(1), i_WEA=we & sel_w,
                i_RSTA=Const(0), i_CSA0=Const(0), i_CSA1=Const(0), i_CSA2=Const(0),
                i_CLKB=ClockSignal(), i_CEB=rce, i_OCEB=rce, i_WEB=Const(0),
                i_RSTB=Const(0), i_CSB0=Const(0), i_CSB1=Const(0), i_CSB2=Const(0),
                **ports,
            )
            row_out.append(dout[:bits])
        outs.append(Cat(*row_out)[:width])
    if nrows == 1:
        m.d.comb += rdata.eq(outs[0])
        return
    # block index of the word in the output registers: the read address, delayed 2 cycles
    sel = raddr[ab:abits]
    for j in range(2):
        nxt = Signal(len(sel), name=f"{name}_rsel{j}")
        with m.If(rce):
            m.d.sync += nxt.eq(sel)
        sel = nxt
    val = outs[-1]
    for r in reversed(range(nrows - 1)):
        val = Mux(sel == r, outs[r], val)
    m.d.comb += rdata.eq(val)


#: LUT4 INIT of ``Z = C ? B : A``
_LUT4_MUX2 = sum(1 << i for i in range(16) if ((i >> 1) & 1 if (i >> 2) & 1 else i & 1))


def ecp5_mux8(m, name, d, sel):
    """8:1 multiplexer ``d[sel]`` (``d``: 8 one-bit values, ``sel``: 3 bits) as one ECP5
    wide-function multiplexer: 4 ``LUT4`` (2:1 by ``sel[0]``), 2 ``PFUMX`` (``sel[1]``) and an
    ``L6MUX21`` (``sel[2]``) -- one slice pair, where LUT mapping needs two LUT levels.
    The instances are added to module ``m``; returns the output signal."""
    if len(d) != 8 or len(sel) != 3:
        raise ConfigError("ecp5_mux8 needs 8 inputs and a 3-bit select")
    luts = []
    for k in range(4):
        z = Signal(name=f"{name}_l{k}")
        m.submodules[f"{name}_l{k}"] = Instance(
            "LUT4", p_INIT=Const(_LUT4_MUX2, 16),
            i_A=d[2 * k], i_B=d[2 * k + 1], i_C=sel[0], i_D=Const(0), o_Z=z)
        luts.append(z)
    pf = []
    for j in range(2):
        z = Signal(name=f"{name}_p{j}")
        m.submodules[f"{name}_p{j}"] = Instance(
            "PFUMX", i_ALUT=luts[2 * j + 1], i_BLUT=luts[2 * j], i_C0=sel[1], o_Z=z)
        pf.append(z)
    out = Signal(name=f"{name}_z")
    m.submodules[f"{name}_m"] = Instance("L6MUX21", i_D0=pf[0], i_D1=pf[1], i_SD=sel[2], o_Z=out)
    return out
