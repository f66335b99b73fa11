"""The NumPy reference interpreter against direct NumPy code (float64, max abs error 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum.errors import ConfigError
from einsum.interp import EvalError, evaluate, random_inputs
from einsum.load import load_cascade
from einsum.yamlsrc import loads
from einsum.load import cascade_from_data

TOL = 1e-9


def softmax_attention(Q, K, V, scale):
    S = Q @ K.T * scale
    S = S - S.max(axis=1, keepdims=True)
    A = np.exp(S)
    return (A / A.sum(axis=1, keepdims=True)) @ V


def cascade(text: str, **kw):
    data, src = loads(text, "test.yaml")
    return cascade_from_data(data["einsum"], src, ("einsum",), **kw)


@pytest.mark.parametrize("name", ["softmax-3pass", "softmax-2pass", "softmax-1pass"])
@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 24), p0=st.integers(1, 8), p1=st.integers(1, 6), e=st.integers(1, 9),
       f=st.integers(1, 9), seed=st.integers(0, 2**31), spread=st.sampled_from([0.1, 1.0, 30.0]))
def test_softmax_cascades_match_numpy(name, m, p0, p1, e, f, seed, spread):
    ranks = {"M": m, "P": p0 * p1, "E": e, "F": f}
    if name == "softmax-1pass":
        ranks["P0"] = p0
    c = load_cascade(name, ranks=ranks, params={"scale": 0.3})
    rng = np.random.default_rng(seed)
    x = {t: rng.standard_normal(c.tensors[t].shape) * spread for t in c.inputs}
    got = evaluate(c, x)["AV"]
    want = softmax_attention(x["Q"], x["K"], x["V"], 0.3)
    assert np.max(np.abs(got - want)) <= TOL * max(1.0, np.max(np.abs(want)))


HEAD = """einsum:
  version: 1
  name: t
"""


def test_filter_index_values_and_where():
    c = cascade(HEAD + """
  ranks: {M: 7, P: 7, F: 3}
  params: {slope: 0.25}
  inputs: {S: [M, P], V: [P, F]}
  outputs: [O, G]
  expressions:
    - B[m,p] = S[m,p] - slope * (m - p)
    - G[m] = max(p) B[m,p] where p <= m
    - O[m,f] = where(B[m,p] > 0, B[m,p], 0) * V[p,f] where p <= m
""")
    rng = np.random.default_rng(1)
    S, V = rng.standard_normal((7, 7)), rng.standard_normal((7, 3))
    out = evaluate(c, {"S": S, "V": V})
    m, p = np.meshgrid(np.arange(7), np.arange(7), indexing="ij")
    B = S - 0.25 * (m - p)
    causal = p <= m
    np.testing.assert_allclose(out["G"], np.where(causal, B, -np.inf).max(1), atol=TOL)
    np.testing.assert_allclose(out["O"], (np.where(causal, np.maximum(B, 0), 0)) @ V, atol=TOL)


def test_index_expressions_windows_and_clamp():
    c = cascade(HEAD + """
  ranks: {L: 10, W: 3, C: 2}
  params: {d: 2}
  inputs: {X: [L, C]}
  outputs: [Y]
  expressions:
    - Y[l,w,c] = X[clamp(l + (w - 1) * d, 0, L - 1), c]
""")
    X = np.arange(20.0).reshape(10, 2)
    Y = evaluate(c, {"X": X})["Y"]
    for l in range(10):
        for w in range(3):
            np.testing.assert_array_equal(Y[l, w], X[min(max(l + (w - 1) * 2, 0), 9)])


def test_alias_rank_comparison_count_topk():
    c = cascade(HEAD + """
  ranks: {N: 5, X: 6, Y: X}
  params: {k: 2}
  inputs: {G: [N, X]}
  outputs: [SEL]
  expressions:
    - R[n,x] = where(G[n,y] > G[n,x] or (G[n,y] == G[n,x] and y < x), 1, 0)
    - SEL[n,x] = where(R[n,x] < k, 1, 0)
