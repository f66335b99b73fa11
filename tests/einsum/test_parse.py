"""The statement parser (einsum.parse): where the 'where' keyword is a filter and where it
is the where(cond, a, b) operator."""

from __future__ import annotations

import pytest

from einsum import expr as E
from einsum.ops import OPERATORS
from einsum.parse import Namespace, parse_statement

NS = Namespace(frozenset({"m", "p", "nb"}), frozenset({"M", "P", "NB"}), frozenset(),
               frozenset({"Q", "X"}), frozenset(OPERATORS))


@pytest.mark.parametrize("text,reduce_op,rhs,flt", [
    # a reduction prefix followed by the where operator (was "unsupported syntax: Tuple")
    ("X[m] = min(nb) where(nb < m, Q[m,nb], 0)", "min", "where((nb < m), Q[m, nb], 0)", None),
    ("X[m] = max(nb)  where (nb < m, Q[m,nb], -inf)", "max", "where((nb < m), Q[m, nb], -inf)", None),
    ("X[m] = min(nb) where(nb < m, Q[m,nb], 0) where nb < 2", "min", "where((nb < m), Q[m, nb], 0)",
     "(nb < 2)"),
    # a map operator call followed by a filter keeps both readings it had
    ("X[m,p] = max(m, p) where p < 3", None, "max(m, p)", "(p < 3)"),
    ("X[m,p] = max(m, p) where (p < 3)", None, "max(m, p)", "(p < 3)"),
    ("X[m] = sum(nb) Q[m,nb] where (nb < m)", "sum", "Q[m, nb]", "(nb < m)"),
    ("X[m] = Q[m,p] * where(p < m, 1, 0)", None, "(Q[m, p] * where((p < m), 1, 0))", None),
])
def test_where_keyword_or_operator(text, reduce_op, rhs, flt):
    st = parse_statement(text, NS)
    assert st.reduce_op == reduce_op
    assert str(st.rhs) == rhs
    assert (None if st.filter is None else str(st.filter)) == flt
    assert isinstance(st.lhs, E.Access)
