"""Regression tests for bugs found in the loader and interpreter."""

from __future__ import annotations

import numpy as np

from einsum.interp import evaluate
from einsum.yamlsrc import loads
from einsum.load import cascade_from_data


def _cascade(text: str, **kw):
    data, src = loads(text, "reg.yaml")
    return cascade_from_data(data["einsum"], src, **kw)


def test_rank_size_expression_with_a_zero_operand():
    """`H + 2*halo` with halo = 0 used to fail with 'divides by zero': the size
    evaluator computed a/b, a//b and a%b eagerly for every binary operator."""
    text = """
einsum:
  version: 1
  name: pad
  ranks: {H: 4, HP: "H + 2*halo"}
  params: {halo: 1}
  inputs: {X: [H]}
  outputs: [Y]
  expressions:
    - Y[hp] = X[clamp(hp - halo, 0, H - 1)] where halo <= hp < H + halo
"""
    c = _cascade(text, params={"halo": 0})
    assert c.ranks["HP"].size == 4
    x = np.arange(4.0)
    np.testing.assert_array_equal(evaluate(c, {"X": x})["Y"], x)
    c = _cascade(text)
    assert c.ranks["HP"].size == 6
    np.testing.assert_array_equal(evaluate(c, {"X": x})["Y"], [0, 0, 1, 2, 3, 0])
