"""Helpers shared by the RTL generators: parameter validation, port descriptions, Verilog.

Conventions of every block (see ``describe()``): clock ``clk``, active-high synchronous
reset ``rst``, ``amaranth.lib.stream`` ports ``i`` (in) and ``o`` (out) whose Verilog
signals are ``i__payload``/``i__valid``/``i__ready`` and likewise for ``o``.
"""

from __future__ import annotations

from typing import Any

from amaranth.back import verilog

from einsum.errors import ConfigError, NumericError
from einsum.fixed import QFormat

__all__ = ["check_int", "check_qformat", "stream_port", "to_verilog"]


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
