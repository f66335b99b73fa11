"""Rank sizes from input shapes (einsum.shapes), checked against NumPy written from the
definitions of the cascades."""

from __future__ import annotations

import numpy as np
import pytest

from einsum.errors import ConfigError
from einsum.interp import evaluate
from einsum.load import load_cascade
from einsum.shapes import fit_to_inputs, sizes_from_shapes


def _fit(name: str, arrays: dict, user: dict | None = None, params: dict | None = None):
    return fit_to_inputs(lambda r: load_cascade(name, ranks=r, params=params), user or {}, arrays,
                         file="in.npz")


def _attention(q, k, v, scale, mask=None):
    s = q @ k.T * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    a = np.exp(s - s.max(axis=1, keepdims=True))
    return (a / a.sum(axis=1, keepdims=True)) @ v


def _qkv(m, p, e, f, seed=0):
    rng = np.random.default_rng(seed)
    return {"Q": rng.standard_normal((m, e)), "K": rng.standard_normal((p, e)),
            "V": rng.standard_normal((p, f))}


@pytest.mark.parametrize("name", ["softmax-3pass", "softmax-2pass"])
@pytest.mark.parametrize("m,p,e,f", [(40, 64, 64, 64), (40, 48, 24, 8), (1, 3, 5, 2)])
def test_sizes_follow_the_arrays(name, m, p, e, f):
    x = _qkv(m, p, e, f)
    c = _fit(name, x)
    assert {r: c.ranks[r].size for r in "MPEF"} == {"M": m, "P": p, "E": e, "F": f}
    got = evaluate(c, x)["AV"]
    np.testing.assert_allclose(got, _attention(x["Q"], x["K"], x["V"], 0.125), rtol=1e-12, atol=1e-12)


def test_partition_parts_follow_the_parent():
    # P = 48 from K and V; P0 = 16 from --rank; P1 = P / P0 = 3 follows
    x = _qkv(40, 48, 24, 8, seed=1)
    c = _fit("softmax-1pass", x, {"P0": 16})
    assert (c.ranks["P"].size, c.ranks["P0"].size, c.ranks["P1"].size) == (48, 16, 3)
    np.testing.assert_allclose(evaluate(c, x)["AV"], _attention(x["Q"], x["K"], x["V"], 0.125),
                               rtol=1e-12, atol=1e-12)


def test_a_ragged_chunk_follows_the_arrays():
    # P = 48 keys in chunks of the default P0 = 32: two chunks, the last of 16 keys
    x = _qkv(40, 48, 24, 8, seed=2)
    c = _fit("softmax-1pass", x)
    assert (c.ranks["P"].size, c.ranks["P0"].size, c.ranks["P1"].size) == (48, 32, 2)
    np.testing.assert_allclose(evaluate(c, x)["AV"], _attention(x["Q"], x["K"], x["V"], 0.125),
                               rtol=1e-12, atol=1e-12)


def test_a_size_the_cascade_rejects_says_it_came_from_the_arrays():
    # gqa: H = 6 query heads (from Q) in groups of R = 4 need G = 2 K/V heads, K has 3
    rng = np.random.default_rng(0)
    x = {"Q": rng.standard_normal((5, 6, 4)), "K": rng.standard_normal((7, 3, 4)),
         "V": rng.standard_normal((7, 3, 2))}
    with pytest.raises(ConfigError, match=r"H=6 in chunks of R=4 needs G = ceil\(6/4\) = 2, not 3 "
                                          r"\(sizes taken from the input shapes in in.npz: "
                                          r"E=4, F=2, G=3, H=6, M=5, P=7"):
        _fit("gqa", x)


def test_alias_sets_the_rank_it_stands_for():
    # retention's keys are P: M (self-attention): K of 40 rows sets M = P = 40
    x = _qkv(40, 40, 24, 8, seed=2)
    c = _fit("retention", x)
    assert (c.ranks["M"].size, c.ranks["P"].size) == (40, 40)
    g, scale = 0.96875, 0.125
    mm, pp = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    decay = np.where(pp <= mm, g ** (mm - pp).astype(float), 0.0)
    want = (x["Q"] @ x["K"].T * scale * decay) @ x["V"]
    np.testing.assert_allclose(evaluate(c, x)["O"], want, rtol=1e-12, atol=1e-12)


def test_inputs_that_disagree_are_an_error():
    x = _qkv(40, 48, 24, 8)
    with pytest.raises(ConfigError, match=r"in.npz: inputs disagree on the size of rank M: Q dimension 0 "
                                          r"\(M\) is 40, but K dimension 0 \(P, an alias of M\) is 48"):
        _fit("retention", x)
    x["V"] = x["V"][:47]
    with pytest.raises(ConfigError, match=r"inputs disagree on the size of rank P: K dimension 0 \(P\) "
                                          r"is 48, but V dimension 0 \(P\) is 47"):
        _fit("softmax-3pass", x)


def test_user_ranks_win_and_break_an_alias():
    # --rank P=48 makes retention's keys a rank of their own (cross-attention lengths)
    x = _qkv(40, 48, 24, 8)
    c = _fit("retention", x, {"P": 48})
    assert (c.ranks["M"].size, c.ranks["P"].size, c.ranks["P"].kind) == (40, 48, "base")


def test_a_computed_rank_cannot_be_set_by_a_shape():
    x = _qkv(40, 40, 64, 64)
    x.update(ALPHA=np.ones(4), SIGMA=np.ones(4))
    with pytest.raises(ConfigError, match=r"Q dimension 0 \(M\) is 40, but rank M is computed from other "
                                          r"ranks \(its size is 196 here\)"):
        _fit("gmm-mask", x)
    c = _fit("gmm-mask", x, {"GY": 5, "GX": 8})  # 5 x 8 grid = 40 tokens
    assert c.ranks["M"].size == c.ranks["P"].size == 40


def test_wrong_number_of_dimensions():
    c = load_cascade("softmax-3pass")
    with pytest.raises(ConfigError, match=r"input 'K' has 3 dimensions \(2, 3, 4\), expected 2 \(P, E\)"):
        sizes_from_shapes(c, {"K": (2, 3, 4)})


def test_ranks_no_input_has_keep_their_default():
    # KW (the kernel size) is in no input: it stays 7; L, E, F follow the arrays
    rng = np.random.default_rng(3)
    x = {"Q": rng.standard_normal((20, 6)), "K": rng.standard_normal((20, 6)),
         "V": rng.standard_normal((20, 5))}
    c = _fit("neighborhood-1d", x)
    assert {r: c.ranks[r].size for r in ("L", "KW", "E", "F")} == {"L": 20, "KW": 7, "E": 6, "F": 5}
    # NATTEN border semantics with dilation 1: key j is a neighbour of i when |c - j| <= 3,
    # c = clamp(i, 3, 16)
    i, j = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    mask = np.abs(np.clip(i, 3, 16) - j) <= 3
    want = _attention(x["Q"], x["K"], x["V"], c.params["scale"], mask)
    np.testing.assert_allclose(evaluate(c, x)["AV"], want, rtol=1e-12, atol=1e-12)
