"""Linear-time and grouped attention cascades of the library against NumPy references.

Each reference is written here from the paper's definition (the unassociated, masked
M x P form, or an explicit loop over heads), never from the cascade; the shapes are
deliberately odd (M=37, P=53, nothing divides anything it need not), and the cascade
must match to 1e-12 in float64. Each cascade's pass counts (``einarray check``) are
pinned with the reason they are what they are.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from einsum.analysis import passes
from einsum.errors import ConfigError
from einsum.interp import evaluate
from einsum.load import load_cascade

TOL = 1e-12


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _run(name: str, ranks: dict, inputs: dict, params: dict | None = None, out: str = "AV"):
    return evaluate(load_cascade(name, ranks=ranks, params=params), inputs)[out]


def _err(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    return float(np.max(np.abs(got - want)))


def _close(got: np.ndarray, want: np.ndarray, tol: float = TOL) -> None:
    err = _err(got, want)
    assert err <= tol, f"max abs error {err:.3g} > {tol:g}"


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _causal(m: int, p: int) -> np.ndarray:
    return np.arange(p)[None, :] <= np.arange(m)[:, None]


def _qkv(seed: int, m: int, p: int, e: int, f: int):
    r = _rng(seed)
    return r.standard_normal((m, e)), r.standard_normal((p, e)), r.standard_normal((p, f))


# -- Performer (FAVOR+) ------------------------------------------------------------------
def _favor_features(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Positive random features of Choromanski et al. (2021), Lemma 1:
    phi(x) = exp(w_i . x - |x|^2 / 2) / sqrt(m), for each of the m rows w_i of W."""
    m = w.shape[0]
    return np.exp(x @ w.T - 0.5 * np.sum(x * x, axis=1, keepdims=True)) / math.sqrt(m)


def _performer_reference(q, k, v, w, causal: bool):
    """Attention with the kernel matrix A = phi(Q') phi(K')^T, Q' = Q / E^(1/4) and
    K' = K / E^(1/4), row-normalised (causally masked when asked): M x P, unassociated."""
    e = q.shape[1]
    s = e ** -0.25
    a = _favor_features(q * s, w) @ _favor_features(k * s, w).T
    if causal:
        a = np.where(_causal(*a.shape), a, 0.0)
    return (a / a.sum(axis=1, keepdims=True)) @ v


@pytest.mark.parametrize("m,p,e,f,nf,seed", [(37, 53, 11, 7, 19, 0), (53, 37, 5, 3, 29, 1),
                                             (1, 2, 1, 1, 1, 2)])
def test_performer(m, p, e, f, nf, seed):
    q, k, v = _qkv(seed, m, p, e, f)
    w = _rng(seed + 100).standard_normal((nf, e))
    got = _run("performer", {"M": m, "P": p, "E": e, "F": f, "R": nf},
               {"Q": q, "K": k, "V": v, "W": w}, {"qk_scale": e ** -0.25})
    _close(got, _performer_reference(q, k, v, w, causal=False))


@pytest.mark.parametrize("m,e,f,nf,seed", [(37, 11, 7, 19, 3), (23, 4, 9, 2, 4), (1, 3, 2, 5, 5)])
def test_performer_causal(m, e, f, nf, seed):
    q, k, v = _qkv(seed, m, m, e, f)
    w = _rng(seed + 100).standard_normal((nf, e))
    got = _run("performer-causal", {"M": m, "E": e, "F": f, "R": nf},
               {"Q": q, "K": k, "V": v, "W": w}, {"qk_scale": e ** -0.25})
    _close(got, _performer_reference(q, k, v, w, causal=True))
    # the last query sees every key: it is the non-causal cascade's last row
    full = _run("performer", {"M": m, "P": m, "E": e, "F": f, "R": nf},
                {"Q": q, "K": k, "V": v, "W": w}, {"qk_scale": e ** -0.25})
    _close(got[-1], full[-1])


