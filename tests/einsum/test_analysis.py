"""Pass analysis (FuseMax's definition) and operation counts, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum.analysis import einsum_passes, op_counts, passes, summary, totals
from einsum.load import cascade_from_data, load_cascade
from einsum.yamlsrc import loads


@pytest.mark.parametrize("name,want", [("softmax-3pass", 3), ("softmax-2pass", 2), ("softmax-1pass", 1)])
def test_passes_over_p(name, want):
    p = passes(load_cascade(name))
    assert p == {"M": 1, "E": 1, "P": want, "F": 1}


def test_per_einsum_pass_numbers_of_3pass():
    ep = einsum_passes(load_cascade("softmax-3pass"))
    assert {n: v["P"] for n, v in ep.items()} == {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "A": 3, "AV": 3}


@pytest.mark.parametrize("M,P,E,F", [(128, 128, 64, 64), (3, 5, 7, 2)])
def test_op_counts_3pass_by_hand(M, P, E, F):
    oc = op_counts(load_cascade("softmax-3pass", ranks={"M": M, "P": P, "E": E, "F": F}))
    assert oc["QK"].as_dict() == {"points": M * P * E, "outputs": M * P, "mac": M * P * E, "mul": M * P}
    assert oc["GM"].as_dict() == {"points": M * P, "outputs": M, "max": M * P}
    assert oc["SN"].as_dict() == {"points": M * P, "outputs": M * P, "add": M * P, "exp": M * P}
    assert oc["SD"].as_dict() == {"points": M * P, "outputs": M, "add": M * P}
    assert oc["A"].as_dict() == {"points": M * P, "outputs": M * P, "div": M * P}
    assert oc["AV"].as_dict() == {"points": M * P * F, "outputs": M * F, "mac": M * P * F}


def test_deferred_division_saves_divides():
    r = {"M": 64, "P": 256, "E": 32, "F": 32}
    t3 = totals(op_counts(load_cascade("softmax-3pass", ranks=r)))
    t2 = totals(op_counts(load_cascade("softmax-2pass", ranks=r)))
    assert t3["div"] == 64 * 256 and t2["div"] == 64 * 32
    assert t3["mac"] == t2["mac"] == 64 * 256 * 64


def test_1pass_counts_scale_with_chunks():
    c = load_cascade("softmax-1pass", ranks={"M": 16, "P": 64, "E": 8, "F": 8, "P0": 16})
    oc = op_counts(c)
    P1 = 4
    assert oc["RM"]["max"] == 16 * P1
    assert oc["PRM"]["exp"] == 16 * P1
    assert oc["SPNV"]["mul"] == 16 * P1 * 8
    assert oc["SLNV"].macs == 16 * 64 * 8


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), p=st.integers(1, 40), op=st.sampled_from(["<", "<=", ">", ">="]),
       f=st.integers(1, 3))
def test_filter_point_count_closed_form_equals_brute_force(m, p, op, f):
    text = f"""einsum:
  version: 1
  name: t
  ranks: {{M: {m}, P: {p}, F: {f}}}
  inputs: {{A: [M, P], V: [P, F]}}
  outputs: [O]
  expressions:
    - O[m,f] = A[m,p] * V[p,f] where p {op} m
"""
    data, src = loads(text, "t.yaml")
    c = cascade_from_data(data["einsum"], src)
    mm, pp = np.meshgrid(np.arange(m), np.arange(p), indexing="ij")
    brute = int(eval(f"(pp {op} mm)").sum()) * f
    assert op_counts(c)["O"].points == brute
    assert op_counts(c)["O"].macs == brute


def test_general_filter_count():
    text = """einsum:
  version: 1
  name: t
  ranks: {M: 12, P: 12}
  inputs: {A: [M, P]}
  outputs: [O]
  expressions:
    - O[m] = A[m,p] where (m - p) % 3 == 0 and p < m + 2
"""
    data, src = loads(text, "t.yaml")
    c = cascade_from_data(data["einsum"], src)
    brute = sum(1 for m in range(12) for p in range(12) if (m - p) % 3 == 0 and p < m + 2)
    assert op_counts(c)["O"].points == brute


def test_summary_is_json_ready():
    import json

    s = summary(load_cascade("softmax-2pass"))
    assert json.loads(json.dumps(s))["passes"]["P"] == 2
    assert s["intermediate_elements"] == 128 * 128 * 2 + 128 * 2 + 128 * 64
