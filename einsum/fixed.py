"""Signed fixed-point (Q format) helpers shared by the golden models and the RTL tests.

A :class:`QFormat` ``QFormat(width, frac)`` is a two's-complement signed number of
``width`` bits of which ``frac`` are fraction bits: the integer ``q`` stands for
``q * 2**-frac`` and ``q`` lies in ``[-2**(width-1), 2**(width-1) - 1]``.  Edge-MoE's
activations are ``QFormat(32, 22)`` ("Q10.22").

Everything here is integer arithmetic on ``numpy.int64`` arrays (so ``width <= 64``)
except the float <-> int conversions, and imports only NumPy and :mod:`einsum.errors`.

Rounding modes (``quantize``, :func:`shift_right`):

* ``"nearest_even"`` -- round to nearest, ties to even (IEEE default, ``np.rint``);
* ``"nearest_up"`` -- round to nearest, ties towards +inf (``floor(v + 1/2)``: what an
  RTL "add half an LSB, then shift" does);
* ``"truncate"`` -- floor, i.e. drop the low bits of the two's-complement value (what an
  RTL arithmetic right shift does).  ``"floor"`` is an alias.

Out-of-range results either saturate to the format's limits (``saturate=True``, the
default) or raise :class:`~einsum.errors.NumericError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from einsum.errors import NumericError

ROUNDING_MODES = ("nearest_even", "nearest_up", "truncate", "floor")

__all__ = [
    "QFormat",
    "ROUNDING_MODES",
    "quantize",
    "to_float",
    "saturate",
    "check_range",
    "shift_right",
    "as_int_array",
]


@dataclass(frozen=True)
class QFormat:
    """Signed Q format: ``width`` total bits (2..64), ``frac`` fraction bits (0..width-1).

    >>> QFormat(16, 12).max_float, QFormat(16, 12).lsb
    (7.999755859375, 0.000244140625)
    """

    width: int
    frac: int

    def __post_init__(self) -> None:
        for name in ("width", "frac"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise NumericError(f"QFormat.{name} must be an int, got {v!r}")
        if not 2 <= self.width <= 64:
            raise NumericError(f"QFormat width must be in 2..64, got {self.width}")
        if not 0 <= self.frac <= self.width - 1:
            raise NumericError(
                f"QFormat frac must be in 0..width-1 = 0..{self.width - 1}, got {self.frac}"
            )

    @property
    def int_bits(self) -> int:
        """Integer bits including the sign bit (``width - frac``)."""
        return self.width - self.frac

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_float(self) -> float:
        return self.min_int * self.lsb

    @property
    def max_float(self) -> float:
        return self.max_int * self.lsb

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac}"


def _check_fmt(fmt: object) -> QFormat:
    if not isinstance(fmt, QFormat):
        raise NumericError(f"expected a QFormat, got {fmt!r}")
    return fmt


def _check_rounding(rounding: str) -> str:
    if rounding not in ROUNDING_MODES:
        raise NumericError(f"unknown rounding mode {rounding!r} (one of {', '.join(ROUNDING_MODES)})")
    return rounding


def as_int_array(q: object, name: str = "value") -> np.ndarray:
    """``q`` as an ``int64`` array; floats, NaN and non-integral values raise NumericError."""
    a = np.asarray(q)
    if a.dtype == object:
        try:
            vals = [int(v) for v in a.ravel()]
        except (TypeError, ValueError) as e:
            raise NumericError(f"{name} must hold integers: {e}") from None
        if any(v < -(1 << 63) or v >= (1 << 63) for v in vals):
            raise NumericError(f"{name} does not fit in 64 bits")
        return np.array(vals, dtype=np.int64).reshape(a.shape)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise NumericError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and int(a.max()) >= (1 << 63):
        raise NumericError(f"{name} does not fit in int64")
    return a.astype(np.int64)


def saturate(q: object, fmt: QFormat) -> np.ndarray:
    """Clamp integers to ``[fmt.min_int, fmt.max_int]``."""
    fmt = _check_fmt(fmt)
    return np.clip(as_int_array(q), fmt.min_int, fmt.max_int)


def check_range(q: object, fmt: QFormat, name: str = "value") -> np.ndarray:
    """Return ``q`` as int64, raising NumericError if any element is outside ``fmt``."""
    fmt = _check_fmt(fmt)
    a = as_int_array(q, name)
    if a.size and (a.min() < fmt.min_int or a.max() > fmt.max_int):
        bad = a[(a < fmt.min_int) | (a > fmt.max_int)].ravel()[0]
        raise NumericError(
            f"{name} {int(bad)} is out of range for {fmt} "
            f"(integers {fmt.min_int}..{fmt.max_int})"
        )
    return a


def quantize(
    x: object,
    fmt: QFormat,
    *,
    rounding: str = "nearest_even",
    saturate: bool = True,
) -> np.ndarray:
    """Float(s) -> integer(s) of ``fmt`` (int64 array of the same shape).

    NaN and +-inf raise NumericError (they have no fixed-point meaning).  Values outside
    the representable range saturate, or raise NumericError when ``saturate=False``.
    """
    fmt = _check_fmt(fmt)
    _check_rounding(rounding)
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise NumericError("cannot quantize NaN or infinity")
    v = np.ldexp(a, fmt.frac)
    if rounding == "nearest_even":
        r = np.rint(v)
    elif rounding == "nearest_up":
        r = np.floor(v + 0.5)
    else:
        r = np.floor(v)
    lo, hi = float(fmt.min_int), float(fmt.max_int)
    if not saturate and r.size and (r.min() < lo or r.max() > hi):
        raise NumericError(
            f"value out of range for {fmt} (representable {fmt.min_float}..{fmt.max_float})"
        )
    # float(max_int) may round up to 2**63 for width 64: clip in float, then fix in int.
    r = np.clip(r, lo, hi)
    top = r >= 2.0**63
    out = np.where(top, 0.0, r).astype(np.int64)
    out[top] = np.iinfo(np.int64).max
    return np.clip(out, fmt.min_int, fmt.max_int)


def to_float(q: object, fmt: QFormat) -> np.ndarray:
    """Integer(s) of ``fmt`` -> float64 (exact for width <= 53)."""
    fmt = _check_fmt(fmt)
    a = check_range(q, fmt)
    return np.ldexp(a.astype(np.float64), -fmt.frac)


def shift_right(q: object, n: object, rounding: str = "truncate") -> np.ndarray:
    """Integer ``q * 2**-n`` rounded back to an integer (``n >= 0``, elementwise).

    ``truncate``/``floor`` is the arithmetic right shift; ``nearest_up`` adds half an LSB
    first; ``nearest_even`` breaks ties to even.  Shifts of 63 or more give the limit
    (0 or -1 for truncation).  Inputs must leave headroom for the added half LSB.
    """
    _check_rounding(rounding)
    a = as_int_array(q)
    s = as_int_array(n, "shift")
    if s.size and s.min() < 0:
        raise NumericError("shift_right needs non-negative shift amounts")
    s = np.minimum(s, 63)
    if rounding in ("truncate", "floor"):
        return a >> s
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    up = (a + half) >> s
    if rounding == "nearest_up":
        return up
    # ties to even: a tie is when the dropped bits are exactly one half
    mask = np.left_shift(np.int64(1), s) - 1
    tie = (s > 0) & ((a & mask) == half)
    return np.where(tie & (up & 1).astype(bool), up - 1, up)
