"""Bit-exact golden models of the hardware nonlinear units: exp, GELU and softmax.

Each operator has an integer function (``*_int``: integers of a :class:`QFormat` in,
integers out) that mirrors the RTL in ``hw/`` bit for bit, and a float wrapper
(``exp_approx``, ``gelu_approx``, ``softmax_approx``: ``f(x: np.ndarray) -> np.ndarray``)
that quantizes (round to nearest even, saturating), runs the integer model and converts
back -- usable as an Einsum map operator.  Only NumPy and :mod:`einsum.errors` are used.

Shared base-2 exponential
-------------------------
``exp(x) = 2**(x*log2 e)``.  ``x*log2 e`` is formed as ``s2 = (x * L) >> (f_in + 17 - 16)``
with ``L = round(log2(e) * 2**17) = 189097`` (18 bits) so ``s2`` has :data:`S2_FRAC` = 16
fraction bits (floor).  ``s2 = n + f`` with integer ``n = s2 >> 16`` and ``f`` in [0, 1);
``2**f`` is linearly interpolated in a 65-entry table ``round(2**(k/64) * 2**22)``
(:data:`EXP2_TABLE`, 24-bit entries) using the top 6 bits of ``f`` as index and the low 10
bits as interpolation weight (result ``v`` has :data:`EXP2_FRAC` = 22 fraction bits);
``2**n`` is a shift.  Relative error of ``2**f``: <= 3.0e-5 (interpolation 2.9e-5 plus
rounding); of ``exp`` at a representable input: <= 4e-5 + |x| * 2.7e-6 (the last term from
the 18-bit ``L``) before output rounding.  Same decomposition as Softermax (Stevens et al.,
DAC 2021) and I-BERT's shift-based exp (Kim et al., ICML 2021), but with a table
instead of I-BERT's quadratic (I-BERT: relative error 3.3e-3).

GELU
----
Exact (erf) GELU written as ``gelu(x) = relu(x) - delta(|x|)``, ``delta(u) = u*Phi(-u)``,
as in Edge-MoE (Sarkar et al., ICCAD 2023).  Edge-MoE stores ``delta`` in a 177 x 22-bit
ROM (3894 bits, step 1/32, linear interpolation, max abs error 9.74e-5 on [-8, 8]).
Here ``delta`` is piecewise quadratic on non-uniform segments: 16 segments of 1/8 on
[0, 2), 12 segments of 1/4 on [2, 5), ``delta = 0`` for ``u >= 5``.  Each segment stores
near-minimax coefficients ``(a0, a1, a2)`` at 19 fraction bits (17 + 16 + 13 bits =
46 bits per segment, **1288 ROM bits**, 33 % of Edge-MoE's) evaluated by Horner with the
in-segment position ``t`` (16 fraction bits of a segment):
``d = a0 + (((a1 + ((a2*t) >> 16)) * t) >> 16)``.  ``|x|`` is first brought to
:data:`GELU_UFRAC` = 18 fraction bits (truncating).  ``delta`` approximation error
<= 1.2e-5 everywhere; the whole operator's error at representable inputs is that plus
half an output LSB (plus ~2**-18 * 0.5 when the input has more than 18 fraction bits).
With the default ``Q4.14`` in/out format (18-bit, matching an 18x18 multiplier):
max abs error 4.2e-5 on the input grid of [-8, 8), and <= 1e-4 for float inputs
including input quantization (measured in tests/einsum/test_approx.py).

Softmax (single pass, base 2)
-----------------------------
One pass over the scores keeps an integer running max ``m`` of ``n_i = floor(s2_i)`` and
a running sum (:data:`SUM_FRAC` = 22 fraction bits) of ``2**(s2_i - m)``: when the max
grows the sum is rescaled by a right shift, as in Softermax, instead of Edge-MoE's
``sum * exp(d)`` multiply.  The sum is kept as two partial sums (even/odd positions, see
:func:`softmax_state_int`) so the RTL's shift-then-add recurrence has two pipeline stages.  The scores are
buffered, and after the row ``S`` (``1 <= S < 2n``) is normalised to ``M`` in [1, 2)
(top 18 bits ``M_int``, truncated) and ``R = floor(2**34 / M_int)`` is computed exactly
(an 18-step restoring division in RTL, replacing a LUT + Newton step: same role, no
multiplier, exact).  Second pass: ``t_i = v_i >> (m - n_i + 5)`` (17 fraction bits) and
``p_i = round_half_up(t_i * R / 2**sh)``, ``sh = 17 + 17 - 22 - f_out + lead(S)`` where
``lead(S)`` is the index of the leading one of ``S``, saturated to the output format.
With default ``Q6.10`` scores and ``Q2.14`` probabilities the max abs error per probability
against float64 softmax is < 2**-11 for rows of length 1..1024 with scores in [-16, 16]
(see the tests; worst-case analysis: input quantization <= 2**-12, output rounding
2**-15, sum truncation <= n * 2**-22 relative, exp 3e-5 relative).
"""

