"""Loading and validating cascades (einsum.load): sums with a term that repeats, subscripts
of another rank, empty ranks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from einsum.errors import ConfigError, EinarrayWarning
from einsum.interp import evaluate
from einsum.load import cascade_from_data, library_names, load_cascade
from einsum.yamlsrc import loads


def _cascade(body: str, **kw):
    data, src = loads("einsum:\n  version: 1\n  name: t\n" + body, "t.yaml")
    return cascade_from_data(data["einsum"], src, **kw)


ALIBI = """  ranks: {M: 6, P: 5, E: 4}
  params: {slope: 0.5}
  inputs: {Q: [M, E], K: [P, E]}
  outputs: [S]
  expressions:
    - S[m,p] = Q[m,e] * K[p,e] - slope * (m - p)
"""


def test_bias_under_a_sum_is_a_located_error():
    with pytest.raises(ConfigError) as exc:
        _cascade(ALIBI)
    assert str(exc.value) == (
        "t.yaml:9 einsum.expressions[0]: the term slope * (m - p) does not depend on the summed "
        "index e, so the sum adds it E = 4 times; compute the sum in its own Einsum (T[m, p] = the "
        "terms that use e) and add the term in a second one, or write 'allow: [bias-under-sum]' in "
        "the einsum section if it is meant")


@pytest.mark.parametrize("rhs,term,times", [
    ("A[m,p] + B[m]", "B[m]", "P = 5"),                     # a bias summed over p
    ("-(A[m,p] - 1)", "1", "P = 5"),                        # through a sign flip
    ("A[m,p] * C[q] + B[m]", "B[m]", "P = 5 x Q = 3"),      # two summed indices
    ("A[m,p] + B[m] * C[q]", "A[m, p]", "Q = 3"),           # each term misses an index
])
def test_every_repeated_term_is_named(rhs, term, times):
    ins = ", ".join(f"{t}: {r}" for t, r in (("A", "[M, P]"), ("B", "[M]"), ("C", "[Q]")) if t + "[" in rhs)
    body = f"""  ranks: {{M: 2, P: 5, Q: 3}}
  inputs: {{{ins}}}
  outputs: [O]
  expressions:
    - O[m] = {rhs}
"""
    with pytest.raises(ConfigError, match=rf"the term {term.replace('[', '.').replace(']', '.')} does "
                                          rf"not depend .* so the sum adds it {times} times"):
        _cascade(body)


@pytest.mark.parametrize("rhs", [
    "A[m,p] * C[q]",                    # one product: its factors are not separate terms
    "max(p, q) A[m,p] + C[q]",          # a max is not a sum: the bias is added once
    "A[m,p] * C[q] + A[m,p] * 2 * q",   # every term uses p and q
])
def test_sums_without_a_repeated_term_load(rhs):
    body = f"""  ranks: {{M: 2, P: 5, Q: 3}}
  inputs: {{A: [M, P], C: [Q]}}
  outputs: [O]
  expressions:
    - O[m] = {rhs}
"""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _cascade(body)


def test_allow_keeps_the_semantics_and_warns():
    body = ALIBI.replace("  params: {slope: 0.5}\n", "  params: {slope: 0.5}\n  allow: [bias-under-sum]\n")
    with pytest.warns(EinarrayWarning, match=r"t.yaml:10 einsum.expressions\[0\]: the term slope \* "
                                             r"\(m - p\) .* adds it E = 4 times \(allowed by einsum.allow"):
        c = _cascade(body)
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((6, 4)), rng.standard_normal((5, 4))
    m, p = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    want = np.einsum("me,pe->mp", q, k) - 4 * 0.5 * (m - p)  # summed E = 4 times
    np.testing.assert_allclose(evaluate(c, {"Q": q, "K": k})["S"], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("allow,msg", [
    ("bias-under-sum", r"einsum.allow: expected a list of names"),
    ("[bias]", r"einsum.allow\[0\]: unknown name 'bias' \(allowed: bias-under-sum: "),
])
def test_bad_allow(allow, msg):
    with pytest.raises(ConfigError, match=msg):
        _cascade(ALIBI + f"  allow: {allow}\n")


@pytest.mark.parametrize("name", library_names())
def test_library_has_no_repeated_bias(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cascade(name)


GLOBAL = """  ranks: {M: 8, P: 8, G: 2, E: 4}
  inputs: {Q: [M, E], K: [P, E]}
  outputs: [S]
  expressions:
    - S[m,g] = Q[m,e] * K[g,e]