def _orthogonal_features(r: np.random.Generator, nf: int, e: int) -> np.ndarray:
    """Blocks of e orthogonal rows with chi(e)-distributed norms (the paper's ORFs)."""
    blocks = []
    for _ in range(-(-nf // e)):
        qm, _ = np.linalg.qr(r.standard_normal((e, e)))
        blocks.append(qm.T * np.linalg.norm(r.standard_normal((e, e)), axis=1)[:, None])
    return np.concatenate(blocks)[:nf]


def test_performer_default_scale_estimates_softmax_attention():
    """The default qk_scale 1/sqrt(sqrt(64)): with many orthogonal random features the
    cascade approaches softmax attention with scale 1/sqrt(E) (the unbiased estimate of
    exp(q.k / sqrt(E)); the error shrinks like 1/sqrt(R))."""
    c = load_cascade("performer")
    assert c.params["qk_scale"] == pytest.approx(64 ** -0.25, rel=1e-15)
    m, p, e, f = 9, 13, 64, 4
    q, k, v = _qkv(11, m, p, e, f)
    q, k = 0.5 * q, 0.5 * k
    want = _softmax_rows(q @ k.T / math.sqrt(e)) @ v
    errs = []
    for nf in (64, 16384):
        w = _orthogonal_features(_rng(12), nf, e)
        got = _run("performer", {"M": m, "P": p, "E": e, "F": f, "R": nf},
                   {"Q": q, "K": k, "V": v, "W": w})
        errs.append(_err(got, want))
    assert errs[1] < 0.04 and errs[1] < errs[0] / 10, errs  # 0.625 -> 0.029 at seed 12
    # ... and is far closer to it than to softmax attention with another scale
    for s in (1 / e, 1 / math.sqrt(math.sqrt(e)), 1.0):
        assert errs[1] < _err(got, _softmax_rows(q @ k.T * s) @ v) / 3, s


# -- RetNet, recurrent form ----------------------------------------------------------------
@pytest.mark.parametrize("m,e,f,gamma,scale,seed", [(37, 11, 7, 0.96875, 0.125, 0),
                                                    (29, 3, 13, 0.5, 0.7, 1), (1, 2, 2, 1.0, 1.0, 2)])
def test_retention_recurrent_equals_parallel(m, e, f, gamma, scale, seed):
    q, k, v = _qkv(seed, m, m, e, f)
    want = np.zeros((m, f))
    for n in range(m):  # o_n = sum_{j <= n} gamma^(n-j) (q_n . k_j) v_j  (Sun et al., Eq. 5)
        for j in range(n + 1):
            want[n] += gamma ** (n - j) * scale * (q[n] @ k[j]) * v[j]
    params = {"gamma": gamma, "scale": scale}
    ins = {"Q": q, "K": k, "V": v}
    rec = _run("retention-recurrent", {"M": m, "E": e, "F": f}, ins, params, out="O")
    par = _run("retention", {"M": m, "E": e, "F": f}, ins, params, out="O")
    _close(rec, want)
    _close(rec, par)


# -- causal linear attention --------------------------------------------------------------
def _elu1(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1.0, np.exp(x))


@pytest.mark.parametrize("m,e,f,seed", [(37, 11, 7, 0), (53, 2, 5, 1), (1, 1, 1, 2)])
def test_linear_causal_equals_masked_parallel_form(m, e, f, seed):
    q, k, v = _qkv(seed, m, m, e, f)
    sim = np.where(_causal(m, m), _elu1(q) @ _elu1(k).T, 0.0)  # Katharopoulos et al., Eq. 9
    want = (sim / sim.sum(axis=1, keepdims=True)) @ v
    got = _run("linear-causal", {"M": m, "E": e, "F": f}, {"Q": q, "K": k, "V": v})
    _close(got, want)
    # same feature map as the non-causal cascade: the last query sees every key
    full = _run("linear", {"M": m, "P": m, "E": e, "F": f}, {"Q": q, "K": k, "V": v})
    _close(got[-1], full[-1])


# -- sliding-window causal attention ----------------------------------------------------
@pytest.mark.parametrize("m,w,e,f,seed", [(37, 5, 11, 7, 0), (37, 1, 3, 2, 1), (37, 37, 4, 3, 2),
                                          (23, 50, 5, 4, 3), (53, 8, 2, 9, 4)])
def test_sliding_window_causal(m, w, e, f, seed):
    q, k, v = _qkv(seed, m, m, e, f)
    scale = 1 / math.sqrt(e)
    i, j = np.arange(m)[:, None], np.arange(m)[None, :]
    mask = (i - w < j) & (j <= i)  # Mistral: query i attends keys i-w < j <= i
    want = _softmax_rows(np.where(mask, q @ k.T * scale, -np.inf)) @ v
    got = _run("sliding-window-causal", {"M": m, "W": w, "E": e, "F": f},
               {"Q": q, "K": k, "V": v}, {"scale": scale})
    _close(got, want)
    if w == 1:  # each query sees only itself
        _close(got, v)


def test_sliding_window_work_is_linear_in_the_sequence():
    """No Einsum iterates M x M: every Einsum has at most M * W * 64 points (E = F = 64),
    and the filtered gather has exactly the M*W - W(W-1)/2 in-sequence (query, key) pairs
    per feature."""
    from einsum.analysis import op_counts

    for m in (256, 512):
        oc = op_counts(load_cascade("sliding-window-causal", ranks={"M": m, "W": 16}))
        assert max(o.points for o in oc.values()) == m * 16 * 64
        assert oc["KG"].points == (m * 16 - 16 * 15 // 2) * 64


# -- grouped-query attention ------------------------------------------------------------
@pytest.mark.parametrize("m,p,h,r,e,f,seed", [(37, 53, 6, 3, 11, 7, 0),  # G = 2
                                              (37, 53, 6, 6, 5, 3, 1),   # G = 1: multi-query
                                              (37, 53, 5, 1, 4, 6, 2),   # R = 1: multi-head
                                              (13, 7, 15, 5, 3, 2, 3)])  # G = 3
def test_gqa(m, p, h, r, e, f, seed):
    g = h // r
    rng = _rng(seed)
    q = rng.standard_normal((m, h, e))
    k, v = rng.standard_normal((p, g, e)), rng.standard_normal((p, g, f))
    scale = 1 / math.sqrt(e)
    want = np.zeros((m, h, f))
    for head in range(h):  # query head h reads K/V head h // R (Ainslie et al., Sec. 2.2)
        kv = head // r
        want[:, head] = _softmax_rows(q[:, head] @ k[:, kv].T * scale) @ v[:, kv]
    got = _run("gqa", {"M": m, "P": p, "H": h, "R": r, "E": e, "F": f},
               {"Q": q, "K": k, "V": v}, {"scale": scale})
    _close(got, want)


def test_gqa_with_a_partial_last_group():
    # H = 6 query heads in groups of R = 4: G = ceil(6/4) = 2 K/V heads, the second
    # shared by query heads 4 and 5 only (a ragged partition, einsum.ragged)
    m, p, h, r, e, f = 9, 11, 6, 4, 5, 3
    c = load_cascade("gqa", ranks={"M": m, "P": p, "H": h, "R": r, "E": e, "F": f})
    assert c.ranks["G"].size == 2
    rng = _rng(7)
    q = rng.standard_normal((m, h, e))
    k, v = rng.standard_normal((p, 2, e)), rng.standard_normal((p, 2, f))
    want = np.zeros((m, h, f))
    for head in range(h):
        want[:, head] = _softmax_rows(q[:, head] @ k[:, head // r].T * 0.125) @ v[:, head // r]
    _close(_run("gqa", {"M": m, "P": p, "H": h, "R": r, "E": e, "F": f},
                {"Q": q, "K": k, "V": v}, {"scale": 0.125}), want)
    with pytest.raises(ConfigError, match=r"gqa.yaml:\d+ einsum.partitions.H: H=6 in chunks of R=4 "
                                          r"needs G = ceil\(6/4\) = 2, not 3"):
        load_cascade("gqa", ranks={"H": 6, "R": 4, "G": 3})


# -- passes -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,want", [
    # linear-time forms: one pass over the sequence; the state (phi(K)^T V, or S_n) is
    # built while the keys stream and every output reads a finished value
    ("performer", {"M": 1, "E": 1, "P": 1, "F": 1, "R": 1}),
    # prefix sums are recurrences over p: S[m+1] is ready when key m has streamed by
    ("performer-causal", {"M": 1, "E": 1, "P": 1, "F": 1, "R": 1}),
    ("linear-causal", {"M": 1, "E": 1, "P": 1, "F": 1}),
    ("retention-recurrent", {"M": 1, "E": 1, "P": 1, "F": 1}),
    # softmax over the window is 2-pass (max, then exp/sum) over W, one pass over M
    ("sliding-window-causal", {"M": 1, "E": 1, "F": 1, "W": 2}),
    # 2-pass softmax per query head: max over p, then exp, sum and SN.V over p
    ("gqa", {"M": 1, "H": 1, "E": 1, "P": 2, "F": 1}),
])
def test_pass_counts(name, want):
    assert passes(load_cascade(name)) == want


@pytest.mark.parametrize("name", ["performer", "performer-causal", "retention-recurrent",
                                  "linear-causal", "sliding-window-causal", "gqa"])
def test_cites_its_source(name):
    c = load_cascade(name)
    assert c.name == name
    desc = " ".join(c.description.split())
    assert len(desc) > 200 and any(y in desc for y in ("2019", "2020", "2021", "2023"))