from __future__ import annotations

import math

import numpy as np

from einsum.errors import NumericError
from einsum.fixed import QFormat, as_int_array, check_range, quantize, to_float

__all__ = [
    "LOG2E_BITS",
    "LOG2E_INT",
    "S2_FRAC",
    "EXP2_INDEX_BITS",
    "EXP2_INTERP_BITS",
    "EXP2_FRAC",
    "EXP2_TABLE",
    "SUM_FRAC",
    "T_FRAC",
    "RECIP_BITS",
    "GELU_UFRAC",
    "GELU_CFRAC",
    "GELU_SEGMENTS",
    "GELU_COEFFS",
    "GELU_COEFF_WIDTHS",
    "GELU_ROM_BITS",
    "GELU_UMAX",
    "EXP_IN_FMT",
    "EXP_OUT_FMT",
    "GELU_FMT",
    "SOFTMAX_IN_FMT",
    "SOFTMAX_OUT_FMT",
    "MAX_MODEL_WIDTH",
    "log2e_scale_int",
    "exp2_frac_int",
    "exp2_split_int",
    "exp2_shift_int",
    "exp_approx_int",
    "exp_approx",
    "gelu_delta_int",
    "gelu_approx_int",
    "gelu_approx",
    "softmax_state_int",
    "softmax_recip_int",
    "softmax_approx_int",
    "softmax_approx",
    "gelu_exact",
]

# ----------------------------------------------------------------------------- constants
MAX_MODEL_WIDTH = 40  # products such as x * L must fit in int64

LOG2E_BITS = 17
LOG2E_INT = round(math.log2(math.e) * (1 << LOG2E_BITS))  # 189097, 18 bits
S2_FRAC = 16  # fraction bits of s2 = x*log2(e)
EXP2_INDEX_BITS = 6  # 64 table intervals
EXP2_INTERP_BITS = S2_FRAC - EXP2_INDEX_BITS  # 10
EXP2_FRAC = 22  # fraction bits of v = 2**f in [1, 2)
EXP2_TABLE: tuple[int, ...] = tuple(
    int(math.floor(2.0 ** (k / (1 << EXP2_INDEX_BITS)) * (1 << EXP2_FRAC) + 0.5))
    for k in range((1 << EXP2_INDEX_BITS) + 1)
)

SUM_FRAC = 22  # running sum fraction bits (== EXP2_FRAC: terms add without a shift)
T_FRAC = 17  # fraction bits of the rescaled exp term fed to the output multiplier
RECIP_BITS = 17  # M_int has RECIP_BITS + 1 bits, R = floor(2**(2*RECIP_BITS) / M_int)

