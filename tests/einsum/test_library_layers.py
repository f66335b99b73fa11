"""Element-wise and normalisation layers of the library against NumPy references.

These are the layers an imported model (ONNX graph, Hugging Face config, SCALE-Sim
topology) lowers its non-GEMM operators to. Each reference is written from the operator's
definition (``math.erf`` for GELU, ``1 / (1 + e^-x)`` for the sigmoid), never from the
cascade; shapes are odd (T=7, D=13) and the cascade must match to 1e-12 in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from einsum.analysis import op_counts, passes, totals
from einsum.interp import evaluate
from einsum.load import load_cascade

T, D = 7, 13


def _x(seed: int, shape=(T, D)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * 3.0


def _run(name: str, inputs: dict, params: dict | None = None) -> np.ndarray:
    return evaluate(load_cascade(name, ranks={"T": T, "D": D}, params=params), inputs)["Y"]


_erf = np.vectorize(math.erf)


@pytest.mark.parametrize("name,ref", [
    ("gelu", lambda x: x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))),
    ("silu", lambda x: x / (1.0 + np.exp(-x))),
    ("relu", lambda x: np.where(x > 0, x, 0.0)),
])
def test_unary(name, ref):
    x = _x(1)
    np.testing.assert_allclose(_run(name, {"X": x}), ref(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,ref", [("add", np.add), ("mul", np.multiply)])
def test_binary(name, ref):
    a, b = _x(2), _x(3)
    np.testing.assert_allclose(_run(name, {"A": a, "B": b}), ref(a, b), rtol=0, atol=1e-12)


def test_rmsnorm():
    x, g = _x(4), _x(5, (D,))
    want = x / np.sqrt((x ** 2).mean(axis=1, keepdims=True) + 1e-5) * g
    np.testing.assert_allclose(_run("rmsnorm", {"X": x, "GAMMA": g}, {"eps": 1e-5}), want,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,ops", [
    # one operator per element, nothing else
    ("gelu", {"gelu": T * D}), ("relu", {"max": T * D}), ("add", {"add": T * D}),
    ("mul", {"mul": T * D}),
    # x * sigmoid(x): one exp and one multiply per element
    ("silu", {"exp": T * D, "mul": T * D}),
    # x*x summed (T*D MACs), / D and 1/sqrt per row, then x * rs * gamma (2 multiplies)
    ("rmsnorm", {"mac": T * D, "div": 2 * T, "sqrt": T, "add": T, "mul": 2 * T * D}),
])
def test_op_counts(name, ops):
    assert totals(op_counts(load_cascade(name, ranks={"T": T, "D": D}))) == ops


@pytest.mark.parametrize("name", ["gelu", "silu", "relu", "add", "mul"])
def test_elementwise_is_one_pass(name):
    assert passes(load_cascade(name)) == {"T": 1, "D": 1}


@pytest.mark.parametrize("name,ref", [("maxpool", lambda x: x.max(axis=1)), ("avgpool", lambda x: x.mean(axis=1))])
def test_pooling(name, ref):
    x = _x(6, (T, 5, D))  # T windows of K = 5 points, D channels
    got = evaluate(load_cascade(name, ranks={"T": T, "K": 5, "D": D}), {"X": x})["Y"]
    np.testing.assert_allclose(got, ref(x), rtol=0, atol=1e-12)
    ops = totals(op_counts(load_cascade(name, ranks={"T": T, "K": 5, "D": D})))
    # a max per window point; or an add per point and one divide per output
    assert ops == ({"max": T * 5 * D} if name == "maxpool" else {"add": T * 5 * D, "div": T * D})