""")
    rng = np.random.default_rng(3)
    G = rng.integers(0, 3, (5, 6)).astype(float)  # ties on purpose
    sel = evaluate(c, {"G": G})["SEL"]
    for n in range(5):
        order = sorted(range(6), key=lambda x: (-G[n, x], x))[:2]
        np.testing.assert_array_equal(np.flatnonzero(sel[n]), sorted(order))


def test_recurrence_running_sum_and_final_value():
    c = cascade(HEAD + """
  ranks: {M: 3, P: 5}
  inputs: {X: [M, P]}
  outputs: [T]
  expressions:
    - R[m,0] = 0
    - R[m,p+1] = 0.5 * R[m,p] + X[m,p]
    - T[m] = R[m,P]
""")
    X = np.random.default_rng(0).standard_normal((3, 5))
    r = np.zeros(3)
    for p in range(5):
        r = 0.5 * r + X[:, p]
    np.testing.assert_allclose(evaluate(c, {"X": X})["T"], r, atol=TOL)


def test_derived_rank_sizes_and_padding():
    c = cascade(HEAD + """
  ranks: {H: 4, HP: "H + 2*halo"}
  params: {halo: 1}
  inputs: {X: [H]}
  outputs: [XP]
  expressions:
    - XP[hp] = where(hp >= halo and hp < H + halo, X[clamp(hp - halo, 0, H - 1)], 0)
""")
    assert c.tensors["XP"].shape == (6,)
    np.testing.assert_array_equal(evaluate(c, {"X": np.array([1.0, 2, 3, 4])})["XP"], [0, 1, 2, 3, 4, 0])


def test_three_factor_contraction_and_post_divisor():
    c = cascade(HEAD + """
  ranks: {M: 4, P: 5, E: 3, F: 2}
  inputs: {Q: [M, E], K: [P, E], D: [M, P], V: [P, F], Z: [M]}
  outputs: [O, S]
  expressions:
    - S[m,p] = Q[m,e] * K[p,e]
    - O[m,f] = -S[m,p] * D[m,p] * V[p,f] / Z[m]
""")
    x = random_inputs(c, 4)
    out = evaluate(c, x)
    want = -((x["Q"] @ x["K"].T) * x["D"]) @ x["V"] / x["Z"][:, None]
    np.testing.assert_allclose(out["O"], want, atol=TOL)


def test_diagonal_access_uses_general_path():
    c = cascade(HEAD + """
  ranks: {M: 4}
  inputs: {A: [M, M]}
  outputs: [T]
  expressions:
    - T[m] = A[m,m]
""")
    A = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(evaluate(c, {"A": A})["T"], np.diag(A))


def test_out_of_range_subscript_is_an_eval_error():
    c = cascade(HEAD + """
  ranks: {L: 4}
  inputs: {X: [L]}
  outputs: [Y]
  expressions:
    - Y[l] = X[l + 1]
""")
    with pytest.raises(EvalError, match=r"Y: subscript 0 of X\[\(l \+ 1\)\] ranges over \[1, 4\], outside 0..3"):
        evaluate(c, {"X": np.zeros(4)})


def test_missing_and_misshapen_inputs():
    c = load_cascade("softmax-3pass", ranks={"M": 2, "P": 3, "E": 2, "F": 2})
    x = random_inputs(c)
    with pytest.raises(ConfigError, match="missing input 'V'"):
        evaluate(c, {k: v for k, v in x.items() if k != "V"})
    x["K"] = np.zeros((2, 2))
    with pytest.raises(ConfigError, match=r"input 'K' has shape \(2, 2\), expected \(3, 2\) \(P=3, E=2\)"):
        evaluate(c, x)


def test_rank_override_recomputes_partition():
    c = load_cascade("softmax-1pass", ranks={"P": 256})
    assert c.ranks["P1"].size == 256 // c.ranks["P0"].size
    assert c.ranks["P1"].kind == "part" and c.ranks["P1"].root == "P"


@pytest.mark.parametrize("dtypes,want", [
    (("float32", "float32", "float32"), "float32"),
    (("float32", "float64", "float32"), "float64"),
    (("float16", "float32", "float16"), "float32"),
    (("int16", "int16", "int32"), "float64"),      # integer codes: float64 results
    (("int32", "float32", "float32"), "float32"),  # floats decide; integers take no part
])
def test_output_dtype_follows_the_floating_point_inputs(dtypes, want):
    from einsum.interp import output_dtype

    c = load_cascade("softmax-3pass")
    arrays = {t: np.zeros(c.tensors[t].shape, dtype=d) for t, d in zip(("Q", "K", "V"), dtypes)}
    assert output_dtype(c, arrays) == np.dtype(want)