GELU_UFRAC = 18  # |x| is brought to this many fraction bits
GELU_CFRAC = 19  # coefficient fraction bits
GELU_TBITS = 16  # in-segment position bits
GELU_SPLIT = 2  # fine segments (1/8) below, coarse (1/4) from here
GELU_UMAX = 5  # delta(u) = 0 for u >= GELU_UMAX
# (a0, a1, a2) per segment: delta(start + t*h) ~ (a0 + a1 t + a2 t^2) * 2**-19, t in [0,1)
# Fitted by least squares on 400 Chebyshev nodes per segment, rounded (see docstring).
GELU_COEFFS: tuple[tuple[int, int, int], ...] = (
    (0, 32761, -3253),
    (29510, 26240, -3153),
    (52601, 19921, -2959),
    (69569, 13993, -2684),
    (80885, 8617, -2348),
    (87162, 3917, -1970),
    (89118, -24, -1574),
    (87528, -3170, -1181),
    (83185, -5527, -810),
    (76854, -7141, -477),
    (69241, -8088, -193),
    (60965, -8465, 37),
    (52541, -8382, 212),
    (44373, -7952, 333),
    (36755, -7280, 405),
    (29881, -6464, 438),
    (23854, -11144, 1713),
    (14417, -7690, 1416),
    (8135, -4855, 1020),
    (4293, -2825, 659),
    (2121, -1522, 387),
    (982, -761, 208),
    (426, -355, 103),
    (173, -154, 47),
    (66, -62, 20),
    (24, -24, 8),
    (8, -8, 3),
    (3, -3, 1),
)
GELU_SEGMENTS = len(GELU_COEFFS)
# ROM column widths: a0 unsigned 17, a1 signed 16, a2 signed 13
GELU_COEFF_WIDTHS = (17, 16, 13)
GELU_ROM_BITS = GELU_SEGMENTS * sum(GELU_COEFF_WIDTHS)  # 1288
_GELU_NFINE = GELU_SPLIT * 8

EXP_IN_FMT = QFormat(24, 16)
EXP_OUT_FMT = QFormat(32, 16)
GELU_FMT = QFormat(18, 14)
SOFTMAX_IN_FMT = QFormat(16, 10)
SOFTMAX_OUT_FMT = QFormat(16, 14)


def _check_model_fmt(fmt: object, what: str, max_frac: int | None = None) -> QFormat:
    if not isinstance(fmt, QFormat):
        raise NumericError(f"{what} must be a QFormat, got {fmt!r}")
    if fmt.width > MAX_MODEL_WIDTH:
        raise NumericError(f"{what} width {fmt.width} exceeds {MAX_MODEL_WIDTH} bits")
    if max_frac is not None and fmt.frac > max_frac:
        raise NumericError(f"{what} {fmt} has more than {max_frac} fraction bits")
    return fmt


def _round_shift(v: np.ndarray, sh: np.ndarray | int) -> np.ndarray:
    """``v * 2**-sh`` rounded half up for sh > 0, exact left shift for sh <= 0."""
    sh = np.asarray(sh, dtype=np.int64)
    pos = np.clip(sh, 1, 62)
    half = np.left_shift(np.int64(1), pos - 1)
    right = (v + half) >> pos
    left = np.left_shift(v, np.clip(-sh, 0, 62))
    return np.where(sh > 0, right, left)


# ----------------------------------------------------------------------------- exp
def log2e_scale_int(x: object, in_frac: int) -> np.ndarray:
    """``s2 = floor(x * L * 2**(16 - in_frac - 17))``: x*log2(e) with 16 fraction bits."""
    x = as_int_array(x, "x")
    return (x * LOG2E_INT) >> (in_frac + LOG2E_BITS - S2_FRAC)


def exp2_frac_int(f: object) -> np.ndarray:
    """``2**(f/2**16)`` for ``0 <= f < 2**16``, 22 fraction bits (value in [2**22, 2**23))."""
    f = as_int_array(f, "f")
    if f.size and (f.min() < 0 or f.max() >= (1 << S2_FRAC)):
        raise NumericError("exp2_frac_int: f must be in [0, 2**16)")
    tab = np.asarray(EXP2_TABLE, dtype=np.int64)
    k = f >> EXP2_INTERP_BITS
    r = f & ((1 << EXP2_INTERP_BITS) - 1)
    y0 = tab[k]
    dy = tab[k + 1] - y0
    return y0 + ((dy * r) >> EXP2_INTERP_BITS)


