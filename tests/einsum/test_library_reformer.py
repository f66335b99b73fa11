"""Cascade ``reformer`` (LSH attention, Kitaev et al. 2020) against a NumPy reference.

The reference follows the paper's Sec. 2 literally, query by query and round by round,
on the full M x M score matrix: buckets h(x) = argmax([xR; -xR]); the round's order
sorts by bucket, then position; query i attends the keys j of its bucket whose sorted
position is in its chunk or the previous one (P~_i intersected with P_i), its score
lowered by 10^5 when j = i and by log N_ij otherwise (N_ij = the rounds whose buckets of
i and j agree); the rounds combine as o_i = sum_r exp(z_r - z) o_r with z_r the round's
logsumexp. Shapes are odd (M = 37 in chunks of 5: the last chunk is partial).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from einsum.analysis import op_counts, passes
from einsum.interp import evaluate
from einsum.load import load_cascade

TOL = 1e-12


def _buckets(qk: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """[N, M]: the angular LSH bucket of every vector in every round."""
    out = []
    for r in rot:
        xr = qk @ r
        out.append(np.argmax(np.concatenate([xr, -xr], axis=1), axis=1))
    return np.array(out)


def _logsumexp(x: np.ndarray) -> float:
    mx = x.max()
    return float(mx + math.log(np.exp(x - mx).sum()))


def _reformer_reference(qk, v, rot, chunk: int, scale: float = 1.0) -> np.ndarray:
    m = qk.shape[0]
    keys = qk / np.linalg.norm(qk, axis=1, keepdims=True)  # shared QK: k_j = q_j / |q_j|
    dots = qk @ keys.T * scale
    h = _buckets(qk, rot)
    n_ij = (h[:, :, None] == h[:, None, :]).sum(axis=0)  # rounds in which i and j share a bucket
    zs, outs = [], []
    for r in range(len(rot)):
        order = np.lexsort((np.arange(m), h[r]))  # by bucket, then position
        pos = np.empty(m, dtype=int)
        pos[order] = np.arange(m)
        z_r, o_r = np.empty(m), np.empty((m, v.shape[1]))
        for i in range(m):
            ci = pos[i] // chunk
            js = [j for j in range(m) if h[r, j] == h[r, i] and ci - 1 <= pos[j] // chunk <= ci]
            logits = np.array([dots[i, j] - (1e5 if j == i else math.log(n_ij[i, j])) for j in js])
            z_r[i] = _logsumexp(logits)
            o_r[i] = np.exp(logits - z_r[i]) @ v[js]
        zs.append(z_r)
        outs.append(o_r)
    zs, outs = np.array(zs), np.array(outs)
    # exp(z_r - logsumexp_r z_r), written as a softmax over the rounds: a query alone in
    # its bucket has z_r near -10^5, where z_r - z would lose 10^5 * 2^-52 ~ 2e-11
    w = np.exp(zs - zs.max(axis=0))
    return np.einsum("ri,rif->if", w / w.sum(axis=0), outs)


def _case(seed: int, m: int, e: int, f: int, n: int, b2: int):
    r = np.random.default_rng(seed)
    return r.standard_normal((m, e)), r.standard_normal((m, f)), r.standard_normal((n, e, b2))


def _run(qk, v, rot, chunk: int, scale: float = 1.0, out: str = "AV"):
    m, e = qk.shape
    n, _, b2 = rot.shape
    c = load_cascade("reformer", ranks={"M": m, "E": e, "F": v.shape[1], "N": n, "B2": b2, "C": chunk},
                     params={"scale": scale})
    return evaluate(c, {"QK": qk, "V": v, "ROT": rot})[out]


def _err(got, want) -> float:
    assert got.shape == want.shape and np.all(np.isfinite(got))
    return float(np.max(np.abs(got - want)))


@pytest.mark.parametrize("m,e,f,n,b2,chunk,scale,seed", [
    (37, 6, 5, 3, 4, 5, 1.0, 0),    # 8 buckets, 3 rounds, last chunk of 2
    (53, 4, 7, 1, 2, 8, 0.5, 1),    # one round
    (29, 3, 2, 4, 1, 4, 2.0, 2),    # 2 buckets: many keys shared across rounds
    (23, 5, 3, 2, 3, 30, 1.0, 3),   # one chunk longer than the sequence
    (1, 2, 3, 2, 2, 4, 1.0, 4),     # a single token: only itself
])
def test_reformer_matches_reference(m, e, f, n, b2, chunk, scale, seed):
    qk, v, rot = _case(seed, m, e, f, n, b2)
    got = _run(qk, v, rot, chunk, scale)
    err = _err(got, _reformer_reference(qk, v, rot, chunk, scale))
    assert err <= TOL, f"max abs error {err:.3g}"
    if m == 1:
        assert _err(got, v) <= TOL


def test_buckets_and_order():
    """The cascade's buckets are argmax([xR; -xR]) and its order sorts by bucket, then
    position, in every round."""
    qk, v, rot = _case(5, 41, 5, 2, 3, 4)
    c = load_cascade("reformer", ranks={"M": 41, "E": 5, "F": 2, "N": 3, "B2": 4, "C": 6})
    env = evaluate(c, {"QK": qk, "V": v, "ROT": rot})
    h = _buckets(qk, rot)
    assert np.array_equal(env["BK"], h)
    for r in range(3):
        assert np.array_equal(env["SRT"][r], np.lexsort((np.arange(41), h[r])))


def test_one_chunk_is_attention_over_the_union_of_buckets():
    """With one chunk (C >= M) every key of the query's bucket is in reach, and the log N_ij
    terms make the rounds' mixture exactly softmax attention over the union of the
    query's buckets, each key once, itself excluded unless it is alone (Sec. 2, Eq. 6-7)."""
    m, e, f, n, b2 = 31, 4, 3, 3, 3
    qk, v, rot = _case(6, m, e, f, n, b2)
    got = _run(qk, v, rot, chunk=m)
    keys = qk / np.linalg.norm(qk, axis=1, keepdims=True)
    dots = qk @ keys.T
    h = _buckets(qk, rot)
    share = (h[:, :, None] == h[:, None, :]).any(axis=0)
    want = np.empty((m, f))
    alone = 0
    for i in range(m):
        js = [j for j in range(m) if share[i, j] and j != i] or [i]
        alone += js == [i]
        a = np.exp(dots[i, js] - dots[i, js].max())
        want[i] = a / a.sum() @ v[js]
    assert _err(got, want) <= TOL
    assert 0 < alone < m or alone == 0  # (seed 6: every query has a partner)


