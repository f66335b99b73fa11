"""Fibre operators and the fixed-point attention head: the cascade equals the golden RTL models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einarray.cli import main
from einsum.approx import softmax_approx_int
from einsum.errors import NumericError
from einsum.golden_gemm import GemmFormat, av_tile, qkt_tile
from einsum.interp import evaluate
from einsum.load import cascade_from_data, load_cascade
from einsum.yamlsrc import loads


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 12), p=st.integers(1, 20), e=st.integers(1, 8), f=st.integers(1, 8),
       seed=st.integers(0, 2**31), amp=st.sampled_from([64, 2048, 32767]))
def test_attention_fixed_is_the_golden_chain(m, p, e, f, seed, amp):
    c = load_cascade("attention-fixed", ranks={"M": m, "P": p, "E": e, "F": f})
    rng = np.random.default_rng(seed)
    Q, K, V = (rng.integers(-amp, amp + 1, c.tensors[t].shape) for t in ("Q", "K", "V"))
    out = evaluate(c, {"Q": Q, "K": K, "V": V})
    S, _ = qkt_tile(Q, K, fmt=GemmFormat(a_frac=10, w_frac=10, o_frac=10), shift=3)
    A = softmax_approx_int(S)
    O, _ = av_tile(A, V, fmt=GemmFormat(a_frac=14, w_frac=10, o_frac=10))
    np.testing.assert_array_equal(out["S"], S)
    np.testing.assert_array_equal(out["A"], A)
    np.testing.assert_array_equal(out["AV"], O)


def test_float_softmax_fibre_operator_along_either_axis():
    text = """einsum:
  version: 1
  name: t
  ranks: {M: 5, P: 7}
  inputs: {X: [M, P]}
  outputs: [A, B]
  expressions:
    - A[m,p] = softmax(X[m,p], p)
    - B[m,p] = softmax(2 * X[m,p], m)
"""
    data, src = loads(text, "t.yaml")
    c = cascade_from_data(data["einsum"], src)
    X = np.random.default_rng(1).standard_normal((5, 7))
    out = evaluate(c, {"X": X})
    ea = np.exp(X - X.max(1, keepdims=True))
    np.testing.assert_allclose(out["A"], ea / ea.sum(1, keepdims=True), atol=1e-12)
    eb = np.exp(2 * X - (2 * X).max(0, keepdims=True))
    np.testing.assert_allclose(out["B"], eb / eb.sum(0, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("expr,msg", [
    ("softmax(X[m,p], q)", "'q' is not an index"),
    ("softmax(X[m,p], m + 1)", "softmax(x, i): i must be an index kept on the left side"),
    ("softmax(X[m,p])", "softmax() takes 2 arguments, got 1"),
])
def test_bad_fibre_operator(tmp_path, capsys, expr, msg):
    p = tmp_path / "bad.yaml"
    p.write_text(f"""einsum:
  version: 1
  name: t
  ranks: {{M: 5, P: 7}}
  inputs: {{X: [M, P]}}
  outputs: [A]
  expressions:
    - A[m,p] = {expr}
""")
    assert main(["check", str(p)]) == 2
    assert msg in capsys.readouterr().err


def test_fixed_point_operators_reject_non_integers():
    c = load_cascade("attention-fixed", ranks={"M": 2, "P": 2, "E": 2, "F": 2})
    with pytest.raises(NumericError, match="needs integer codes"):
        evaluate(c, {"Q": np.full((2, 2), 0.3), "K": np.ones((2, 2)), "V": np.ones((2, 2))})


def test_fibre_operator_costs_a_pass():
    from einsum.analysis import passes

    assert passes(load_cascade("attention-fixed"))["P"] == 2
