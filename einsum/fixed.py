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

Fixed-point 1-pass attention (``einsum/library/attention-fixed-1pass.yaml``)
--------------------------------------------------------------------------
The online softmax of FuseMax / FlashAttention on integer codes, in base 2, with the
running max an integer exponent so that every rescale is a shift.  Codes and formats
(defaults of the cascade; ``Qi.f`` is signed, ``UQi.f`` unsigned):

* ``Q``, ``K``, ``V``: ``Q6.10`` (16-bit).  ``QK = sum_e Q K``: ``Q.20`` in a 40-bit
  accumulator (wraps, like the compute unit's).
* ``S = requant(QK, qk_shift, 16, 40)``: the score ``Q K^T * 2**(10 - qk_shift)`` in
  ``Q6.10``, rounded half up, saturated (``qk_shift = 13``: scale 1/8, for E = 64).
* ``T = log2e_fixed(S, 10)``: ``floor(S * L / 2**11)`` with ``L = round(log2(e) * 2**17)
  = 189097``: the base-2 score, 16 fraction bits (24-bit signed for ``Q6.10`` scores);
  ``N = T // 2**16`` its integer part (8-bit signed, ``-47 <= N <= 46``).
* ``LM[p1] = max(p0) N``, ``RM[p1+1] = max(RM[p1], LM[p1])`` from ``RM[0] = rm_init``
  (``-64``: below every ``N``); ``PRM = RM[p1+1] - RM[p1] >= 0`` is the rescale *shift*
  (the factor ``2**-PRM``).
* ``SLN = exp2_fixed(T, RM[p1+1], 15, 16)``: ``2**(T/2**16 - RM)`` in ``UQ1.15`` (16-bit
  unsigned, below 2): ``2**frac(T)`` from the 65-entry interpolated table of
  :func:`einsum.approx.exp2_frac_int` (22 fraction bits), shifted right by
  ``RM - N + 7`` (truncating).
* ``RD[p1+1] = shr(RD[p1], PRM) + sum_p0 SLN`` (``UQ.15``, ``16 + ceil(log2 P)`` bits) and
  ``RNV[p1+1, f] = shr(RNV[p1, f], PRM) + sum_p0 SLN * V`` (``Q.25``, ``32 + ceil(log2 P)``
  bits signed); ``shr`` is :func:`shift_right` (arithmetic, floor; 63 or more gives 0/-1).
* ``AV = div_fixed(RNV[P1], RD[P1], 16)`` (:func:`recip_div_int`): ``RNV / RD`` in ``Q6.10``
  through an 18-bit reciprocal of ``RD``'s mantissa, rounded half up, saturated.

Every value stays below 2**53 for ``P < 2**20``, so the float64 interpreter is exact.

Error bound against float64 softmax attention.  Let ``s_i`` be the exact scaled scores of
one query (``|s_i| < 32``, no saturation), ``Z = sum_i exp(s_i - max s)``, ``Vmax =
max |v|`` (values, not codes), ``P1 = ceil(P / P0)`` chunks.  Each weight before
truncation is ``exp(s_i + e_i)`` up to a common factor with ``|e_i| <= d = 2**-11``
(score rounding) ``+ 2.35e-5`` (``L`` and the floor of ``T``, times ln 2) ``+ 3.0e-5``
(table) ``= 5.42e-4``, which moves the weighted mean by at most ``(exp(2d) - 1) Vmax``.
Truncating each ``SLN`` and each rescale floor loses less than ``2**-15`` of the final
scale per key and per chunk, in the denominator and (times ``v``) the numerator, and the
final denominator is at least ``Z exp(-2d)``, so the ratio moves by at most
``t = 2**-15 (2 P Vmax + P1 (Vmax + 2**-10)) / (Z exp(-2d) - (P + P1) 2**-15)``.  The
division adds ``2**-11`` (rounding) ``+ 2.3e-5 |AV|`` (18-bit mantissa and reciprocal).
In all::

    |AV - softmax(s) V| <= (exp(2d) - 1 + 2.3e-5) Vmax + 1.0001 t + 2**-11 + 2**-27

(``tests/einsum/test_fixed_1pass.py`` checks it on random heads; ``Z >= 1`` always, and
for random scores ``Z`` grows with ``P`` so ``t`` stays small).
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
    "RECIP_MANT_BITS",
    "recip_div_int",
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


RECIP_MANT_BITS = 18  # the divisor's mantissa; the reciprocal is floor(2**34 / mantissa)
_DEN_LIMIT = 1 << 38


def recip_div_int(num: object, den: object, width: int) -> np.ndarray:
    """``num / den`` rounded half up to a signed ``width``-bit integer, through a reciprocal.

    With ``lead = floor(log2 den)`` and ``j = lead - 17``: the mantissa ``M = den >> j``
    (18 bits, a left shift when ``j < 0``), ``R = floor(2**34 / M)`` (17 bits), ``N' = num >> j``
    (floor) and the result ``(N' * R + 2**33) >> 34``, saturated.  ``N'`` is first clamped
    to ``+-2**(width + 18)`` (and ``num`` to ``+-den * 2**width``), which changes no result
    (every such quotient saturates).  Error: ``|q - num/den| <= 1/2 + |num/den| * 3 * 2**-17
    + 2**-17`` before saturation.  ``1 <= den < 2**38``, ``2 <= width <= 24``.
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 2 <= width <= 24:
        raise NumericError(f"recip_div_int: width must be an int in 2..24, got {width!r}")
    n, d = np.broadcast_arrays(as_int_array(num, "numerator"), as_int_array(den, "denominator"))
    if d.size and d.min() < 1:
        raise NumericError("division by a denominator below 1 (a row without keys?)")
    if d.size and d.max() >= _DEN_LIMIT:
        raise NumericError(f"denominator {int(d.max())} does not fit in 38 bits")
    n = np.clip(n, -(d << width), d << width)
    j = (np.frexp(d.astype(np.float64))[1] - 1).astype(np.int64) - (RECIP_MANT_BITS - 1)
    jr, jl = np.maximum(j, 0), np.maximum(-j, 0)
    mant = (d >> jr) << jl
    r = (np.int64(1) << (2 * (RECIP_MANT_BITS - 1))) // mant
    lim = np.int64(1) << (width + 18)
    nn = np.clip((n >> jr) << jl, -lim, lim)
    q = (nn * r + (np.int64(1) << (2 * RECIP_MANT_BITS - 3))) >> (2 * (RECIP_MANT_BITS - 1))
    return np.clip(q, -(1 << (width - 1)), (1 << (width - 1)) - 1)
