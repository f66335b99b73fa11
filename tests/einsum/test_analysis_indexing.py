"""Static analysis of indexed cascades (einsum.analysis with einsum.indexing): comparison
counts of the ordering operators against brute-force counting implementations, operation
counts of arg-reductions and scatters, intermediate sizes, and passes over gathered and
scattered ranks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from einsum.analysis import op_counts, passes, summary
from einsum.indexing import ordering_comparisons
from einsum.interp import evaluate, random_inputs
from einsum.load import cascade_from_data
from einsum.yamlsrc import loads


def _cascade(body: str):
    data, src = loads("einsum:\n  version: 1\n  name: t\n" + body, "t.yaml")
    return cascade_from_data(data["einsum"], src)


def _merge_sort_comparisons(a: list) -> int:
    """Comparisons a top-down binary merge sort makes on ``a`` (split at ceil(n/2))."""
    if len(a) <= 1:
        return 0
    h = (len(a) + 1) // 2
    left, right = sorted(a[:h]), sorted(a[h:])
    n = _merge_sort_comparisons(a[:h]) + _merge_sort_comparisons(a[h:])
    i = j = 0
    while i < len(left) and j < len(right):
        n += 1
        if left[i] <= right[j]:
            i += 1
        else:
            j += 1
    return n


def _scan_topk_comparisons(n: int, k: int) -> int:
    """k rounds of a running maximum from -inf over the elements not yet chosen."""
    x = list(np.random.default_rng(n * 31 + k).standard_normal(n))
    chosen: set[int] = set()
    cmps = 0
    for _ in range(k):
        best, at = -math.inf, None
        for p in range(n):
            if p in chosen:
                continue
            cmps += 1
            if x[p] > best:
                best, at = x[p], p
        chosen.add(at)
    return cmps


@pytest.mark.parametrize("n", range(1, 8))
def test_sort_count_is_the_worst_case_of_merge_sort(n):
    worst = max(_merge_sort_comparisons(list(p)) for p in itertools.permutations(range(n)))
    assert ordering_comparisons("sort", n, n) == ordering_comparisons("argsort", n, n) == worst


@pytest.mark.parametrize("n,k", [(n, k) for n in range(1, 10) for k in range(1, n + 1)])
def test_topk_count_is_k_running_maximum_scans(n, k):
    assert ordering_comparisons("topk", n, k) == ordering_comparisons("argtopk", n, k) \
        == _scan_topk_comparisons(n, k)


ORDER = """  ranks: {{T: {t}, X: {x}, X2: X, K: {k}, D: 3}}
  inputs: {{L: [T, X], V: [T, D]}}
  outputs: [AM, S, TI, TV, Y, B]
  expressions:
    - AM[t] = argmax(x) L[t, x]
    - S[t, x2] = sort(L[t, x] * 2, x, x2)
    - TI[t, k] = argtopk(L[t, x], x, k)
    - TV[t, k] = topk(L[t, x], x, k)
    - Y[TI[t, k], d] += TV[t, k] * V[t, d]
    - B[x] = argmax(d) Y[x, d]
