"""Pass analysis (FuseMax's definition) and operation counts, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum.analysis import einsum_passes, op_counts, passes, summary, totals
from einsum.load import LIBRARY_DIR, cascade_from_data, library_names, load_cascade
from einsum.yamlsrc import loads


@pytest.mark.parametrize("name,want", [("softmax-3pass", 3), ("softmax-2pass", 2), ("softmax-1pass", 1)])
def test_passes_over_p(name, want):
    p = passes(load_cascade(name))
    assert p == {"M": 1, "E": 1, "P": want, "F": 1}


# Passes of every library cascade at its default shapes, derived by hand from FuseMax's
# definition (how many times a fibre of a rank is traversed before an output depending on
# it can be produced). A partition's parts count for the rank they split; an alias rank
# (P: M) is its own rank.
LIBRARY_PASSES = {
    # softmax_fixed needs its whole p fibre (pass 1) before it emits; A*V streams that second pass
    "attention-fixed": {"M": 1, "E": 1, "P": 2, "F": 1},
    # the running max, denominator and numerator are recurrences over the chunks: one pass
    "attention-fixed-1pass": {"M": 1, "E": 1, "P": 1, "F": 1},
    # the running max/sum recurrence is pass 1 over p; A*V needs the final RM[m,P], RS[m,P]
    "edge-moe-softmax": {"M": 1, "E": 1, "P": 2, "F": 1},
    # one contraction: every rank traversed once
    "gemm": {"M": 1, "K": 1, "N": 1},
    # element-wise layers: every element read once
    "add": {"T": 1, "D": 1}, "mul": {"T": 1, "D": 1}, "relu": {"T": 1, "D": 1},
    "gelu": {"T": 1, "D": 1}, "silu": {"T": 1, "D": 1},
    # mean of squares over d (1), then the scaled output (2)
    "rmsnorm": {"T": 1, "D": 2},
    # one reduction over the window k; the channel d streams once
    "maxpool": {"T": 1, "K": 1, "D": 1}, "avgpool": {"T": 1, "K": 1, "D": 1},
    # grouped-query heads h = g*R + r stream once; softmax over keys p is the 2-pass form
    "gqa": {"M": 1, "H": 1, "E": 1, "P": 2, "F": 1},
    # key rank P: M is an alias: max over p (1), then exp, sum and SN*V (2); the sum over g is one pass
    "gmm-mask": {"M": 1, "E": 1, "P": 2, "F": 1, "G": 1},
    # query blocks stream once over H, W; the window softmax is max (1) then exp/sum/SN*V (2)
    "halo": {"H": 1, "W": 1, "C": 1, "F": 1, "HP": 1, "WP": 1, "KY": 2, "KX": 2},
    # mean (1), variance of x - mean (2), normalised output (3) over the features d
    "layernorm": {"T": 1, "D": 3},
    # phi(K)^T V and sum_p phi(K) in one pass over p; the queries never revisit p
    "linear": {"M": 1, "E": 1, "P": 1, "F": 1},
    # prefix sums S, Z over keys p (an alias of M) are one recurrence; query m reads S[m+1]
    "linear-causal": {"M": 1, "E": 1, "P": 1, "F": 1},
    # projections read p once; the softmax over the J projected keys is the 2-pass form
    "linformer": {"M": 1, "E": 1, "P": 1, "F": 1, "J": 2},
    # K/V projections over all tokens t (1) precede the first query's scores (2); softmax over
    # the key alias S is 2-pass; d is reduced (1) then produced by the output projection (2);
    # e is reduced by Q.K (1) then produced by SN*V (2)
    "mha": {"T": 2, "D": 2, "NH": 1, "E": 2, "S": 2},
    # window, global keys and the global rows' keys: each a 2-pass softmax (max, then exp/sum);
    # the global rows are scattered into M (1) and the output reads them back (M 2)
    "longformer": {"M": 2, "E": 1, "F": 1, "G": 2, "P": 2, "W": 2, "H": 1},
    # fc1 reduces d (1), fc2 produces d (2)
    "mlp": {"T": 1, "D": 2, "H": 1},
    # logits over x (1); top-k compares each x with every logit (2) and the masked exp/sum
    # with it (2); the scores divide by that sum (3); the comparison index Y runs once
    "moe": {"T": 1, "D": 2, "X": 3, "H": 1, "Y": 1},
    # the gate reads d (1), the slots gather it again (2), fc2 produces it (3); softmax over
    # the K kept logits is 3-pass; Edge-MoE's order exponentiates all X after the max (2) and
    # the expert weights are gathered over X after that (3); the gate's pass over the tokens,
    # then the dispatch gather and combine scatter (T 2); slots sorted, then gathered (S 2)
    "moe-topk": {"T": 2, "D": 3, "X": 3, "H": 1, "K": 3, "S": 2, "J": 1, "U": 1},
    # the window softmax over kw (ky, kx) is max (1) then exp/sum/SN*V (2)
    "neighborhood-1d": {"L": 1, "E": 1, "F": 1, "KW": 2},
    "neighborhood-2d": {"H": 1, "W": 1, "E": 1, "F": 1, "KY": 2, "KX": 2},
    # random features of Q and K in one pass each over e; phi(K)^T V, phi(K)^T 1 in one over p
    "performer": {"M": 1, "E": 1, "P": 1, "F": 1, "R": 1},
    "performer-causal": {"M": 1, "E": 1, "P": 1, "F": 1, "R": 1},
    # hashing precedes the sort (M 1), the sorted pass attends and unsorts (M 2); |q| then
    # q/|q| (E 2); all rounds' buckets (N 1) before the N_ij-weighted sums and weights (N 2);
    # the sorted rows' results are gathered back through the inverse order (S 2)
    "reformer": {"M": 2, "E": 2, "F": 1, "N": 2, "B2": 1, "S": 2, "Z": 1, "B": 1, "W": 2},
    # no softmax: scores, decay and the sum over keys p (an alias of M) in one pass
    "retention": {"M": 1, "E": 1, "P": 1, "F": 1},
    # chunks m1 stream once (the state R is a recurrence); keys p0 of a chunk are read once
    "retention-chunkwise": {"M": 1, "E": 1, "F": 1, "P0": 1},
    # the decayed state S over keys p is one recurrence; query m reads S[m+1]
    "retention-recurrent": {"M": 1, "E": 1, "P": 1, "F": 1},
    # the window softmax over w is max (1) then exp/sum/SN*V (2)
    "sliding-window-causal": {"M": 1, "E": 1, "F": 1, "W": 2},
    # online softmax: running max, sum and numerator carried across the chunks of one pass
    "softmax-1pass": {"M": 1, "E": 1, "P": 1, "F": 1},
    "softmax-1pass-causal": {"M": 1, "E": 1, "P": 1, "F": 1},
    # max (1), then exp, sum and SN*V together (2); the division is per output element
    "softmax-2pass": {"M": 1, "E": 1, "P": 2, "F": 1},
    "softmax-2pass-causal": {"M": 1, "E": 1, "P": 2, "F": 1},
    # max (1), sum of exp (2), normalised scores times V (3)
    "softmax-3pass": {"M": 1, "E": 1, "P": 3, "F": 1},
    "softmax-3pass-causal": {"M": 1, "E": 1, "P": 3, "F": 1},
}


@pytest.mark.parametrize("name", library_names())
def test_library_passes_by_hand(name):
    assert name in LIBRARY_PASSES, f"derive the passes of {name} by hand and add them above"
    assert passes(load_cascade(name)) == LIBRARY_PASSES[name]


def _with_alias_key_rank(name: str) -> str:
    text = (LIBRARY_DIR / f"{name}.yaml").read_text()
    assert "ranks: {M: 128, P: 128," in text
    return text.replace("ranks: {M: 128, P: 128,", "ranks: {M: 128, P: M,")


@pytest.mark.parametrize("name,want", [("softmax-3pass", 3), ("softmax-2pass", 2),
                                       ("softmax-3pass-causal", 3), ("softmax-1pass", 1)])
def test_alias_key_rank_keeps_its_passes(name, want):
    # P: M is a second index over the query extent: its passes must not fold into M's
    data, src = loads(_with_alias_key_rank(name), f"{name}.yaml")
    c = cascade_from_data(data["einsum"], src)
    assert c.ranks["P"].kind == "alias"
    assert passes(c) == {"M": 1, "E": 1, "P": want, "F": 1}


def test_alias_reading_a_tensor_streamed_over_its_target_needs_a_new_pass():
    # KT is complete over t only after a full pass; the scores read it along the alias s
    text = """einsum:
  version: 1
  name: t
  ranks: {T: 8, S: T, E: 4}
  inputs: {X: [T, E]}
  outputs: [O]
  expressions:
    - KT[t,e] = X[t,e] * 2
    - QK[t,s] = X[t,e] * KT[s,e]
    - O[t] = max(s) QK[t,s]
"""
    data, src = loads(text, "t.yaml")
    ep = einsum_passes(cascade_from_data(data["einsum"], src))
    assert ep["KT"] == {"T": 1, "E": 1, "S": 0}
    assert ep["QK"] == {"T": 2, "E": 1, "S": 1}
    assert ep["O"] == {"T": 2, "E": 1, "S": 1}


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
