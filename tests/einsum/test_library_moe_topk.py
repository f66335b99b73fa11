"""Cascade ``moe-topk`` (sparse top-k mixture of experts) against a NumPy reference.

The reference is written here from the papers' definitions, token by token: M^3ViT's
gate (Liang et al. 2022, after Shazeer et al. 2017: the K largest logits, a softmax
over those K) or Edge-MoE's released code (a softmax over all experts, the K largest
probabilities, not renormalised), then ``out[t] = sum over the chosen experts e of
g_e * (gelu(x_t W1_e + b1_e) W2_e + b2_e)``. The shapes are odd on purpose; the cascade
must match to 1e-12 in float64, and its expert MLPs must count exactly K/X of the
MACs of the dense-masked cascade ``moe``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from einsum.analysis import op_counts, passes
from einsum.interp import evaluate
from einsum.load import load_cascade

TOL = 1e-12
ORDERS = {"m3vit": 0, "edge-moe": 1}  # the param softmax_first

_erf = np.vectorize(math.erf)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _inputs(seed: int, t: int, d: int, x: int, h: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {"IN": r.standard_normal((t, d)), "WG": r.standard_normal((d, x)),
            "W1": r.standard_normal((x, d, h)) / math.sqrt(d), "B1": r.standard_normal((x, h)),
            "W2": r.standard_normal((x, h, d)) / math.sqrt(h), "B2": r.standard_normal((x, d))}


def _moe_reference(ins: dict[str, np.ndarray], k: int, order: str) -> np.ndarray:
    x = ins["IN"]
    logits = x @ ins["WG"]
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        lt = logits[t]
        if order == "m3vit":  # KeepTopK(logits), then softmax (the rest are -inf)
            top = np.argsort(-lt, kind="stable")[:k]  # ties: the lower expert first
            g = np.exp(lt[top] - lt[top].max())
            g = g / g.sum()
        else:  # Edge-MoE: p = softmax(logits) over every expert, then its K largest entries
            p = np.exp(lt - lt.max())
            p = p / p.sum()
            top = np.argsort(-p, kind="stable")[:k]
            g = p[top]
        for e, ge in zip(top, g):
            hid = _gelu(x[t] @ ins["W1"][e] + ins["B1"][e])
            out[t] += ge * (hid @ ins["W2"][e] + ins["B2"][e])
    return out


def _run(ranks: dict, ins: dict, order: str) -> np.ndarray:
    c = load_cascade("moe-topk", ranks=ranks, params={"softmax_first": ORDERS[order]})
    return evaluate(c, ins)["OUT"]


def _err(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape and np.all(np.isfinite(got))
    return float(np.max(np.abs(got - want)))


SHAPES = [(37, 11, 7, 3, 13, 0),   # T, D, X, K, H, seed
          (29, 5, 16, 2, 9, 1),    # M^3ViT's 16 experts, top-2
          (13, 4, 5, 1, 6, 2),     # top-1 (Switch-style)
          (1, 3, 2, 2, 4, 3)]      # K = X: every expert


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("t,d,x,k,h,seed", SHAPES)
def test_moe_topk_matches_reference(t, d, x, k, h, seed, order):
    ins = _inputs(seed, t, d, x, h)
    got = _run({"T": t, "D": d, "X": x, "K": k, "H": h}, ins, order)
    err = _err(got, _moe_reference(ins, k, order))
    assert err <= TOL, f"max abs error {err:.3g}"


@pytest.mark.parametrize("t,d,x,k,h,seed", SHAPES[:3])
def test_gating_orders_differ_by_the_kept_probability_mass(t, d, x, k, h, seed):
    """Edge-MoE's scores are M^3ViT's times the probability mass P_t of the K chosen
    experts (p_e = g_e * P_t), so its output is M^3ViT's scaled per token by P_t < 1."""
    ins = _inputs(seed, t, d, x, h)
    ranks = {"T": t, "D": d, "X": x, "K": k, "H": h}
    m3, edge = _run(ranks, ins, "m3vit"), _run(ranks, ins, "edge-moe")
    lg = ins["IN"] @ ins["WG"]
    p = np.exp(lg - lg.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mass = np.sort(p, axis=1)[:, ::-1][:, :k].sum(axis=1)
    assert np.all(mass < 1)
    assert _err(edge, m3 * mass[:, None]) <= TOL
    assert _err(edge, m3) > 0.1  # the two orders are different layers


def test_top_k_equals_the_dense_masked_cascade():
    """M^3ViT's order is what cascade ``moe`` computes densely (every expert on every
    token, unselected experts scored 0)."""
    t, d, x, k, h = 23, 6, 9, 3, 5
    ins = _inputs(7, t, d, x, h)
    dense = load_cascade("moe", ranks={"T": t, "D": d, "X": x, "H": h})
    (topk_param,) = dense.params  # moe.yaml's one param: how many experts a token takes
    dense = load_cascade("moe", ranks={"T": t, "D": d, "X": x, "H": h}, params={topk_param: k})
    want = evaluate(dense, ins)["OUT"]
    assert _err(_run({"T": t, "D": d, "X": x, "K": k, "H": h}, ins, "m3vit"), want) <= TOL


def test_ties_go_to_the_lower_expert():
    t, d, x, h = 5, 4, 6, 3
    ins = _inputs(8, t, d, x, h)
    ins["WG"][:, 4] = ins["WG"][:, 1]  # experts 1 and 4 always tie
    ins["WG"][:, 1] += 10.0            # ... and beat every other expert
    ins["WG"][:, 4] += 10.0
    ins["IN"] = np.abs(ins["IN"])
    for order in ORDERS:
        got = _run({"T": t, "D": d, "X": x, "K": 1, "H": h}, ins, order)
        assert _err(got, _moe_reference(ins, 1, order)) <= TOL
        c = load_cascade("moe-topk", ranks={"T": t, "D": d, "X": x, "K": 1, "H": h})
        assert set(evaluate(c, ins)["EX"]) == {1.0}


def _expert_macs(c) -> int:
    oc = op_counts(c)
    return sum(oc[n].counts.get("mac", 0) for n in ("EH", "EO"))


@pytest.mark.parametrize("t,d,x,k,h", [(129, 192, 16, 2, 384),  # M^3ViT: 2/16 = 1/8
                                       (37, 11, 7, 3, 13), (197, 64, 8, 1, 256)])
def test_expert_macs_are_the_top_k_share_of_the_dense_layer(t, d, x, k, h):
    sparse = load_cascade("moe-topk", ranks={"T": t, "D": d, "X": x, "K": k, "H": h})
    dense = load_cascade("moe", ranks={"T": t, "D": d, "X": x, "H": h})
    assert Fraction(_expert_macs(sparse), _expert_macs(dense)) == Fraction(k, x)
    assert _expert_macs(sparse) == 2 * t * k * d * h
    # the gate is the same GEMM in both
    assert op_counts(sparse)["LG"].counts["mac"] == op_counts(dense)["LG"].counts["mac"] == t * d * x


def test_edge_moe_order_alone_pays_the_full_softmax():
    """The all-experts softmax is filtered to softmax_first == 1: M^3ViT's order
    exponentiates only the K kept logits."""
    r = {"T": 129, "D": 192, "X": 16, "K": 2, "H": 384}
    exps = {o: sum(v.counts.get("exp", 0) for v in op_counts(
        load_cascade("moe-topk", ranks=r, params={"softmax_first": s})).values())
        for o, s in ORDERS.items()}
    assert exps == {"m3vit": 129 * 2, "edge-moe": 129 * 2 + 129 * 16}


def test_pass_counts():
    assert passes(load_cascade("moe-topk")) == PASSES


# K: the max of the K kept logits, their exponentials and sum, then the division (a
# 3-pass softmax over K); X: the gate's logits, then (Edge-MoE's order) their softmax
# over all X after the max; D: the gate reads IN, the slots gather its rows again for
# fc1, and fc2's D outputs need all of fc1's H; T: the gate's pass over the tokens, then
# the dispatch gather IN[TOK[j], d] and the combine scatter (2); X: the expert weights are
# gathered (W1[EX[j], d, h]) after Edge-MoE's softmax over X (3); S: the slots are sorted
# by expert, then gathered in that order (2) (a gather is a pass over the rank it reads)
PASSES = {"T": 2, "D": 3, "X": 3, "H": 1, "K": 3, "S": 2, "J": 1, "U": 1}


def test_cites_its_sources():
    desc = " ".join(load_cascade("moe-topk").description.split())
    assert "M^3ViT" in desc and "Edge-MoE" in desc and "2022" in desc and "2023" in desc


@pytest.mark.parametrize("order", list(ORDERS))
def test_einarray_eval_takes_the_shapes_from_the_inputs(tmp_path, order):
    """``einarray eval`` on odd shapes (T, D, X, H from the arrays; K given) matches the
    reference, in float64 and with float32 inputs (to float32 precision)."""
    from einarray.cli import main

    ins = _inputs(9, 31, 7, 6, 5)
    want = _moe_reference(ins, 3, order)
    for dtype, tol in ((np.float64, TOL), (np.float32, 1e-4)):
        np.savez(tmp_path / "in.npz", **{k: v.astype(dtype) for k, v in ins.items()})
        assert main(["eval", "moe-topk", "-i", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"),
                     "--rank", "K=3", "--param", f"softmax_first={ORDERS[order]}"]) == 0
        got = np.load(tmp_path / "out.npz")["OUT"]
        assert got.dtype == dtype and _err(got.astype(np.float64), want) <= tol
