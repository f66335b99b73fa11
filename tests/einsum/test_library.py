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


# -- 2. HaloNet blocked local attention -------------------------------------------------
def _halo_reference(q, k, v, b, h, scale):
    """Per query pixel: softmax over the zero-padded (b+2h)^2 window of its block."""
    hh, ww, c = q.shape
    kp = np.pad(k, ((h, h), (h, h), (0, 0)))
    vp = np.pad(v, ((h, h), (h, h), (0, 0)))
    out = np.zeros((hh, ww, v.shape[2]))
    for y in range(hh):
        for x in range(ww):
            y0, x0 = (y // b) * b, (x // b) * b  # block origin; padded window starts there
            kk = kp[y0:y0 + b + 2 * h, x0:x0 + b + 2 * h].reshape(-1, c)
            vv = vp[y0:y0 + b + 2 * h, x0:x0 + b + 2 * h].reshape(-1, v.shape[2])
            out[y, x] = _softmax_rows(kk @ q[y, x] * scale) @ vv
    return out


@FAST
@given(seed=seeds, b=st.integers(1, 3), halo=st.integers(0, 3), h1=st.integers(1, 3),
       w1=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 3), scale=st.floats(0.1, 2.0))
def test_halo(seed, b, halo, h1, w1, c, f, scale):
    r = _rng(seed)
    hh, ww = h1 * b, w1 * b
    q, k, v = (r.standard_normal((hh, ww, c)), r.standard_normal((hh, ww, c)),
               r.standard_normal((hh, ww, f)))
    got = _run("halo", {"H": hh, "W": ww, "C": c, "F": f}, {"Q": q, "K": k, "V": v},
               {"block": b, "halo": halo, "scale": scale})
    _close(got, _halo_reference(q, k, v, b, halo, scale))


def test_halo_padding_takes_part_in_softmax():
    """A 1x1 map with halo 1: the query sees itself plus 8 zero keys/values."""
    q, k, v = np.array([[[1.0]]]), np.array([[[2.0]]]), np.array([[[3.0]]])
    got = _run("halo", {"H": 1, "W": 1, "C": 1, "F": 1}, {"Q": q, "K": k, "V": v},
               {"block": 1, "halo": 1, "scale": 1.0})
    want = 3.0 * math.exp(2.0) / (math.exp(2.0) + 8.0)
    assert abs(got[0, 0, 0] - want) < 1e-12