def test_self_only_when_alone():
    """Two far-apart vectors in different buckets with C = 1: each query sees only itself,
    so each row is its own value; adding a twin of token 0 makes row 0 the twin's value."""
    qk = np.array([[1.0, 0.0], [-1.0, 0.0]])
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    rot = np.array([[[1.0], [0.0]]])  # x R = x_0: buckets [0, 1]
    assert _err(_run(qk, v, rot, chunk=1), v) <= TOL
    qk3 = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
    v3 = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    got = _run(qk3, v3, rot, chunk=2)  # sorted: 0, 2 (bucket 0), 1 (bucket 1)
    assert _err(got, np.array([[5.0, 6.0], [3.0, 4.0], [1.0, 2.0]])) <= TOL


def test_attention_work_is_linear_in_the_sequence():
    """At a fixed chunk the score Einsums have N*M*2C points: doubling M doubles them."""
    pts = {}
    for m in (1024, 2048):
        oc = op_counts(load_cascade("reformer", ranks={"M": m, "C": 32, "E": 16, "F": 16}))
        pts[m] = oc["DOT"].points
        assert pts[m] == 2 * m * 2 * 32 * 16 - 2 * 32 * 32 * 16  # chunk 0 has no previous chunk
    assert pts[2048] == 2 * pts[1024] + 2 * 32 * 32 * 16


def test_pass_counts():
    assert passes(load_cascade("reformer")) == PASSES


# M: every bucket is known before the sort (hashing pass), then the sorted pass attends
# and returns to token order; E: |q_j| before k_j = q_j / |q_j|; N: all rounds' buckets
# (and the max over rounds) before any round's N_ij-weighted sums and the weighting;
# W: the window's max, then its exponentials (2-pass softmax); S: the sorted pass, then its
# results gathered back through the inverse order (2: a gather is a pass over its rank)
PASSES = {"M": 2, "E": 2, "F": 1, "N": 2, "B2": 1, "S": 2, "Z": 1, "B": 1, "W": 2}


def test_cites_its_source():
    desc = " ".join(load_cascade("reformer").description.split())
    assert "Kitaev" in desc and "2020" in desc


def test_einarray_eval_takes_the_shapes_from_the_inputs(tmp_path):
    """``einarray eval``: M, E, F, N and B2 from the arrays (C given) match the reference."""
    from einarray.cli import main

    qk, v, rot = _case(8, 43, 5, 4, 3, 3)
    np.savez(tmp_path / "in.npz", QK=qk, V=v, ROT=rot)
    assert main(["eval", "reformer", "-i", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"),
                 "--rank", "C=6"]) == 0
    got = np.load(tmp_path / "out.npz")["AV"]
    assert _err(got, _reformer_reference(qk, v, rot, 6)) <= TOL