"""


@pytest.mark.parametrize("t,x,k", [(8, 4, 2), (5, 7, 3), (3, 1, 1), (6, 16, 2)])
def test_operation_counts_of_orderings_and_scatters(t, x, k):
    c = _cascade(ORDER.format(t=t, x=x, k=k))
    oc = op_counts(c)
    worst_sort = max(_merge_sort_comparisons(list(p)) for p in itertools.permutations(range(min(x, 7))))
    sort_cmp = worst_sort if x <= 7 else ordering_comparisons("sort", x, x)
    assert oc["AM"].as_dict() == {"points": t * x, "outputs": t, "max": t * x}
    assert (oc["S"].points, oc["S"].outputs, oc["S"]["mul"]) == (t * x, t * x, t * x)
    assert oc["S"]["cmp"] == t * sort_cmp and set(oc["S"].counts) <= {"mul", "cmp"}
    for name in ("TI", "TV"):
        assert oc[name].as_dict() == {"points": t * x, "outputs": t * k,
                                      "cmp": t * _scan_topk_comparisons(x, k)}
    # the scatter: one multiply per (t, k, d) and one add into its target row
    assert oc["Y"].as_dict() == {"points": t * k * 3, "outputs": t * k * 3, "mul": t * k * 3,
                                 "add": t * k * 3}
    assert oc["B"].as_dict() == {"points": x * 3, "outputs": x, "max": x * 3}
    s = summary(c)
    assert s["tensors"]["Y"]["shape"] == [x, 3] and s["tensors"]["Y"]["elements"] == x * 3
    assert s["intermediate_elements"] == 0  # every tensor here is an output
    env = evaluate(c, random_inputs(c, 0))  # the counted sizes are the evaluated ones
    for name, info in s["tensors"].items():
        assert list(env[name].shape) == info["shape"], name


def test_a_scatter_with_a_reduction_counts_macs_and_one_add_per_target_write():
    c = _cascade("""  ranks: {T: 5, K: 2, X: 3, D: 4, E: 6}
  inputs: {IDX: "[T, K] in X", A: [T, E], B: [E, D]}
  outputs: [Z]
  expressions:
    - Z[IDX[t, k], d] += A[t, e] * B[e, d]
""")
    assert op_counts(c)["Z"].as_dict() == {"points": 5 * 2 * 4 * 6, "outputs": 5 * 2 * 4,
                                           "mac": 5 * 2 * 4 * 6, "add": 5 * 2 * 4}


@pytest.mark.parametrize("body,want", [
    # a gather of an input is one pass over the source rank P, which no index iterates
    ("""  ranks: {G: 3, J: 2, P: 7, E: 4}
  inputs: {IDX: "[G, J] in P", K: [P, E]}
  outputs: [KG]
  expressions:
    - KG[g, j, e] = K[IDX[g, j], e]
""", {"G": 1, "J": 1, "P": 1, "E": 1}),
    # a permutation K[IDX[p], e] iterates p but reads K at random: still one pass
    ("""  ranks: {P: 7, E: 4}
  inputs: {IDX: "[P] in P", K: [P, E]}
  outputs: [KP]
  expressions:
    - KP[p, e] = K[IDX[p], e]
""", {"P": 1, "E": 1}),
    # argmax over P (pass 1), then gathering from P by it: pass 2
    ("""  ranks: {M: 3, P: 7, E: 4}
  inputs: {S: [M, P], K: [P, E]}
  outputs: [KG]
  expressions:
    - AM[m] = argmax(p) S[m, p]
    - KG[m, e] = K[AM[m], e]
""", {"M": 1, "P": 2, "E": 1}),
    # gathering from a tensor produced by a pass over P: the next pass
    ("""  ranks: {G: 3, P: 7, E: 4}
  inputs: {IDX: "[G] in P", K: [P, E]}
  outputs: [KG]
  expressions:
    - MX[e] = max(p) K[p, e]
    - KN[p, e] = K[p, e] / MX[e]
    - KG[g, e] = KN[IDX[g], e]
""", {"G": 1, "P": 3, "E": 1}),
    # a scatter into X (pass 1) read back along X: its rows are complete only after it
    ("""  ranks: {T: 6, K: 2, X: 4, D: 3}
  inputs: {IDX: "[T, K] in X", W: [T, K], V: [T, D]}
  outputs: [Y, B]
  expressions:
    - Y[IDX[t, k], d] += W[t, k] * V[t, d]
    - B[x, d] = Y[x, d] * 2
""", {"T": 1, "K": 1, "X": 2, "D": 1}),
])
def test_passes_count_gathers_and_scatters_over_the_rank_they_index(body, want):
    assert passes(_cascade(body)) == want
