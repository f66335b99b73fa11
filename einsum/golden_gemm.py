"""Bit-exact golden model of the unified compute unit (:mod:`hw.compute_unit`).

The compute unit is an R x C output-stationary MAC array. One *tile* computes::

    acc[r, c]  = (acc_prev[r, c] if keep else 0)            # K-split continuation
               + (bias[c] << (a_frac + w_frac - bias_frac)  # bias preloaded into the accumulator
                  if bias else 0)
               + sum_{k < K} a[r, k] * w[k, c]                # exact integer products
    acc        = wrap(acc, acc_width)                        # two's complement, like the RTL
    s          = a_frac + w_frac - o_frac + shift            # requantization shift (>= 0)
    y          = saturate((acc + 2**(s-1)) >> s, o_width)    # round half up (floor(x + 1/2))
    y          = max(y, 0)          if relu
    y          = gelu(y)            if gelu (an integer function supplied by the caller)

All values are integer codes of signed fixed-point numbers: ``a`` has ``a_width`` bits
with ``a_frac`` fraction bits (activations, rows of the left operand), ``w`` has
``w_width``/``w_frac`` (weights, or the right operand of the attention matmuls), ``bias``
is carried on the weight stream so it has ``w_width`` bits but its own ``bias_frac``, and
the result has ``o_width``/``o_frac``.

The attention matmuls are the same tile with different operand layouts: for
``S = Q K^T`` the right operand is ``K^T`` (so ``w[k, c] = K[c, k]``; see
:func:`qkt_tile`) and for ``O = A V`` it is ``V`` itself (:func:`av_tile`). The
opcodes ``OP_QKT`` and ``OP_AV`` never add a bias nor apply relu/gelu.

Only NumPy and :mod:`einsum.errors` are imported, so the model runs anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from einsum.errors import NumericError

OP_GEMM = 0
OP_QKT = 1
OP_AV = 2
OPCODES = {"gemm": OP_GEMM, "qkt": OP_QKT, "av": OP_AV}

IntFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GemmFormat:
    """Number formats of the compute unit (all widths in bits, two's complement)."""

    a_width: int = 16
    a_frac: int = 10
    w_width: int = 16
    w_frac: int = 14
    acc_width: int = 40
    o_width: int = 16
    o_frac: int = 10
    bias_frac: int = 14

    def __post_init__(self) -> None:
        for name in ("a_width", "w_width", "acc_width", "o_width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 64:
                raise NumericError(f"{name} must be an integer in [2, 64], got {v!r}")
        for name, wname in (("a_frac", "a_width"), ("w_frac", "w_width"),
                            ("o_frac", "o_width"), ("bias_frac", "w_width")):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < getattr(self, wname):
                raise NumericError(
                    f"{name} must be an integer in [0, {wname}={getattr(self, wname)}), got {v!r}")
        if self.acc_width < self.a_width + self.w_width:
            raise NumericError(
                f"acc_width={self.acc_width} must be >= a_width + w_width = "
                f"{self.a_width + self.w_width} so one product fits the accumulator")
        if self.o_frac > self.a_frac + self.w_frac:
            raise NumericError(
                f"o_frac={self.o_frac} must be <= a_frac + w_frac = {self.a_frac + self.w_frac} "
                "(the unit only shifts right when requantizing)")
        if self.bias_frac > self.a_frac + self.w_frac:
            raise NumericError(
                f"bias_frac={self.bias_frac} must be <= a_frac + w_frac = "
                f"{self.a_frac + self.w_frac} (the bias is shifted left into the accumulator)")

    @property
    def base_shift(self) -> int:
        """Right shift taking accumulator codes to output codes (before the command shift)."""
        return self.a_frac + self.w_frac - self.o_frac

    @property
    def bias_shift(self) -> int:
        return self.a_frac + self.w_frac - self.bias_frac

    def as_dict(self) -> dict:
        return asdict(self)


def _range(width: int) -> tuple[int, int]:
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _check_codes(name: str, x: np.ndarray, width: int) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise NumericError(f"{name} must hold integer codes, got dtype {x.dtype}")
    lo, hi = _range(width)
    x = x.astype(object)
    if x.size and (min(x.flat) < lo or max(x.flat) > hi):
        raise NumericError(f"{name} codes out of range for {width}-bit signed [{lo}, {hi}]")
    return x


def wrap(x: np.ndarray, width: int) -> np.ndarray:
    """Two's-complement wrap of Python-int arrays to ``width`` bits."""
    m = 1 << width
    h = 1 << (width - 1)
    return np.vectorize(lambda v: ((int(v) + h) % m) - h, otypes=[object])(x)


def saturate(x: np.ndarray, width: int) -> np.ndarray:
    lo, hi = _range(width)
    return np.vectorize(lambda v: min(max(int(v), lo), hi), otypes=[object])(x)


def quantize(x, width: int, frac: int) -> np.ndarray:
    """Float -> signed fixed-point codes, round half to even, saturating.

    Raises :class:`NumericError` for NaN or infinite inputs.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise NumericError("cannot quantize NaN or infinite values")
    lo, hi = _range(width)
    return np.clip(np.rint(x * float(1 << frac)), lo, hi).astype(np.int64)


def dequantize(codes, frac: int) -> np.ndarray:
    return np.asarray(codes, dtype=np.float64) / float(1 << frac)


def requantize(acc: np.ndarray, fmt: GemmFormat, shift: int = 0) -> np.ndarray:
    """Accumulator codes -> output codes: round half up by ``base_shift + shift``, saturate."""
    if not isinstance(shift, (int, np.integer)) or shift < 0:
        raise NumericError(f"shift must be a non-negative integer, got {shift!r}")
    s = fmt.base_shift + int(shift)
    if s > 0:
        acc = np.vectorize(lambda v: (int(v) + (1 << (s - 1))) >> s, otypes=[object])(acc)
    return saturate(acc, fmt.o_width)


def gemm_tile(a, w, bias=None, *, fmt: GemmFormat = GemmFormat(), op: int = OP_GEMM,
              shift: int = 0, relu: bool = False, gelu: IntFn | None = None,
              acc_in=None) -> tuple[np.ndarray, np.ndarray]:
    """One tile, exactly as the RTL computes it.

    ``a``: (R, K) codes, ``w``: (K, C) codes, ``bias``: (C,) codes or None, ``acc_in``:
    (R, C) accumulator to continue from (the ``acc`` command flag) or None (cleared).
    ``gelu``: integer function on output codes (the GELU block's golden model) or None.
    For ``op`` in (OP_QKT, OP_AV) bias, relu and gelu are ignored, as in the RTL.

    Returns ``(out, acc)``: the (R, C) output codes (int64) and the (R, C) accumulator
    codes after the tile (object array of Python ints).
    """
    if op not in (OP_GEMM, OP_QKT, OP_AV):
        raise NumericError(f"unknown opcode {op!r} (expected 0=gemm, 1=qkt, 2=av)")
    a = _check_codes("a", a, fmt.a_width)
    w = _check_codes("w", w, fmt.w_width)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0] or a.shape[1] < 1:
        raise NumericError(f"need a (R, K) and w (K, C) with K >= 1, got {a.shape} and {w.shape}")
    rows, cols = a.shape[0], w.shape[1]
    if acc_in is None:
        acc = np.zeros((rows, cols), dtype=object)
    else:
        acc = np.asarray(acc_in, dtype=object).copy()
        if acc.shape != (rows, cols):
            raise NumericError(f"acc_in must have shape {(rows, cols)}, got {acc.shape}")
    if op != OP_GEMM:
        bias, relu, gelu = None, False, None
    if bias is not None:
        b = _check_codes("bias", bias, fmt.w_width).reshape(-1)
        if b.shape != (cols,):
            raise NumericError(f"bias must have {cols} entries, got {b.shape[0]}")
        acc = wrap(acc + (b << fmt.bias_shift)[None, :], fmt.acc_width)
    # The RTL adds one product per cycle into a wrapping register; wrapping once at
    # the end gives the same result (addition modulo 2**acc_width is associative).
    acc = wrap(acc + a.dot(w), fmt.acc_width)
    y = requantize(acc, fmt, shift)
    if relu:
        y = np.vectorize(lambda v: max(int(v), 0), otypes=[object])(y)
    if gelu is not None:
        y = np.asarray(gelu(np.asarray(y, dtype=np.int64)))
    return np.asarray(y, dtype=np.int64), acc


def qkt_tile(q, k, *, fmt: GemmFormat = GemmFormat(), shift: int = 0):
    """Scores tile ``S = Q K^T``: ``q`` (R, E) activations, ``k`` (C, E) on the weight port.

    The weight beat for step ``e`` is column ``e`` of the K tile, i.e. ``w = K^T``.
    ``shift`` is the attention scale as a power of two (1/sqrt(64) = 2**-3 -> shift 3).
    """
    return gemm_tile(q, np.asarray(k).T, fmt=fmt, op=OP_QKT, shift=shift)


def av_tile(p, v, *, fmt: GemmFormat = GemmFormat(), acc_in=None):
    """Output tile ``O = A V``: ``p`` (R, P) probabilities, ``v`` (P, C) values."""
    return gemm_tile(p, v, fmt=fmt, op=OP_AV, acc_in=acc_in)


def tiled_gemm(x, w, bias=None, *, rows: int, cols: int, max_k: int,
               fmt: GemmFormat = GemmFormat(), shift: int = 0, relu: bool = False,
               gelu: IntFn | None = None) -> np.ndarray:
    """Full GEMM ``y = epi(x @ w + bias)`` as the unit runs it: (M, K) x (K, N) in tiles.

    Output tiles are ``rows x cols``; K is split into chunks of at most ``max_k`` that are
    chained with the ``acc`` flag (bias on the first chunk, epilogue on the last one's output).
    M and N need not be multiples of the tile size (edge tiles are zero-padded).
    """
    x = np.asarray(x)
    w = np.asarray(w)
    m_dim, k_dim = x.shape
    k2, n_dim = w.shape
    if k_dim != k2:
        raise NumericError(f"inner dimensions differ: x is {x.shape}, w is {w.shape}")
    if rows < 1 or cols < 1 or max_k < 1:
        raise NumericError("rows, cols and max_k must be >= 1")
    out = np.zeros((m_dim, n_dim), dtype=np.int64)
    for m0 in range(0, m_dim, rows):
        for n0 in range(0, n_dim, cols):
            a = np.zeros((rows, k_dim), dtype=np.int64)
            a[: min(rows, m_dim - m0)] = x[m0:m0 + rows]
            wt = np.zeros((k_dim, cols), dtype=np.int64)
            wt[:, : min(cols, n_dim - n0)] = w[:, n0:n0 + cols]
            b = None
            if bias is not None:
                b = np.zeros(cols, dtype=np.int64)
                bb = np.asarray(bias)[n0:n0 + cols]
                b[: bb.shape[0]] = bb
            acc = None
            for k0 in range(0, k_dim, max_k):
                last = k0 + max_k >= k_dim
                y, acc = gemm_tile(a[:, k0:k0 + max_k], wt[k0:k0 + max_k],
                                   b if k0 == 0 else None, fmt=fmt, shift=shift,
                                   relu=relu and last, gelu=gelu if last else None,
                                   acc_in=acc)
            out[m0:m0 + rows, n0:n0 + cols] = y[: min(rows, m_dim - m0), : min(cols, n_dim - n0)]
    return out
