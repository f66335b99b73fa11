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