def exp2_split_int(x: object, in_frac: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, v)`` with ``exp(x * 2**-in_frac) ~= v * 2**(n - 22)``, ``v`` in [2**22, 2**23)."""
    s2 = log2e_scale_int(x, in_frac)
    n = s2 >> S2_FRAC
    v = exp2_frac_int(s2 & ((1 << S2_FRAC) - 1))
    return n, v


def exp2_shift_int(t: object, m: object, frac: int, width: int) -> np.ndarray:
    """``2**(t/2**16 - m)`` as an unsigned code with ``frac`` fraction bits, truncated and
    saturated to ``[0, 2**width - 1]`` (the 1-pass attention's local numerator ``SLN``).

    ``t``: base-2 scores with :data:`S2_FRAC` = 16 fraction bits (:func:`log2e_scale_int`);
    ``m``: an integer exponent, the running max of ``floor(t/2**16)``.  ``2**f`` of the
    fraction ``f = t mod 2**16`` comes from :func:`exp2_frac_int` (22 fraction bits, relative
    error <= 3.0e-5) and ``2**(n - m)``, ``n = floor(t/2**16)``, is a right shift by
    ``m - n + 22 - frac`` (shifts of 63 or more give 0).  When ``m >= n`` the value is below
    2, so ``width = frac + 1`` never saturates; ``m < n`` (never the case for the running
    max) shifts left and saturates.
    """
    if not 0 <= frac <= EXP2_FRAC:
        raise NumericError(f"exp2_shift_int: frac must be in 0..{EXP2_FRAC}, got {frac}")
    if not 1 <= width <= 62:
        raise NumericError(f"exp2_shift_int: width must be in 1..62, got {width}")
    t = as_int_array(t, "t")
    m = as_int_array(m, "m")
    n = t >> S2_FRAC
    v = exp2_frac_int(t & ((1 << S2_FRAC) - 1))
    sh = m - n + (EXP2_FRAC - frac)
    right = v >> np.clip(sh, 0, 63)
    left = np.left_shift(v, np.clip(-sh, 0, 40))  # v >= 2**22: 40 more bits saturate any width
    return np.minimum(np.where(sh >= 0, right, left), (1 << width) - 1)


def exp_approx_int(
    x: object, in_fmt: QFormat = EXP_IN_FMT, out_fmt: QFormat = EXP_OUT_FMT
) -> np.ndarray:
    """Integer exp: ``x`` in ``in_fmt`` -> ``exp(x)`` in ``out_fmt`` (round half up, saturate).

    Error at representable inputs (non-saturated): relative <= 4e-5 + |x| * 2.7e-6,
    plus half an output LSB.
    """
    _check_model_fmt(in_fmt, "exp in_fmt")
    _check_model_fmt(out_fmt, "exp out_fmt")
    x = check_range(x, in_fmt, "exp input")
    n, v = exp2_split_int(x, in_fmt.frac)
    sh = n + out_fmt.frac - EXP2_FRAC  # result = v * 2**sh
    # v < 2**23: any left shift of out_fmt.width or more overflows every format
    over = sh >= out_fmt.width
    res = _round_shift(v, -np.minimum(sh, out_fmt.width))
    res = np.where(over, out_fmt.max_int, res)
    return np.minimum(res, out_fmt.max_int)


def exp_approx(
    x: object,
    *,
    in_fmt: QFormat = EXP_IN_FMT,
    out_fmt: QFormat = EXP_OUT_FMT,
    rounding: str = "nearest_even",
) -> np.ndarray:
    """Elementwise float exp through :func:`exp_approx_int` (any shape).

    Defaults ``Q8.16`` in (inputs saturate to [-128, 128)) and ``Q16.16`` out (saturates
    at exp(x) >= 32768, i.e. x > 10.39).  Relative error <= 6e-5 + |x|*2.7e-6 + input
    quantization (2**-17 * relative) for x in [-8, 10], absolute <= 2**-17 more.
    """
    q = quantize(x, in_fmt, rounding=rounding)
    return to_float(exp_approx_int(q, in_fmt, out_fmt), out_fmt)


# ----------------------------------------------------------------------------- gelu
def gelu_exact(x: object) -> np.ndarray:
    """float64 erf-GELU ``x * Phi(x)`` (reference; uses math.erfc elementwise)."""
    a = np.asarray(x, dtype=np.float64)
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return a * 0.5 * erfc(-a / math.sqrt(2.0))


def _gelu_u(x: np.ndarray, in_frac: int) -> np.ndarray:
    u = np.abs(x)
    if in_frac >= GELU_UFRAC:
        return u >> (in_frac - GELU_UFRAC)
    return u << (GELU_UFRAC - in_frac)


def gelu_delta_int(u: object) -> np.ndarray:
    """``delta(u) = u*Phi(-u)`` for ``u >= 0`` given with 18 fraction bits; 19 fraction bits out."""
    u = as_int_array(u, "u")
    if u.size and u.min() < 0:
        raise NumericError("gelu_delta_int needs u >= 0")
    co = np.asarray(GELU_COEFFS, dtype=np.int64)
    split = GELU_SPLIT << GELU_UFRAC
    fine = u < split
    seg = np.where(
        fine,
        u >> (GELU_UFRAC - 3),
        _GELU_NFINE + ((u - split) >> (GELU_UFRAC - 2)),
    )
    t = np.where(
        fine,
        (u & ((1 << (GELU_UFRAC - 3)) - 1)) << 1,
        u & ((1 << (GELU_UFRAC - 2)) - 1),
    )
    big = u >= (GELU_UMAX << GELU_UFRAC)
    seg = np.where(big, 0, seg)
    a0, a1, a2 = co[seg, 0], co[seg, 1], co[seg, 2]
    s1 = a1 + ((a2 * t) >> GELU_TBITS)
    d = a0 + ((s1 * t) >> GELU_TBITS)
    return np.where(big, 0, d)


def gelu_approx_int(
    x: object, in_fmt: QFormat = GELU_FMT, out_fmt: QFormat = GELU_FMT
) -> np.ndarray:
    """Integer erf-GELU: ``relu(x) - delta(|x|)`` rounded half up to ``out_fmt``, saturated.

    Error at representable inputs: <= 1.2e-5 + out LSB/2 (+ 1e-6 if in_fmt.frac > 18).
    """
    _check_model_fmt(in_fmt, "gelu in_fmt")
    _check_model_fmt(out_fmt, "gelu out_fmt")
    x = check_range(x, in_fmt, "gelu input")
    d = gelu_delta_int(_gelu_u(x, in_fmt.frac))
    fa = max(in_fmt.frac, GELU_CFRAC)
    y = (np.maximum(x, 0) << (fa - in_fmt.frac)) - (d << (fa - GELU_CFRAC))
    res = _round_shift(y, fa - out_fmt.frac)
    return np.clip(res, out_fmt.min_int, out_fmt.max_int)


def gelu_approx(
    x: object,
    *,
    in_fmt: QFormat = GELU_FMT,
    out_fmt: QFormat = GELU_FMT,
    rounding: str = "nearest_even",
) -> np.ndarray:
    """Elementwise float erf-GELU through :func:`gelu_approx_int` (any shape).

    Default ``Q4.14`` (18-bit) in and out: inputs saturate to [-8, 8); max abs error vs
    float64 erf-GELU <= 1e-4 on [-8, 8] including input quantization.
    """
    q = quantize(x, in_fmt, rounding=rounding)
    return to_float(gelu_approx_int(q, in_fmt, out_fmt), out_fmt)


# ----------------------------------------------------------------------------- softmax
def _check_softmax_fmts(in_fmt: QFormat, out_fmt: QFormat) -> None:
    _check_model_fmt(in_fmt, "softmax in_fmt")
    _check_model_fmt(out_fmt, "softmax out_fmt", max_frac=30)


def softmax_state_int(x: object, in_frac: int) -> tuple[np.ndarray, np.ndarray]:
    """Running (max, sum) after one pass over the last axis, exactly as the RTL updates them.

    Returns ``(m, S)`` of shape ``x.shape[:-1]``: ``m`` = max of ``n_i = floor(s2_i)``, ``S``
    the sum of ``2**(s2_i - m)`` with 22 fraction bits.  Two partial sums (even and odd
    positions) are kept so that the RTL's shift-and-add loop has two cycles per update::

        M_j = max(M_{j-1}, n_j)                              (running max, M_{-1} = -inf)
        P[j%2] = (P[j%2] >> (M_j - L[j%2])) + (v_j >> (M_j - n_j));  L[j%2] = M_j
        S = (P[0] >> (m - L[0])) + (P[1] >> (m - L[1]))      (shifts >= 63 give 0)
    """
    x = as_int_array(x, "x")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise NumericError("softmax needs at least one score per row")
    n_all, v_all = exp2_split_int(x, in_frac)
    lo = np.iinfo(np.int64).min // 4
    m = np.full(x.shape[:-1], lo, dtype=np.int64)
    part = [np.zeros(x.shape[:-1], dtype=np.int64) for _ in range(2)]
    last = [np.full(x.shape[:-1], lo, dtype=np.int64) for _ in range(2)]
    for j in range(x.shape[-1]):
        p = j & 1
        n, v = n_all[..., j], v_all[..., j]
        m = np.maximum(m, n)
        part[p] = (part[p] >> np.minimum(m - last[p], 63)) + (v >> np.minimum(m - n, 63))
        last[p] = m
    s = (part[0] >> np.minimum(m - last[0], 63)) + (part[1] >> np.minimum(m - last[1], 63))
    return m, s


def softmax_recip_int(s: object) -> tuple[np.ndarray, np.ndarray]:
    """``(R, lead)``: ``lead`` = index of the leading one of ``S`` (>= 22),
    ``R = floor(2**34 / M_int)`` with ``M_int = S >> (lead - 17)`` (18 bits)."""
    s = as_int_array(s, "S")
    if s.size and s.min() < (1 << SUM_FRAC):
        raise NumericError("softmax sum must be >= 1.0")
    if s.size and s.max() >= (1 << 52):
        raise NumericError("softmax sum too large")
    lead = (np.frexp(s.astype(np.float64))[1] - 1).astype(np.int64)
    m_int = s >> (lead - RECIP_BITS)
    r = (np.int64(1) << (2 * RECIP_BITS)) // m_int
    return r, lead


def softmax_approx_int(
    x: object,
    in_fmt: QFormat = SOFTMAX_IN_FMT,
    out_fmt: QFormat = SOFTMAX_OUT_FMT,
    *,
    max_len: int | None = None,
) -> np.ndarray:
    """Integer single-pass softmax along the last axis (see the module docstring).

    ``x``: integers of ``in_fmt`` with shape ``(..., n)``, ``n >= 1``; returns integers of
    ``out_fmt`` of the same shape.  ``max_len`` (if given) bounds ``n`` like the RTL's.
    """
    _check_softmax_fmts(in_fmt, out_fmt)
    x = check_range(x, in_fmt, "softmax input")
    if x.ndim == 0:
        raise NumericError("softmax needs an array with at least one axis")
    n_len = x.shape[-1]
    if max_len is not None and n_len > max_len:
        raise NumericError(f"softmax row length {n_len} exceeds max_len {max_len}")
    if n_len == 0:
        return x.copy()
    m, s = softmax_state_int(x, in_fmt.frac)
    r, lead = softmax_recip_int(s)
    n_i, v_i = exp2_split_int(x, in_fmt.frac)
    shift_t = np.minimum(m[..., None] - n_i + (EXP2_FRAC - T_FRAC), 63)
    t = v_i >> shift_t
    sh = T_FRAC + RECIP_BITS - SUM_FRAC - out_fmt.frac + lead
    p = _round_shift(t * r[..., None], sh[..., None])
    return np.clip(p, out_fmt.min_int, out_fmt.max_int)


def softmax_approx(
    x: object,
    *,
    in_fmt: QFormat = SOFTMAX_IN_FMT,
    out_fmt: QFormat = SOFTMAX_OUT_FMT,
    axis: int = -1,
    rounding: str = "nearest_even",
) -> np.ndarray:
    """Float softmax along ``axis`` (default last) through :func:`softmax_approx_int`.

    Default ``Q6.10`` scores (saturate to [-32, 32)), ``Q2.14`` probabilities.  Max abs
    error per probability vs float64 softmax < 2**-10 for rows of 8..1024 scores in [-16, 16].
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        raise NumericError("softmax needs an array with at least one axis")
    a = np.moveaxis(a, axis, -1)
    q = quantize(a, in_fmt, rounding=rounding)
    p = to_float(softmax_approx_int(q, in_fmt, out_fmt), out_fmt)
    return np.moveaxis(p, -1, axis)