"""


def test_an_index_of_another_rank_subscripts_a_dimension_it_fits():
    # the first G keys are global tokens: K[g, e] reads keys 0..G-1, as K[g + 0, e] does
    c = _cascade(GLOBAL)
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((8, 4)), rng.standard_normal((8, 4))
    np.testing.assert_allclose(evaluate(c, {"Q": q, "K": k})["S"], q @ k[:2].T, rtol=1e-12)
    plus0 = _cascade(GLOBAL.replace("K[g,e]", "K[g + 0,e]"))
    np.testing.assert_allclose(evaluate(plus0, {"Q": q, "K": k})["S"], q @ k[:2].T, rtol=1e-12)


@pytest.mark.parametrize("old,new,msg", [
    # too long for the dimension: the same check as for an index of the dimension's rank
    ("G: 2", "G: 9", r"shape mismatch in K\[g, e\]: 'g' runs to 9 but dimension 0 of K has size 8"),
    # the Einsum also iterates P: K[m, e] next to p is swapped indices, not a re-indexing
    ("S[m,g] = Q[m,e] * K[g,e]", "S[m,p] = Q[m,e] * K[m,e]",
     r"rank mismatch in K\[m, e\]: subscript 0 of K is rank P, but 'm' is an index of rank M "
     r"\(this Einsum also iterates P: swapped indices\?"),
])
def test_an_index_of_another_rank_that_does_not_type_check(old, new, msg):
    with pytest.raises(ConfigError, match=msg):
        _cascade(GLOBAL.replace(old, new))


EMPTY = """  ranks: {M: 3, NG: nglob, E: 4}
  params: {nglob: 0}
  inputs: {Q: [M, E], G: [NG, E]}
  outputs: [S, MX, MN, SM, CNT]
  expressions:
    - S[m] = Q[m,e] * G[ng,e]
    - MX[m] = max(ng, e) Q[m,e] * G[ng,e]
    - MN[m] = min(ng, e) G[ng,e] * Q[m,e] where ng < m
    - SM[m,ng] = softmax(Q[m,e] * G[ng,e], ng)
    - CNT[m] = where(G[ng,e] > 0, 1, 0)
"""


def test_an_empty_rank_reduces_to_the_identity():
    c = _cascade(EMPTY)
    assert c.ranks["NG"].size == 0 and c.tensors["G"].shape == (0, 4)
    env = evaluate(c, {"Q": np.ones((3, 4)), "G": np.ones((0, 4))})
    assert env["S"].tolist() == [0.0] * 3          # empty sum: 0
    assert env["MX"].tolist() == [-np.inf] * 3     # empty max: -inf
    assert env["MN"].tolist() == [np.inf] * 3      # empty min: +inf
    assert env["SM"].shape == (3, 0)               # an empty fibre normalises to itself
    assert env["CNT"].tolist() == [0.0] * 3
    from einsum.analysis import op_counts

    assert {n: oc.points for n, oc in op_counts(c).items()} == {n: 0 for n in env if n not in "QG"}


@pytest.mark.parametrize("ranks,parts,msg", [
    ("{P: 0, P0: 4}", "{P: [P1, P0]}", None),  # no chunks: P1 = 0
    ("{P: 8, P0: 0}", "{P: [P1, P0]}", r"einsum.partitions.P: P0=0 cannot split P=8: P0 needs a size >= 1"),
    ("{P: 0, P1: 2}", "{P: [P1, P0]}", r"einsum.partitions.P: give the size of P0 in ranks: P=0 does not"),
    ("{P: -1, P0: 4}", "{P: [P1, P0]}", r"einsum.ranks.P: size of P must be an integer >= 0, got -1"),
])
def test_empty_partitioned_rank(ranks, parts, msg):
    body = f"""  ranks: {ranks}
  partitions: {parts}
  inputs: {{K: [P]}}
  outputs: [S]
  expressions:
    - S[p1] = K[p1*P0 + p0]
"""
    if msg is None:
        c = _cascade(body)
        assert (c.ranks["P1"].size, c.ranks["P0"].size) == (0, 4)
        assert evaluate(c, {"K": np.ones(0)})["S"].shape == (0,)
    else:
        with pytest.raises(ConfigError, match=msg):
            _cascade(body)


def test_a_file_loaded_again_is_reused_with_its_warnings_and_reloaded_when_changed(tmp_path):
    import os

    body = ALIBI.replace("  params: {slope: 0.5}\n", "  params: {slope: 0.5}\n  allow: [bias-under-sum]\n")
    p = tmp_path / "alibi.yaml"
    p.write_text("einsum:\n  version: 1\n  name: t\n" + body)
    with pytest.warns(EinarrayWarning, match="adds it E = 4 times"):
        a = load_cascade(p, ranks={"M": 3})
    with pytest.warns(EinarrayWarning, match="adds it E = 4 times"):  # shown again on reuse
        b = load_cascade(p, ranks={"M": 3})
    assert b is a and a.ranks["M"].size == 3
    with pytest.warns(EinarrayWarning):
        c = load_cascade(p, ranks={"M": 4})  # other overrides: another cascade
    assert c is not a and c.ranks["M"].size == 4
    p.write_text(p.read_text().replace("P: 5", "P: 7"))
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # a later mtime, whatever the clock
    with pytest.warns(EinarrayWarning):
        d = load_cascade(p, ranks={"M": 3})
    assert d is not a and d.ranks["P"].size == 7
