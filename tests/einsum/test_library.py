"""Library cascades against independent direct NumPy implementations.

Every test draws small random shapes with hypothesis, evaluates the library cascade
with the reference interpreter and compares with a NumPy implementation written here
directly from the algorithm's definition (never via the interpreter): max abs error
<= 1e-5 in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum.interp import evaluate
from einsum.load import library_names, load_cascade

TOL = 1e-5
FAST = settings(max_examples=12, deadline=None)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    """Row softmax over the last axis; rows may contain -inf (masked) entries."""
    mx = s.max(axis=-1, keepdims=True)
    e = np.exp(s - mx)
    return e / e.sum(axis=-1, keepdims=True)


def _run(name: str, ranks: dict, inputs: dict, params: dict | None = None, out: str = "AV"):
    c = load_cascade(name, ranks=ranks, params=params)
    return evaluate(c, inputs)[out]


def _close(got: np.ndarray, want: np.ndarray, tol: float = TOL) -> None:
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    err = float(np.max(np.abs(got - want)))
    assert err <= tol, f"max abs error {err:.3g} > {tol:g}"


seeds = st.integers(0, 2**32 - 1)


# -- 1. causal softmax ----------------------------------------------------------------
def _causal_attention(q, k, v, scale):
    m, p = q.shape[0], k.shape[0]
    s = (q @ k.T) * scale
    mask = np.arange(p)[None, :] <= np.arange(m)[:, None]
    return _softmax_rows(np.where(mask, s, -np.inf)) @ v


@FAST
@given(seed=seeds, m=st.integers(1, 12), p1=st.integers(1, 4), p0=st.integers(1, 5),
       e=st.integers(1, 6), f=st.integers(1, 5), square=st.booleans(),
       scale=st.floats(0.05, 2.0))
@pytest.mark.parametrize("name", ["softmax-3pass-causal", "softmax-2pass-causal",
                                  "softmax-1pass-causal"])
def test_causal_softmax(name, seed, m, p1, p0, e, f, square, scale):
    p = p1 * p0
    if square:
        m = p  # self-attention: M == P
    r = _rng(seed)
    q, k, v = r.standard_normal((m, e)), r.standard_normal((p, e)), r.standard_normal((p, f))
    ranks = {"M": m, "P": p, "E": e, "F": f}
    if "1pass" in name:
        ranks["P0"] = p0
    got = _run(name, ranks, {"Q": q, "K": k, "V": v}, {"scale": scale})
    _close(got, _causal_attention(q, k, v, scale))


def test_causal_1pass_fully_masked_chunks_large_scores():
    """Query 0 sees only key 0: every later chunk is fully masked (LM = -inf)."""
    r = _rng(1)
    m = p = 16
    q, k, v = 30 * r.standard_normal((m, 8)), 30 * r.standard_normal((p, 8)), r.standard_normal((p, 4))
    got = _run("softmax-1pass-causal", {"M": m, "P": p, "E": 8, "F": 4, "P0": 4},
               {"Q": q, "K": k, "V": v}, {"scale": 1.0})
    _close(got, _causal_attention(q, k, v, 1.0))
    np.testing.assert_allclose(got[0], v[0], atol=1e-12)
