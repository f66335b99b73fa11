"""Map operators of the Einsum language and their NumPy reference semantics.

Each operator has a NumPy implementation (elementwise, broadcasting), an arity,
and an *action class* used for operation counts (``exp``, ``div``, ``max`` ...).
The approximate fixed-point operators (``exp_approx``, ``gelu_approx``) use the
bit-exact golden models of :mod:`einsum.approx`, imported on first use.

Ordering operators run along one index and break ties by the lower index (stable),
exactly as NumPy's ``kind="stable"`` sorts do:

* ``argmax(i) X[.., i]`` / ``argmin(i) ...`` are reductions (written like ``max(i)``):
  the position of the first maximum (minimum) along ``i``, as ``np.argmax``/``np.argmin``.
* ``S[.., j] = sort(X[.., i], i, j)`` / ``argsort(x, i, j)``: ascending values /
  positions along ``i`` written along ``j``, a rank of the same size
  (``np.sort``, ``np.argsort(kind="stable")``).
* ``T[.., k] = topk(X[.., i], i, k)`` / ``argtopk(x, i, k)``: the ``size(k) <= size(i)``
  largest values, descending / their positions (the first ``size(k)`` of
  ``np.argsort(-x, kind="stable")``: equal values keep the lower position first).

A position is a float64 holding an integer (the reference computes in float64); the
tensor that holds it is an *index tensor* with values in the rank of ``i``, usable as a
subscript (a gather). NaNs are not ordered (the result is NumPy's, unspecified here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable



class _LazyNumpy:
    """numpy, imported on first use (``import numpy`` is ~0.1 s of every CLI start-up)."""

    def __getattr__(self, name: str):
        import numpy

        return getattr(numpy, name)


np = _LazyNumpy()


def _ufunc(name: str) -> Callable[..., "np.ndarray"]:
    def call(*args, **kw):
        return getattr(np, name)(*args, **kw)
    call.__name__ = name
    return call


def _gelu(x: np.ndarray) -> np.ndarray:
    # erf-GELU: x * Phi(x); math.erf vectorised (numpy has no erf).
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


_VERF: list = []


def _erf(x: np.ndarray) -> np.ndarray:
    if not _VERF:
        _VERF.append(np.frompyfunc(math.erf, 1, 1))
    return np.asarray(_VERF[0](x), dtype=np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _elu(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _approx(name: str) -> Callable[..., np.ndarray]:
    def call(*args: np.ndarray) -> np.ndarray:
        from . import approx  # golden fixed-point models, NumPy only

        fn = getattr(approx, name)
        return np.asarray(fn(*[np.asarray(a, dtype=np.float64) for a in args]), dtype=np.float64)

    call.__name__ = name
    return call


@dataclass(frozen=True)
class Operator:
    name: str
    fn: Callable[..., np.ndarray]
    arity: int
    action: str  # action class for operation counts
    doc: str
    fibre: bool = False  # the last argument names an index; fn works along that axis
    fibre_out: bool = False  # f(x, i, j): along i, written along j (fn(x, axis, n_out))
    positions: bool = False  # the result is positions along i (an index tensor)
    int_codes: bool = False  # works on integer codes of fixed-point numbers


def _int_codes(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        from .errors import NumericError

        raise NumericError(f"{what} needs integer codes (fixed-point values), got non-integers")
    return a.astype(np.int64)


def _requant(x: np.ndarray, s: np.ndarray, width: np.ndarray, acc_width: np.ndarray) -> np.ndarray:
    """The compute unit's requantization (einsum.golden_gemm.requantize): wrap the
    accumulator to ``acc_width`` bits, round half up while shifting right by ``s``,
    saturate to a signed ``width``-bit code."""
    from .golden_gemm import saturate, wrap

    v = _int_codes(x, "requant")
    s_, w_, a_ = int(np.asarray(s)), int(np.asarray(width)), int(np.asarray(acc_width))
    v = np.asarray(wrap(v.astype(object), a_), dtype=object)
    if s_ > 0:
        v = (v + (1 << (s_ - 1))) >> s_
    return np.asarray(saturate(v, w_), dtype=np.float64)


def _int_params(*vals: np.ndarray) -> list[int]:
    return [int(np.asarray(v)) for v in vals]


def _log2e_fixed(x: np.ndarray, frac: np.ndarray) -> np.ndarray:
    from .approx import log2e_scale_int

    return log2e_scale_int(_int_codes(x, "log2e_fixed"), *_int_params(frac)).astype(np.float64)


def _exp2_fixed(t: np.ndarray, m: np.ndarray, frac: np.ndarray, width: np.ndarray) -> np.ndarray:
    from .approx import exp2_shift_int

    return exp2_shift_int(_int_codes(t, "exp2_fixed"), _int_codes(m, "exp2_fixed"),
                          *_int_params(frac, width)).astype(np.float64)


def _shr(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    from .fixed import shift_right

    return shift_right(_int_codes(x, "shr"), _int_codes(n, "shr")).astype(np.float64)


def _div_fixed(n: np.ndarray, d: np.ndarray, width: np.ndarray) -> np.ndarray:
    from .fixed import recip_div_int

    return recip_div_int(_int_codes(n, "div_fixed"), _int_codes(d, "div_fixed"),
                         *_int_params(width)).astype(np.float64)


def _fibre(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, int], np.ndarray]:
    def call(x: np.ndarray, axis: int) -> np.ndarray:
        a = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
        return np.moveaxis(np.asarray(fn(a), dtype=np.float64), -1, axis)

    return call


def _softmax_fixed(a: np.ndarray) -> np.ndarray:
    from .approx import softmax_approx_int

    return softmax_approx_int(_int_codes(a, "softmax_fixed"))


def _softmax_approx(a: np.ndarray) -> np.ndarray:
    from .approx import softmax_approx

    return softmax_approx(a)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ordering(kind: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """sort/argsort (ascending) or topk/argtopk (descending, first n_out) along ``axis``;
    ties by the lower position (a stable sort; descending order sorts -x)."""
    def call(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        order = np.argsort(-a if kind.endswith("topk") else a, axis=axis, kind="stable")
        order = np.take(order, np.arange(n_out), axis=axis)
        if kind.startswith("arg"):
            return order.astype(np.float64)
        return np.take_along_axis(a, order, axis=axis)

    call.__name__ = kind
    return call


def _arg_reduce(kind: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """argmax/argmin along ``axis``: the first extreme position (np.argmax/np.argmin)."""

    def call(x: np.ndarray, axis: int) -> np.ndarray:
        fn = np.argmax if kind == "argmax" else np.argmin
        return fn(np.asarray(x, dtype=np.float64), axis=axis).astype(np.float64)

    return call


# argmax(i) / argmin(i): reductions that keep the position of the extreme value
ARG_REDUCTIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    k: _arg_reduce(k) for k in ("argmax", "argmin")}


def _where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(c, dtype=bool), a, b)


def _clamp(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        Operator("max", _ufunc("maximum"), 2, "max", "elementwise maximum of two values"),
        Operator("min", _ufunc("minimum"), 2, "max", "elementwise minimum of two values"),
        Operator("clamp", _clamp, 3, "max", "clamp(x, lo, hi)"),
        Operator("exp", _ufunc("exp"), 1, "exp", "e**x"),
        Operator("exp2", _ufunc("exp2"), 1, "exp", "2**x"),
        Operator("log", _ufunc("log"), 1, "log", "natural logarithm"),
        Operator("sqrt", _ufunc("sqrt"), 1, "sqrt", "square root"),
        Operator("recip", _ufunc("reciprocal"), 1, "div", "1/x"),
        Operator("abs", _ufunc("abs"), 1, "max", "absolute value"),
        Operator("relu", lambda x: np.maximum(x, 0.0), 1, "max", "max(x, 0)"),
        Operator("gelu", _gelu, 1, "gelu", "erf-GELU x*Phi(x)"),
        Operator("sigmoid", _sigmoid, 1, "exp", "1/(1+e**-x)"),
        Operator("elu", _elu, 1, "exp", "x if x>0 else e**x-1"),
        Operator("where", _where, 3, "select", "where(cond, a, b)"),
        Operator("exp_approx", _approx("exp_approx"), 1, "exp",
                 "fixed-point base-2 exp (golden model of the RTL exp unit)"),
        Operator("gelu_approx", _approx("gelu_approx"), 1, "gelu",
                 "fixed-point GELU (golden model of the RTL GELU unit)"),
        Operator("requant", _requant, 4, "mul",
                 "requant(x, shift, width, acc_width): the compute unit's rounding shift and "
                 "saturation on integer codes (golden model)", int_codes=True),
        Operator("log2e_fixed", _log2e_fixed, 2, "mul",
                 "log2e_fixed(x, frac): x*log2(e) with 16 fraction bits, x a code with frac "
                 "fraction bits (golden model)", int_codes=True),
        Operator("exp2_fixed", _exp2_fixed, 4, "exp",
                 "exp2_fixed(t, m, frac, width): 2**(t/2**16 - m) as an unsigned code with frac "
                 "fraction bits, table + shift, truncated, saturated to width bits (golden model)",
                 int_codes=True),
        Operator("shr", _shr, 2, "add",
                 "shr(x, n): arithmetic right shift of an integer code, floor(x / 2**n)",
                 int_codes=True),
        Operator("div_fixed", _div_fixed, 3, "div",
                 "div_fixed(n, d, width): n/d through an 18-bit reciprocal, rounded half up, "
                 "saturated to a signed width-bit code (golden model)", int_codes=True),
        Operator("softmax", _fibre(_softmax), 2, "exp", "softmax(x, i): float softmax along index i",
                 fibre=True),
        Operator("softmax_approx", _fibre(_softmax_approx), 2, "exp",
                 "softmax_approx(x, i): the fixed-point single-pass softmax along index i, float in "
                 "and out (golden model of the RTL softmax block)", fibre=True),
        Operator("softmax_fixed", _fibre(_softmax_fixed), 2, "exp",
                 "softmax_fixed(x, i): the RTL softmax block's integer model along index i "
                 "(Q6.10 codes in, Q2.14 codes out)", fibre=True, int_codes=True),
        Operator("sort", _ordering("sort"), 3, "cmp",
                 "sort(x, i, j): the values along i in ascending order, written along j "
                 "(a rank of i's size; stable)", fibre_out=True),
        Operator("argsort", _ordering("argsort"), 3, "cmp",
                 "argsort(x, i, j): the positions along i in ascending order of x, written "
                 "along j (stable: ties keep the lower position first)", fibre_out=True,
                 positions=True),
        Operator("topk", _ordering("topk"), 3, "cmp",
                 "topk(x, i, k): the size(k) largest values along i, descending, written "
                 "along k (ties: lower position first)", fibre_out=True),
        Operator("argtopk", _ordering("argtopk"), 3, "cmp",
                 "argtopk(x, i, k): the positions of topk(x, i, k) along i", fibre_out=True,
                 positions=True),
    ]
}

# Operators whose results are integers when their arguments are; allowed in subscripts.
INDEX_FUNCTIONS = frozenset({"min", "max", "clamp", "abs"})
