"""Cascade ``longformer`` (Beltagy et al. 2020) against a NumPy reference.

The reference builds the paper's attention pattern as a full M x M mask, row by row:
a global token's row is softmax attention of its global query (Q_g) over all keys
(K_g, V_g); any other query attends, with Q_s, K_s, V_s, the keys of its dilated window
(|i - j| <= dil*R, i - j a multiple of dil) and every global token. Shapes are odd, and
global positions include the borders and a repeated position.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from einsum.analysis import op_counts, passes
from einsum.interp import EvalError, evaluate
from einsum.load import load_cascade

TOL = 1e-12
PROJ = ("Q", "K", "V", "QG", "KG", "VG")


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max())
    return e / e.sum()


def _longformer_reference(x: dict, gi, reach: int, dil: int, scale: float) -> np.ndarray:
    m = x["Q"].shape[0]
    glob = set(int(g) for g in gi)
    out = np.empty((m, x["V"].shape[1]))
    for i in range(m):
        if i in glob:  # symmetric global attention, with the global projections
            out[i] = _softmax(x["QG"][i] @ x["KG"].T * scale) @ x["VG"]
            continue
        js = [j for j in range(m)
              if (abs(i - j) <= dil * reach and (i - j) % dil == 0) or j in glob]
        out[i] = _softmax(x["Q"][i] @ x["K"][js].T * scale) @ x["V"][js]
    return out


def _case(seed: int, m: int, e: int, f: int) -> dict:
    r = np.random.default_rng(seed)
    return {n: r.standard_normal((m, f if n.startswith("V") else e)) for n in PROJ}


def _run(x: dict, gi, reach: int, dil: int, scale: float, **kw):
    m, e = x["Q"].shape
    c = load_cascade("longformer", ranks={"M": m, "R": reach, "G": len(gi), "E": e,
                                          "F": x["V"].shape[1]}, params={"dil": dil, "scale": scale})
    return evaluate(c, {**x, "GI": np.asarray(gi, dtype=float)}, **kw)


@pytest.mark.parametrize("m,reach,dil,gi,e,f,seed", [
    (37, 3, 1, [0, 17, 36], 11, 7, 0),    # globals at both borders
    (53, 2, 3, [5, 40, 5], 4, 6, 1),      # dilation 3, a repeated position
    (37, 20, 1, [9], 5, 3, 2),            # the window covers the whole sequence
    (23, 1, 2, [22, 10], 3, 2, 3),        # a global key inside some windows
    (29, 4, 2, [3, 4, 5, 6, 7, 8], 2, 5, 4),
    (31, 2, 2, [], 3, 3, 5),              # no global token: the dilated window alone
])
def test_longformer_matches_reference(m, reach, dil, gi, e, f, seed):
    x = _case(seed, m, e, f)
    scale = 1 / math.sqrt(e)
    got = _run(x, gi, reach, dil, scale)["AV"]
    want = _longformer_reference(x, gi, reach, dil, scale)
    assert got.shape == want.shape and np.all(np.isfinite(got))
    err = float(np.max(np.abs(got - want)))
    assert err <= TOL, f"max abs error {err:.3g}"


def test_global_projections_only_reach_global_rows():
    """Changing Q_g, K_g, V_g changes exactly the global tokens' rows."""
    m, gi = 31, [4, 20]
    x = _case(5, m, 4, 3)
    a = _run(x, gi, 2, 1, 0.5)["AV"]
    y = dict(x, QG=x["QG"] + 1.0, KG=x["KG"] * 2.0, VG=x["VG"] - 3.0)
    b = _run(y, gi, 2, 1, 0.5)["AV"]
    changed = np.flatnonzero(np.abs(a - b).max(axis=1) > 1e-9)
    assert changed.tolist() == gi


def test_a_position_outside_the_sequence_is_an_error():
    x = _case(6, 9, 2, 2)
    with pytest.raises(EvalError, match=r"GI\b.*\b9\b.*0\.\.8"):
        _run(x, [1, 9], 1, 1, 1.0)


def test_no_score_matrix_and_linear_work():
    """No tensor spans the sequence twice (no M x M intermediate), and at a fixed window
    and number of global tokens the work is affine in M, a*M + b (b: the window points
    cut off at the two borders, and the G x G duplicate check)."""
    tot = {}
    for m in (1024, 2048, 4096):
        c = load_cascade("longformer", ranks={"M": m, "R": 8, "G": 3, "E": 16, "F": 16})
        for t, info in c.tensors.items():
            assert sum(c.ranks[r].root == "M" for r in info.ranks) <= 1, t
            assert info.size < m * m, t
        oc = op_counts(c)
        tot[m] = sum(sum(o.counts.values()) for o in oc.values())
    assert tot[4096] - 2 * tot[2048] == tot[2048] - 2 * tot[1024]


def test_pass_counts():
    assert passes(load_cascade("longformer")) == PASSES


# one pass over the sequence; a 2-pass softmax over the window W, the global keys G and,
# for the global rows, all keys P (max, then exponentials and sums); the global rows are
# scattered into the sequence and read back by the output (M 2: a scatter's target is
# complete only after the scatter, einsum.analysis)
PASSES = {"M": 2, "E": 1, "F": 1, "G": 2, "P": 2, "W": 2, "H": 1}


def test_cites_its_source():
    desc = " ".join(load_cascade("longformer").description.split())
    assert "Beltagy" in desc and "2020" in desc


def test_einarray_eval_takes_the_shapes_from_the_inputs(tmp_path):
    """``einarray eval``: M, E, F and G from the arrays (R given) match the reference."""
    from einarray.cli import main

    x = _case(7, 41, 6, 5)
    gi = [2, 40, 19]
    np.savez(tmp_path / "in.npz", GI=np.array(gi, dtype=float), **x)
    assert main(["eval", "longformer", "-i", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"),
                 "--rank", "R=4", "--param", "dil=2", "--param", "scale=0.4"]) == 0
    got = np.load(tmp_path / "out.npz")["AV"]
    assert float(np.max(np.abs(got - _longformer_reference(x, gi, 4, 2, 0.4)))) <= TOL
