"""Helpers shared by the RTL generators: parameter validation, port descriptions, Verilog.

Conventions of every block (see ``describe()``): clock ``clk``, active-high synchronous
reset ``rst``, ``amaranth.lib.stream`` ports ``i`` (in) and ``o`` (out) whose Verilog
signals are ``i__payload``/``i__valid``/``i__ready`` and likewise for ``o``.
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, ClockSignal, Const, Instance, ResetSignal
from amaranth.back import verilog

from einsum.errors import ConfigError, NumericError
from einsum.fixed import QFormat

__all__ = ["check_int", "check_qformat", "stream_port", "to_verilog", "DSP_KINDS",
           "ecp5_mult18x18d"]

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