# -- 3. neighborhood attention ----------------------------------------------------------
def _natten_mask(n: int, k: int, d: int) -> np.ndarray:
    """NATTEN's neighbour relation along one axis as a full n x n boolean mask."""
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    c = np.clip(i, (k * d - 1) // 2, (n - 1) - (k * d - 1) // 2)
    return (i % d == j % d) & (np.abs(c - j) <= (k * d) // 2)


def _masked_attention(q, k, v, mask, scale):
    return _softmax_rows(np.where(mask, (q @ k.T) * scale, -np.inf)) @ v


@settings(max_examples=25, deadline=None)
@given(seed=seeds, k=st.sampled_from([1, 3, 5, 7]), d=st.integers(1, 4), extra=st.integers(0, 9),
       e=st.integers(1, 5), f=st.integers(1, 4), scale=st.floats(0.1, 2.0))
def test_neighborhood_1d(seed, k, d, extra, e, f, scale):
    n = k * d + extra
    r = _rng(seed)
    q, kk, v = r.standard_normal((n, e)), r.standard_normal((n, e)), r.standard_normal((n, f))
    mask = _natten_mask(n, k, d)
    assert np.all(mask.sum(axis=1) == k)  # the definition always yields k neighbours
    got = _run("neighborhood-1d", {"L": n, "KW": k, "E": e, "F": f}, {"Q": q, "K": kk, "V": v},
               {"dil": d, "scale": scale})
    _close(got, _masked_attention(q, kk, v, mask, scale))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, ky=st.sampled_from([1, 3, 5]), kx=st.sampled_from([1, 3, 5]),
       dy=st.integers(1, 3), dx=st.integers(1, 3), ey=st.integers(0, 4), ex=st.integers(0, 4),
       e=st.integers(1, 4), f=st.integers(1, 3), scale=st.floats(0.1, 2.0))
def test_neighborhood_2d(seed, ky, kx, dy, dx, ey, ex, e, f, scale):
    hh, ww = ky * dy + ey, kx * dx + ex
    r = _rng(seed)
    q, kk, v = (r.standard_normal((hh, ww, e)), r.standard_normal((hh, ww, e)),
                r.standard_normal((hh, ww, f)))
    # (iy,ix) ~ (jy,jx) iff iy ~ jy along H and ix ~ jx along W
    mask = (_natten_mask(hh, ky, dy)[:, None, :, None]
            & _natten_mask(ww, kx, dx)[None, :, None, :]).reshape(hh * ww, hh * ww)
    got = _run("neighborhood-2d", {"H": hh, "W": ww, "KY": ky, "KX": kx, "E": e, "F": f},
               {"Q": q, "K": kk, "V": v}, {"dil_y": dy, "dil_x": dx, "scale": scale})
    want = _masked_attention(q.reshape(hh * ww, e), kk.reshape(hh * ww, e),
                             v.reshape(hh * ww, f), mask, scale).reshape(hh, ww, f)
    _close(got, want)


# -- 4. Gaussian mixture mask -----------------------------------------------------------
@FAST
@given(seed=seeds, gy=st.integers(1, 4), gx=st.integers(1, 4), g=st.integers(1, 3),
       e=st.integers(1, 5), f=st.integers(1, 4), eps=st.sampled_from([0.0, 1e-5]),
       scale=st.floats(0.1, 2.0))
def test_gmm_mask(seed, gy, gx, g, e, f, eps, scale):
    r = _rng(seed)
    n = gy * gx
    q, k, v = r.standard_normal((n, e)), r.standard_normal((n, e)), r.standard_normal((n, f))
    alpha = 2 * r.standard_normal(g)
    sigma = np.abs(r.standard_normal(g) * 3) + 0.3
    pos = np.array([(i // gx, i % gx) for i in range(n)], dtype=float)  # patch i on the grid
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    mask = sum(alpha[j] * np.exp(-dist**2 / (2 * (sigma[j] ** 2 + eps))) for j in range(g))
    want = _softmax_rows((q @ k.T) * scale * mask) @ v
    got = _run("gmm-mask", {"GY": gy, "GX": gx, "E": e, "F": f, "G": g},
               {"Q": q, "K": k, "V": v, "ALPHA": alpha, "SIGMA": sigma},
               {"scale": scale, "eps": eps})
    _close(got, want)


# -- 5. retention: parallel and chunkwise ---------------------------------------------
@settings(max_examples=20, deadline=None)
@given(seed=seeds, m1=st.integers(1, 5), m0=st.integers(1, 6), e=st.integers(1, 5),
       f=st.integers(1, 4), gamma=st.floats(0.5, 1.0), scale=st.floats(0.1, 1.0))
def test_retention_parallel_and_chunkwise(seed, m1, m0, e, f, gamma, scale):
    n = m1 * m0
    r = _rng(seed)
    q, k, v = r.standard_normal((n, e)), r.standard_normal((n, e)), r.standard_normal((n, f))
    want = np.zeros((n, f))
    for i in range(n):  # o_i = sum_{j <= i} gamma^(i-j) (q_i . k_j) v_j
        for j in range(i + 1):
            want[i] += gamma ** (i - j) * scale * (q[i] @ k[j]) * v[j]
    params = {"gamma": gamma, "scale": scale}
    par = _run("retention", {"M": n, "E": e, "F": f}, {"Q": q, "K": k, "V": v}, params, out="O")
    chk = _run("retention-chunkwise", {"M": n, "M0": m0, "E": e, "F": f},
               {"Q": q, "K": k, "V": v}, params, out="O")
    _close(par, want)
    _close(chk, want)
    _close(chk, par)


# -- 6. linear attention ----------------------------------------------------------------
@FAST
@given(seed=seeds, m=st.integers(1, 10), p=st.integers(1, 10), e=st.integers(1, 6),
       f=st.integers(1, 5))
def test_linear_attention(seed, m, p, e, f):
    r = _rng(seed)
    q, k, v = r.standard_normal((m, e)), r.standard_normal((p, e)), r.standard_normal((p, f))

    def phi(x):
        return np.where(x > 0, x + 1.0, np.exp(x))  # elu(x) + 1

    sim = phi(q) @ phi(k).T  # unassociated form: similarity matrix, then normalise rows
    want = (sim / sim.sum(axis=1, keepdims=True)) @ v
    got = _run("linear", {"M": m, "P": p, "E": e, "F": f}, {"Q": q, "K": k, "V": v})
    _close(got, want)


# -- 7. Linformer -----------------------------------------------------------------------
@FAST
@given(seed=seeds, m=st.integers(1, 10), p=st.integers(1, 12), j=st.integers(1, 6),
       e=st.integers(1, 5), f=st.integers(1, 4), scale=st.floats(0.1, 1.0))
def test_linformer(seed, m, p, j, e, f, scale):
    r = _rng(seed)
    q, k, v = r.standard_normal((m, e)), r.standard_normal((p, e)), r.standard_normal((p, f))
    ep, fp = r.standard_normal((j, p)) / p, r.standard_normal((j, p)) / p
    want = _softmax_rows(q @ (ep @ k).T * scale) @ (fp @ v)
    got = _run("linformer", {"M": m, "P": p, "J": j, "E": e, "F": f},
               {"Q": q, "K": k, "V": v, "E_proj": ep, "F_proj": fp}, {"scale": scale})
    _close(got, want)


# -- 9. non-attention layers ------------------------------------------------------------
_erf = np.vectorize(math.erf)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


@FAST
@given(seed=seeds, m=st.integers(1, 8), n=st.integers(1, 8), k=st.integers(1, 8))
def test_gemm(seed, m, n, k):
    r = _rng(seed)
    a, b = r.standard_normal((m, k)), r.standard_normal((k, n))
    want = np.array([[sum(a[i, j] * b[j, c] for j in range(k)) for c in range(n)] for i in range(m)])
    _close(_run("gemm", {"M": m, "N": n, "K": k}, {"A": a, "B": b}, out="C"), want)


@FAST
@given(seed=seeds, t=st.integers(1, 6), d=st.integers(1, 6), h=st.integers(1, 8))
def test_mlp(seed, t, d, h):
    r = _rng(seed)
    x, w1, b1 = r.standard_normal((t, d)), r.standard_normal((d, h)), r.standard_normal(h)
    w2, b2 = r.standard_normal((h, d)), r.standard_normal(d)
    want = _gelu(x @ w1 + b1) @ w2 + b2
    got = _run("mlp", {"T": t, "D": d, "H": h},
               {"X": x, "W1": w1, "B1": b1, "W2": w2, "B2": b2}, out="Y")
    _close(got, want)


@FAST
@given(seed=seeds, t=st.integers(1, 6), d=st.integers(1, 10), eps=st.sampled_from([1e-6, 1e-5]))
def test_layernorm(seed, t, d, eps):
    r = _rng(seed)
    x = 3 * r.standard_normal((t, d)) + r.standard_normal()
    g, b = r.standard_normal(d), r.standard_normal(d)
    want = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps) * g + b
    got = _run("layernorm", {"T": t, "D": d}, {"X": x, "GAMMA": g, "BETA": b}, {"eps": eps},
               out="Y")
    _close(got, want)


@FAST
@given(seed=seeds, t=st.integers(1, 6), nh=st.integers(1, 3), e=st.integers(1, 4),
       d=st.integers(1, 6), scale=st.floats(0.1, 1.0))
def test_mha(seed, t, nh, e, d, scale):
    r = _rng(seed)
    x = r.standard_normal((t, d))
    w = {n: r.standard_normal((d, nh, e)) for n in ("WQ", "WK", "WV")}
    b = {n: r.standard_normal((nh, e)) for n in ("BQ", "BK", "BV")}
    wo, bo = r.standard_normal((nh, e, d)), r.standard_normal(d)
    heads = []
    for i in range(nh):  # one head at a time, as in the transformer paper
        qi = x @ w["WQ"][:, i, :] + b["BQ"][i]
        ki = x @ w["WK"][:, i, :] + b["BK"][i]
        vi = x @ w["WV"][:, i, :] + b["BV"][i]
        heads.append(_softmax_rows(qi @ ki.T * scale) @ vi)
    want = np.concatenate(heads, axis=1) @ wo.reshape(nh * e, d) + bo
    got = _run("mha", {"T": t, "D": d, "NH": nh, "E": e},
               {"X": x, **w, **b, "WO": wo, "BO": bo}, {"scale": scale}, out="Y")
    _close(got, want)


def _moe_reference(x, wg, w1, b1, w2, b2, topk):
    """Route (top-k, lower index wins ties), gather tokens per expert, run the expert,
    scatter-accumulate score * output."""
    t, d = x.shape
    logits = x @ wg
    out = np.zeros((t, d))
    chosen = np.argsort(-logits, axis=1, kind="stable")[:, :topk]  # stable: ties -> lower index
    sel_logits = np.take_along_axis(logits, chosen, axis=1)
    scores = _softmax_rows(sel_logits)
    for ex in range(wg.shape[1]):
        tok, slot = np.nonzero(chosen == ex)  # gather the tokens routed to expert ex
        if tok.size == 0:
            continue
        y = _gelu(x[tok] @ w1[ex] + b1[ex]) @ w2[ex] + b2[ex]
        np.add.at(out, tok, scores[tok, slot][:, None] * y)  # scatter-accumulate
    return out


@settings(max_examples=15, deadline=None)
@given(seed=seeds, t=st.integers(1, 6), d=st.integers(1, 5), nx=st.integers(1, 6),
       h=st.integers(1, 5), topk=st.integers(1, 6), ties=st.booleans())
def test_moe(seed, t, d, nx, h, topk, ties):
    topk = min(topk, nx)
    r = _rng(seed)
    x = r.standard_normal((t, d))
    wg = r.standard_normal((d, nx))
    if ties:  # small integers: exact logits with many ties, which break to the lower index
        x = r.integers(-2, 3, (t, d)).astype(float)
        wg = r.integers(-1, 2, (d, nx)).astype(float)
        wg[:, -1] = wg[:, 0]
    w1, b1 = r.standard_normal((nx, d, h)), r.standard_normal((nx, h))
    w2, b2 = r.standard_normal((nx, h, d)), r.standard_normal((nx, d))
    c = load_cascade("moe", ranks={"T": t, "D": d, "X": nx, "H": h}, params={"topk": topk})
    env = evaluate(c, {"IN": x, "WG": wg, "W1": w1, "B1": b1, "W2": w2, "B2": b2})
    assert np.all(env["SEL"].sum(axis=1) == topk)  # exactly top-k experts, ties included
    _close(env["OUT"], _moe_reference(x, wg, w1, b1, w2, b2, topk))


# -- 8. Edge-MoE single-pass softmax with the approximate exp ---------------------------
# Error model of einsum.approx.exp_approx (its docstring; Q8.16 in, Q16.16 out) for
# x <= 0: |exp_approx(x) - exp(x)| <= EPS(X) * exp(x) + ETA when |x| <= X, with the
# relative part 6e-5 + X * 2.7e-6 plus 2**-17 from input quantization and the absolute
# part ETA = 2**-17 (half an output LSB).
EXP_ETA = 2.0**-17


def _exp_eps(xmax: float) -> float:
    return 6e-5 + xmax * 2.7e-6 + 2.0**-17


def edge_moe_bound(srow: np.ndarray, vmax: float) -> float:
    """Max abs error of one output row of edge-moe-softmax vs float softmax attention.

    ``srow`` are the row's scores, so every exp argument lies in [-X, 0] with
    X = max - min; eps = _exp_eps(X), eta = EXP_ETA. Let S_k >= 1 be the exact running
    sum (relative to the running max) after k keys and r_k a bound on the relative
    error of the computed sum; the first step is exact (exp(0) = 1, r_1 = 0). An add
    step S_{k+1} = S_k + e gives r_{k+1} <= (r_k S_k + eps e + eta) / S_{k+1}; a rescale
    S_{k+1} = S_k e + 1 gives r_{k+1} <= (S_k e (eps + r_k (1 + eps)) + S_k eta (1 + r_k))
    / S_{k+1}. With rho = r_P and S = S_P, each weight exp(s_p - max)/sum has error
    (delta_p - e_p r)/(S (1 + r)), |delta_p| <= eps e_p + eta, whose sum over p is at
    most (eps + rho + P eta / S) / (1 - rho); times max|V| bounds the row's error.
    (In the worst case S_k = k at every rescale, so rho <= prod_k (1 + eps + k eta) - 1:
    the eta term grows like P^2 eta / 2; the running bound here follows the data.)
    """
    eps, eta = _exp_eps(float(srow.max() - srow.min())), EXP_ETA
    mx, big_s, r = srow[0], 1.0, 0.0
    for a in srow[1:]:
        d = mx - a
        if d < 0:
            e = math.exp(d)
            new = big_s * e + 1.0
            r = (big_s * e * (eps + r * (1 + eps)) + big_s * eta * (1 + r)) / new
            mx = a
        else:
            e = math.exp(-d)
            new = big_s + e
            r = (r * big_s + eps * e + eta) / new
        big_s = new
    p = srow.size
    return vmax * (eps + r + p * eta / big_s) / (1 - r)


def _edge_moe_reference(q, k, v, scale, exp_fn):
    """Edge-MoE's per-key loop written directly: start from max = -inf, sum = 0."""
    s = (q @ k.T) * scale
    m, p = s.shape
    out = np.zeros((m, v.shape[1]))
    for i in range(m):
        mx, sm = -np.inf, 0.0
        for j in range(p):
            a = s[i, j]
            d = mx - a
            if d < 0:
                sm = (sm * float(exp_fn(np.array([d]))[0]) if np.isfinite(d) else 0.0) + 1.0
                mx = a
            else:
                sm += float(exp_fn(np.array([-d]))[0])
        out[i] = (exp_fn(s[i] - mx) / sm) @ v
    return out


@settings(max_examples=15, deadline=None)
@given(seed=seeds, m=st.integers(1, 6), p=st.integers(1, 24), e=st.integers(1, 6),
       f=st.integers(1, 4), amp=st.floats(0.1, 3.0), scale=st.floats(0.1, 1.0))
def test_edge_moe_softmax(seed, m, p, e, f, amp, scale):
    from einsum.approx import exp_approx

    r = _rng(seed)
    q, k = amp * r.standard_normal((m, e)), amp * r.standard_normal((p, e))
    v = r.standard_normal((p, f))
    got = _run("edge-moe-softmax", {"M": m, "P": p, "E": e, "F": f},
               {"Q": q, "K": k, "V": v}, {"scale": scale})
    # 1. the same algorithm written directly in NumPy with the same golden exp
    _close(got, _edge_moe_reference(q, k, v, scale, exp_approx))
    # 2. with exact exp the algorithm is softmax attention ...
    s = (q @ k.T) * scale
    exact = _softmax_rows(s) @ v
    _close(_edge_moe_reference(q, k, v, scale, np.exp), exact, 1e-12)
    # ... and with exp_approx each row stays within the bound derived from exp_approx's error
    xmax = float(np.max(s.max(axis=1) - s.min(axis=1)))  # every exp argument is in [-xmax, 0]
    xs = -np.linspace(0.0, xmax, 2001)
    assert np.all(np.abs(exp_approx(xs) - np.exp(xs)) <= _exp_eps(xmax) * np.exp(xs) + EXP_ETA)
    vmax = float(np.max(np.abs(v)))
    for i in range(m):
        bound = edge_moe_bound(s[i], vmax)
        err = float(np.max(np.abs(got[i] - exact[i])))
        assert err <= bound, f"row {i}: error {err:.3g} exceeds the bound {bound:.3g}"


def test_edge_moe_softmax_vit_size_bound():
    """ViT-Base-like rows (197 keys, head dim 64): the bound is < 5e-4 * max|V| and holds."""
    r = _rng(7)
    m, p, e, f = 3, 197, 64, 8
    q, k, v = r.standard_normal((m, e)), r.standard_normal((p, e)), r.standard_normal((p, f))
    got = _run("edge-moe-softmax", {"M": m, "P": p, "E": e, "F": f},
               {"Q": q, "K": k, "V": v}, {"scale": 0.125})
    s = (q @ k.T) * 0.125
    exact = _softmax_rows(s) @ v
    for i in range(m):
        bound = edge_moe_bound(s[i], float(np.max(np.abs(v))))
        assert bound < 5e-4 * float(np.max(np.abs(v)))
        assert np.max(np.abs(got[i] - exact[i])) <= bound


# -- the library as a whole ---------------------------------------------------------------
TESTED_HERE = {
    "softmax-3pass-causal", "softmax-2pass-causal", "softmax-1pass-causal", "halo",
    "neighborhood-1d", "neighborhood-2d", "gmm-mask", "retention", "retention-chunkwise",
    "linear", "linformer", "edge-moe-softmax", "gemm", "mlp", "layernorm", "mha", "moe",
}


@pytest.mark.parametrize("name", sorted(TESTED_HERE))
def test_library_entry_exists_and_cites_its_source(name):
    c = load_cascade(name)
    assert c.name == name
    desc = " ".join(c.description.split())
    assert len(desc) > 80
    # a citation: a year or an arXiv id, and a named venue or author list
    assert any(tok in desc for tok in ("19", "20", "arXiv")), desc


def test_every_new_library_cascade_is_tested_here():
    assert TESTED_HERE <= set(library_names())


@pytest.mark.parametrize("name", ["softmax-3pass", "softmax-2pass", "softmax-1pass"])
def test_non_causal_softmax(name):
    """The three shipped non-causal cascades against direct softmax attention."""
    r = _rng(3)
    m, p, e, f = 7, 12, 5, 3
    q, k, v = r.standard_normal((m, e)), r.standard_normal((p, e)), r.standard_normal((p, f))
    ranks = {"M": m, "P": p, "E": e, "F": f}
    if name == "softmax-1pass":
        ranks["P0"] = 4
    got = _run(name, ranks, {"Q": q, "K": k, "V": v}, {"scale": 0.3})
    _close(got, _softmax_rows(q @ k.T * 0.3) @ v)
