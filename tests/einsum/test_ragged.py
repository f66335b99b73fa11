"""Ragged partitions (P0 does not divide P): the reference against NumPy written from
each algorithm's definition, and the counts against brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from einsum.analysis import op_counts, passes, summary
from einsum.cascade import Cascade
from einsum.interp import evaluate, random_inputs
from einsum.load import load_cascade
from einsum.ragged import chunk_points, pair_points, ragged_pairs, space_points, tensor_elements


def _softmax_rows(s):
    a = np.exp(s - s.max(axis=-1, keepdims=True))
    return a / a.sum(axis=-1, keepdims=True)


# -- the closed forms ---------------------------------------------------------------------
@pytest.mark.parametrize("n,inner", [(29, 4), (8, 4), (1, 4), (3, 4), (33, 32), (7, 1), (10, 3)])
def test_pair_points_equals_enumeration(n, inner):
    outer = -(-n // inner)
    for a0, a1, b0, b1 in itertools.product(range(outer + 1), range(outer + 2), range(inner + 1),
                                            range(inner + 2)):
        want = sum(1 for p1 in range(a0, min(a1, outer)) for p0 in range(b0, min(b1, inner))
                   if p1 * inner + p0 < n)
        assert pair_points(n, outer, inner, (a0, a1), (b0, b1)) == want


def test_chunk_points_with_two_indices_over_the_chunk():
    # chunkwise retention: (m1, m0, p0) with m0 and p0 both inside chunk m1 of M = 10, M0 = 4
    c = load_cascade("retention-chunkwise", ranks={"M": 10, "M0": 4, "E": 2, "F": 2})
    want = sum(1 for m1 in range(3) for m0 in range(4) for p0 in range(4)
               if m1 * 4 + m0 < 10 and m1 * 4 + p0 < 10)
    assert chunk_points(c, "M", (0, 3), [(0, 4), (0, 4)]) == want == 2 * 16 + 4
    assert space_points(c, ["m1", "m0", "p0"]) == want


# -- the reference ------------------------------------------------------------------------
@pytest.mark.parametrize("m,p,p0", [(5, 29, 4), (3, 3, 4), (7, 33, 32), (4, 10, 3), (6, 64, 16)])
@pytest.mark.parametrize("causal", [False, True])
def test_one_pass_softmax_with_a_partial_last_chunk(m, p, p0, causal):
    name = "softmax-1pass-causal" if causal else "softmax-1pass"
    ranks = {"M": p if causal else m, "P": p, "E": 6, "F": 3, "P0": p0}
    c = load_cascade(name, ranks=ranks)
    assert c.ranks["P1"].size == -(-p // p0)
    x = random_inputs(c, seed=p0)
    s = x["Q"] @ x["K"].T * c.params["scale"]
    if causal:
        s = np.where(np.tril(np.ones((p, p), bool)), s, -np.inf)
    want = _softmax_rows(s) @ x["V"]
    np.testing.assert_allclose(evaluate(c, x)["AV"], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m,m0", [(10, 4), (37, 8), (5, 8), (33, 32)])
def test_chunkwise_retention_with_a_partial_last_chunk(m, m0):
    """Against RetNet's parallel form (Sun et al. 2023, Eq. 5): (Q K^T * D) V with
    D[n, j] = gamma^(n-j) for n >= j."""
    c = load_cascade("retention-chunkwise", ranks={"M": m, "M0": m0, "E": 5, "F": 3})
    g, scale = c.params["gamma"], c.params["scale"]
    x = random_inputs(c, seed=m)
    n, j = np.arange(m)[:, None], np.arange(m)[None, :]
    d = np.where(n >= j, g ** (n - j).clip(min=0), 0.0)
    want = ((x["Q"] @ x["K"].T * scale) * d) @ x["V"]
    np.testing.assert_allclose(evaluate(c, x)["O"], want, rtol=1e-12, atol=1e-12)


def _halo_padded_reference(q, k, v, b, h, scale):
    """HaloNet: the map zero-padded to whole blocks plus the halo; each query pixel
    attends to its block's (b + 2h)^2 window, zero keys included."""
    hh, ww, cc = q.shape
    h1, w1 = -(-hh // b), -(-ww // b)
    pad = ((h, h + h1 * b - hh), (h, h + w1 * b - ww), (0, 0))
    kp, vp = np.pad(k, pad), np.pad(v, pad)
    out = np.zeros((hh, ww, v.shape[2]))
    for y in range(hh):
        for x in range(ww):
            y0, x0 = (y // b) * b, (x // b) * b
            kk = kp[y0:y0 + b + 2 * h, x0:x0 + b + 2 * h].reshape(-1, cc)
            vv = vp[y0:y0 + b + 2 * h, x0:x0 + b + 2 * h].reshape(-1, v.shape[2])
            out[y, x] = _softmax_rows(kk @ q[y, x] * scale) @ vv
    return out


@pytest.mark.parametrize("hh,ww,b,halo", [(11, 7, 4, 1), (5, 5, 3, 0), (9, 4, 8, 2)])
def test_halo_with_partial_blocks(hh, ww, b, halo):
    c = load_cascade("halo", ranks={"H": hh, "W": ww, "C": 3, "F": 2},
                     params={"block": b, "halo": halo})
    x = random_inputs(c, seed=hh)
    want = _halo_padded_reference(x["Q"], x["K"], x["V"], b, halo, c.params["scale"])
    np.testing.assert_allclose(evaluate(c, x)["AV"], want, rtol=1e-12, atol=1e-12)


# -- counts against enumeration -----------------------------------------------------------
def _brute_points(c: Cascade, e) -> int:
    """Iteration points of an unfiltered Einsum naming elements, by enumeration."""
    idx = list(e.iter_indices)
    pairs = []
    for parent, (o, i) in c.partitions.items():
        oi = c.ranks[o].index
        for ix in idx:
            r = c.rank_of_index(ix).name
            while c.ranks[r].kind == "alias":
                r = c.ranks[r].of
            if oi in idx and r == i and ix != oi:
                pairs.append((idx.index(oi), idx.index(ix), c.ranks[i].size, c.ranks[parent].size))
    n = 0
    for pt in itertools.product(*(range(c.index_size(ix)) for ix in idx)):
        n += all(pt[a] * size + pt[b] < total for a, b, size, total in pairs)
    return n


@pytest.mark.parametrize("name,ranks", [
    ("softmax-1pass", {"M": 3, "P": 10, "E": 2, "F": 2, "P0": 4}),
    ("softmax-1pass-causal", {"M": 7, "P": 7, "E": 2, "F": 2, "P0": 3}),
    ("retention-chunkwise", {"M": 10, "M0": 4, "E": 2, "F": 2}),
    ("gqa", {"M": 3, "P": 4, "H": 5, "R": 2, "E": 2, "F": 2}),
])
def test_points_equal_enumeration(name, ranks):
    c = load_cascade(name, ranks=ranks)
    assert ragged_pairs(c)
    oc = op_counts(c)
    for e in c.einsums:
        if e.stmt.filter is None:
            assert oc[e.name].points == _brute_points(c, e), e.name


def test_filtered_points_with_a_ragged_chunk():
    # chunkwise retention's IDQK: where p0 <= m0 inside chunk m1, M = 10 in chunks of 4
    c = load_cascade("retention-chunkwise", ranks={"M": 10, "M0": 4, "E": 2, "F": 2})
    want = sum(1 for m1 in range(3) for m0 in range(4) for p0 in range(4)
               if m1 * 4 + m0 < 10 and m1 * 4 + p0 < 10 and p0 <= m0)
    assert op_counts(c)["IDQK"].points == want == 2 * 10 + 3


def test_one_pass_counts_are_those_of_p_keys():
    """QK of 1-pass softmax over P = 29 keys in chunks of 4: M*P*E MACs, exactly as the
    3-pass form over the same keys, not M*32*E."""
    m, p, e = 5, 29, 6
    one = op_counts(load_cascade("softmax-1pass", ranks={"M": m, "P": p, "E": e, "F": 3, "P0": 4}))
    three = op_counts(load_cascade("softmax-3pass", ranks={"M": m, "P": p, "E": e, "F": 3}))
    assert one["QK"].macs == three["QK"].macs == m * p * e
    assert one["SLN"]["exp"] == three["SN"]["exp"] == m * p
    assert one["SLNV"].macs == m * p * 3
    assert one["LM"]["max"] == m * p  # a max over the 1 key of the last chunk, not 4


def test_intermediate_sizes_are_exact():
    c = load_cascade("softmax-1pass", ranks={"M": 5, "P": 29, "E": 6, "F": 3, "P0": 4})
    assert c.tensors["BK"].size == 8 * 4 * 6  # stored padded
    assert tensor_elements(c, "BK") == 29 * 6  # but holds P rows
    assert tensor_elements(c, "QK") == 5 * 29
    assert tensor_elements(c, "RM") == 5 * 9  # a state per chunk boundary
    s = summary(c)
    assert s["tensors"]["SLN"]["elements"] == 5 * 29
    assert s["intermediate_elements"] == sum(tensor_elements(c, t) for t, i in c.tensors.items()
                                             if i.kind == "intermediate")


@pytest.mark.parametrize("p,p0", [(29, 4), (32, 4)])
def test_passes_do_not_change(p, p0):
    c = load_cascade("softmax-1pass", ranks={"M": 5, "P": p, "E": 6, "F": 3, "P0": p0})
    assert passes(c)["P"] == 1


def test_a_divisible_partition_has_no_mask():
    c = load_cascade("softmax-1pass", ranks={"M": 2, "P": 8, "E": 2, "F": 2, "P0": 4})
    assert ragged_pairs(c) == {}
    assert space_points(c, ["m", "p1", "p0"]) == math.prod((2, 2, 4))


def test_summary_gives_the_partial_chunk():
    s = summary(load_cascade("softmax-1pass", ranks={"P": 29, "P0": 4}))
    assert s["partitions"] == {"P": {"outer": "P1", "inner": "P0", "chunks": 8, "chunk": 4, "last": 1}}
