"""Map operators of the Einsum language and their NumPy reference semantics.

Each operator has a NumPy implementation (elementwise, broadcasting), an arity,
and an *action class* used for operation counts (``exp``, ``div``, ``max`` ...).
The approximate fixed-point operators (``exp_approx``, ``gelu_approx``) use the
bit-exact golden models of :mod:`einsum.approx`, imported on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


def _gelu(x: np.ndarray) -> np.ndarray:
    # erf-GELU: x * Phi(x); math.erf vectorised (numpy has no erf).
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


_verf = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_verf(x), dtype=np.float64)


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


def _where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(c, dtype=bool), a, b)


def _clamp(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        Operator("max", np.maximum, 2, "max", "elementwise maximum of two values"),
        Operator("min", np.minimum, 2, "max", "elementwise minimum of two values"),
        Operator("clamp", _clamp, 3, "max", "clamp(x, lo, hi)"),
        Operator("exp", np.exp, 1, "exp", "e**x"),
        Operator("exp2", np.exp2, 1, "exp", "2**x"),
        Operator("log", np.log, 1, "log", "natural logarithm"),
        Operator("sqrt", np.sqrt, 1, "sqrt", "square root"),
        Operator("recip", np.reciprocal, 1, "div", "1/x"),
        Operator("abs", np.abs, 1, "max", "absolute value"),
        Operator("relu", lambda x: np.maximum(x, 0.0), 1, "max", "max(x, 0)"),
        Operator("gelu", _gelu, 1, "gelu", "erf-GELU x*Phi(x)"),
        Operator("sigmoid", _sigmoid, 1, "exp", "1/(1+e**-x)"),
        Operator("elu", _elu, 1, "exp", "x if x>0 else e**x-1"),
        Operator("where", _where, 3, "select", "where(cond, a, b)"),
        Operator("exp_approx", _approx("exp_approx"), 1, "exp",
                 "fixed-point base-2 exp (golden model of the RTL exp unit)"),
        Operator("gelu_approx", _approx("gelu_approx"), 1, "gelu",
                 "fixed-point GELU (golden model of the RTL GELU unit)"),
    ]
}

# Operators whose results are integers when their arguments are; allowed in subscripts.
INDEX_FUNCTIONS = frozenset({"min", "max", "clamp", "abs"})
