"""Data-dependent indexing (einsum.indexing): gathers, scatters, argmax/argmin and the
ordering operators against NumPy, index-input range checks, located load errors and the
CLI on indexed cascades."""

from __future__ import annotations

import numpy as np
import pytest

from einarray.cli import main
from einsum.errors import ConfigError
from einsum.interp import EvalError, evaluate
from einsum.load import cascade_from_data
from einsum.yamlsrc import loads


def _cascade(body: str):
    data, src = loads("einsum:\n  version: 1\n  name: t\n" + body, "t.yaml")
    return cascade_from_data(data["einsum"], src)


def _ties(rng, shape, levels=3):
    """Values from a few levels only, so every fibre has ties."""
    return rng.integers(0, levels, shape).astype(np.float64)


GATHER = """  ranks: {{G: {g}, J: {j}, P: {p}, E: {e}}}
  inputs: {{IDX: {decl}, K: [P, E], Q: [G, E]}}
  outputs: [KG, S]
  expressions:
    - KG[g, j, e] = K[IDX[g, j], e]
    - S[g, j] = Q[g, e] * K[IDX[g, j], e]
"""


@pytest.mark.parametrize("decl", ['"[G, J] in P"', "{ranks: [G, J], in: P}"])
@pytest.mark.parametrize("g,j,p,e,seed", [(3, 4, 7, 5, 0), (1, 9, 2, 3, 1), (5, 1, 1, 2, 2)])
def test_gather_matches_numpy_fancy_indexing(decl, g, j, p, e, seed):
    c = _cascade(GATHER.format(g=g, j=j, p=p, e=e, decl=decl))
    assert c.tensors["IDX"].value_range == "P"
    rng = np.random.default_rng(seed)
    idx, K, Q = rng.integers(0, p, (g, j)), rng.standard_normal((p, e)), rng.standard_normal((g, e))
    env = evaluate(c, {"IDX": idx, "K": K, "Q": Q})
    np.testing.assert_array_equal(env["KG"], K[idx])
    np.testing.assert_allclose(env["S"], np.einsum("ge,gje->gj", Q, K[idx]), atol=1e-13)


SCATTER = """  ranks: {{T: {t}, K: {k}, X: {x}, D: {d}, E: 3}}
  inputs: {{IDX: "[T, K] in X", W: [T, K], V: [T, D], A: [T, E], B: [E, D]}}
  outputs: [Y, Z, F]
  expressions:
    - Y[IDX[t, k], d] += W[t, k] * V[t, d]
    - Z[IDX[t, k], d] += A[t, e] * B[e, d]
    - F[IDX[t, k], d] += V[t, d] where t > k
"""


@pytest.mark.parametrize("t,k,x,d,seed", [(6, 2, 4, 3, 0), (11, 3, 2, 1, 1), (1, 1, 5, 2, 2)])
def test_scatter_accumulate_matches_np_add_at(t, k, x, d, seed):
    c = _cascade(SCATTER.format(t=t, k=k, x=x, d=d))
    assert c.tensors["Y"].shape == (x, d) and c.einsum("Y").scatter
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x, (t, k))  # repeated rows: add.at accumulates them all
    W, V, A, B = (rng.standard_normal(s) for s in ((t, k), (t, d), (t, 3), (3, d)))
    env = evaluate(c, dict(IDX=idx, W=W, V=V, A=A, B=B))
    y = np.zeros((x, d))
    np.add.at(y, idx, W[:, :, None] * V[:, None, :])
    z = np.zeros((x, d))
    np.add.at(z, idx, np.broadcast_to((A @ B)[:, None, :], (t, k, d)))
    f = np.zeros((x, d))
    keep = np.arange(t)[:, None] > np.arange(k)[None, :]
    np.add.at(f, idx, np.where(keep[:, :, None], V[:, None, :], 0.0))
    for name, want in (("Y", y), ("Z", z), ("F", f)):
        np.testing.assert_allclose(env[name], want, atol=1e-13, err_msg=name)


ORDER = """  ranks: {{T: {t}, X: {x}, X2: X, K: {k}}}
  inputs: {{L: [X, T]}}
  outputs: [AMX, AMN, AMW, S, AS, TV, TI, G]
  expressions:
    - AMX[t] = argmax(x) L[x, t]
    - AMN[t] = argmin(x) L[x, t]
    - AMW[t] = argmax(x) L[x, t] where x >= 1
    - S[x2, t] = sort(L[x, t], x, x2)
    - AS[t, x2] = argsort(L[x, t], x, x2)
    - TV[t, k] = topk(L[x, t], x, k)
    - TI[k, t] = argtopk(L[x, t], x, k)
    - G[k, t] = L[TI[k, t], t]
"""


@pytest.mark.parametrize("t,x,k,levels,seed", [(5, 6, 3, 3, 0), (7, 4, 4, 2, 1), (3, 9, 1, 4, 2),
                                                (4, 2, 2, 1, 3)])
def test_orderings_break_ties_by_the_lower_position(t, x, k, levels, seed):
    """The fibre runs along the first axis of L (not the last): every result is checked
    against NumPy's stable sorts on the transposed array."""
    c = _cascade(ORDER.format(t=t, x=x, k=k))
    for name in ("AMX", "AMN", "AMW", "AS", "TI"):
        assert c.tensors[name].value_range == "X", name
    assert c.tensors["S"].value_range is None and c.tensors["TV"].value_range is None
    L = _ties(np.random.default_rng(seed), (x, t), levels)
    env = evaluate(c, {"L": L})
    Lt = L.T  # [t, x]
    asc = np.argsort(Lt, axis=1, kind="stable")
    desc = np.argsort(-Lt, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(env["AMX"], np.argmax(Lt, axis=1))
    np.testing.assert_array_equal(env["AMN"], np.argmin(Lt, axis=1))
    np.testing.assert_array_equal(env["AMW"], 1 + np.argmax(Lt[:, 1:], axis=1))
    np.testing.assert_array_equal(env["S"], np.sort(Lt, axis=1).T)
    np.testing.assert_array_equal(env["AS"], asc)
    np.testing.assert_array_equal(env["TI"], desc.T)
    np.testing.assert_array_equal(env["TV"], np.take_along_axis(Lt, desc, axis=1))
    np.testing.assert_array_equal(env["G"], env["TV"].T)  # a gather through a computed index


def test_argmax_in_a_masked_fibre_never_returns_a_filtered_point():
    c = _cascade("""  ranks: {T: 2, X: 3}
  inputs: {L: [T, X]}
  outputs: [A]
  expressions:
    - A[t] = argmax(x) L[t, x] where x > 0
""")
    L = np.array([[-np.inf, -np.inf, -np.inf], [5.0, -1.0, 2.0]])
    np.testing.assert_array_equal(evaluate(c, {"L": L})["A"], [1, 2])


def test_argmax_of_a_fully_filtered_fibre_is_an_error():
    c = _cascade("""  ranks: {T: 3, X: 3}
  inputs: {L: [T, X]}
  outputs: [A]
  expressions:
    - A[t] = argmax(x) L[t, x] where x < t
""")
    with pytest.raises(EvalError, match=r"A: argmax\(x\) at \{'t': 0\}: no point of the fibre passes"):
        evaluate(c, {"L": np.zeros((3, 3))})


@pytest.mark.parametrize("bad,what", [(7, "holds 7 at \\[g=1, j=2\\] \\(1 bad value\\): outside 0..6"),
                                      (-1, "holds -1 at \\[g=1, j=2\\] \\(1 bad value\\): outside 0..6"),
                                      (2.5, "holds 2.5 at \\[g=1, j=2\\] \\(1 bad value\\): not an integer"),
                                      (np.nan, "holds nan at \\[g=1, j=2\\] \\(1 bad value\\): not a number")])
def test_a_bad_index_input_names_tensor_value_and_position(bad, what):
    c = _cascade(GATHER.format(g=3, j=4, p=7, e=2, decl='"[G, J] in P"'))
    idx = np.zeros((3, 4))
    idx[1, 2] = bad
    with pytest.raises(EvalError, match=rf"^KG: index input IDX {what}; its values must be positions "
                                        r"in rank P \(0..6\)$"):
        evaluate(c, {"IDX": idx, "K": np.zeros((7, 2)), "Q": np.zeros((3, 2))})


BASE = """  ranks: {{T: 4, X: 3, K: 2, D: 2}}
  inputs: {{{inputs}}}
  outputs: [{out}]
  expressions:
{exprs}
"""


@pytest.mark.parametrize("inputs,exprs,where,msg", [
    ("L: [T, X], V: [X, D]", ["I[t] = L[t, 0]", "O[t, d] = V[I[t], d]"], "einsum.expressions[1]",
     "V\\[I\\[t\\], d\\]: subscript 0: I is not an index tensor .*index tensors here: none"),
    ("IDX: \"[T] in K\", V: [X, D]", ["O[t, d] = V[IDX[t], d]"], "einsum.expressions[0]",
     "subscript 0 of V is rank X \\(size 3\\), but the index tensor IDX holds positions in K "
     "\\(size 2\\)"),
    ("L: [T, X]", ["O[t, k] = topk(L[t, x], x, k)"], "einsum.expressions[0]", None),
    ("L: [T, K]", ["O[t, x] = topk(L[t, k], k, x)"], "einsum.expressions[0]",
     "k = size of X = 3 exceeds the 2 elements along k"),
    ("L: [T, X]", ["O[t, k] = sort(L[t, x], x, k)"], "einsum.expressions[0]",
     "k \\(rank K = 2\\) must have the size of x \\(rank X = 3\\)"),
    ("L: [T, X]", ["O[t, k] = 1 + topk(L[t, x], x, k)"], "einsum.expressions[0]",
     "must be the whole right side"),
    ("L: [T, X]", ["O[k] = argmax(t, x) L[t, x] + k"], "einsum.expressions[0]",
     "must list every reduced index|gives a position along one index"),
    ("IDX: \"[T] in X\", V: [T, D]", ["O[t, d] += V[t, d]"], "einsum.expressions[0]",
     "'\\+=' scatters through an index tensor"),
    ("IDX: \"[T] in X\", V: [T, D]", ["O[IDX[t], d] = V[t, d]"], "einsum.expressions[0]",
     "accumulates: write 'O\\[IDX\\[t\\], d\\] \\+= ...'"),
    ("IDX: \"[T] in X\", V: [X, D]", ["O[t, d] = V[IDX[t] + 1, d]"], "einsum.expressions[0]",
     "must be the whole subscript"),
    ("IDX: \"[T, K] in X\", V: [T, D]", ["O[IDX[t], d] += V[t, d]"], "einsum.expressions[0]",
     "IDX has 2 subscripts \\(T, K\\), got 1"),
    ("IDX: \"[T] in Q\", V: [X, D]", ["O[t, d] = V[IDX[t], d]"], "einsum.inputs.IDX",
     "index range 'Q' is not a rank"),
    ("IDX: \"[T] of X\", V: [X, D]", ["O[t, d] = V[IDX[t], d]"], "einsum.inputs.IDX",
     "expected a list of rank names, e.g. \\[M, E\\], or an index tensor \"\\[G, J\\] in P\""),
    ("IDX: {ranks: [T], range: X}, V: [X, D]", ["O[t, d] = V[IDX[t], d]"], "einsum.inputs.IDX",
     "an index tensor is \\{ranks: \\[G, J\\], in: P\\}"),
    ("IDX: {ranks: [T, Q], in: X}, V: [X, D]", ["O[t, d] = V[IDX[t], d]"], "einsum.inputs.IDX.ranks[1]",
     "unknown rank 'Q'"),
])
def test_indexing_mistakes_are_located_load_errors(inputs, exprs, where, msg):
    body = BASE.format(inputs=inputs, out="O", exprs="\n".join(f"    - {x}" for x in exprs))
    if msg is None:  # topk with k = 2 <= 3 elements: fine
        _cascade(body)
        return
    with pytest.raises(ConfigError) as exc:
        _cascade(body)
    text = str(exc.value)
    assert text.startswith(f"t.yaml:"), text
    assert f" {where}: " in text.splitlines()[0], text
    assert __import__("re").search(msg, text), text


def test_a_param_may_share_an_operators_name():
    c = _cascade("""  ranks: {T: 3, X: 4, K: 2}
  params: {topk: 2}
  inputs: {L: [T, X]}
  outputs: [O]
  expressions:
    - TV[t, k] = topk(L[t, x], x, k)
    - O[t, k] = TV[t, k] * topk
""")
    L = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(evaluate(c, {"L": L})["O"], 2 * L[:, ::-1][:, :2])


CLI = """einsum:
  version: 1
  name: route
  ranks: {T: 6, X: 4, K: 2, D: 3}
  inputs: {IDX: "[T, K] in X", W: [T, K], V: [T, D]}
  outputs: [Y, B]
  expressions:
    - Y[IDX[t, k], d] += W[t, k] * V[t, d]
    - B[x] = argmax(d) Y[x, d]
"""


def test_cli_check_and_eval_with_integer_index_arrays(tmp_path, capsys):
    f = tmp_path / "route.yaml"
    f.write_text(CLI)
    assert main(["check", str(f)]) == 0
    out = capsys.readouterr().out
    assert "+=" in out and "reference run (seed 0): Y shape [4, 3]" in out
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, (9, 2)).astype(np.int32)  # non-default sizes: T = 9, X = 5
    W, V = rng.standard_normal((9, 2)), rng.standard_normal((9, 3))
    np.savez(tmp_path / "in.npz", IDX=idx, W=W, V=V)
    out = tmp_path / "out.npz"
    assert main(["eval", str(f), "-i", str(tmp_path / "in.npz"), "-o", str(out), "--rank", "X=5"]) == 0
    y = np.zeros((5, 3))
    np.add.at(y, idx, W[:, :, None] * V[:, None, :])
    with np.load(out) as z:
        np.testing.assert_allclose(z["Y"], y, atol=1e-13)
        np.testing.assert_array_equal(z["B"], np.argmax(y, axis=1))


def test_cli_reports_bad_index_values_and_bad_declarations_located(tmp_path, capsys):
    f = tmp_path / "route.yaml"
    f.write_text(CLI)
    idx = np.zeros((6, 2), dtype=np.int64)
    idx[3, 1] = 4
    np.savez(tmp_path / "in.npz", IDX=idx, W=np.ones((6, 2)), V=np.ones((6, 3)))
    assert main(["eval", str(f), "-i", str(tmp_path / "in.npz"), "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert f"{f}:8 einsum.expressions[0]: Y: index input IDX holds 4 at [t=3, k=1]" in err
    assert "Traceback" not in err and not (tmp_path / "o.npz").exists()
    f.write_text(CLI.replace('"[T, K] in X"', '"[T, K] in Z"'))
    assert main(["check", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:5 einsum.inputs.IDX: index range 'Z' is not a rank" in err and "Traceback" not in err


def test_sorted_dims_finds_sort_outputs_and_keys_gathered_through_their_argsort():
    from einsum.indexing import sorted_dims

    c = _cascade("""  ranks: {S: 10, J: S, X: 4, T: 3}
  inputs: {AE: "[S] in X", L: [T, S]}
  outputs: [EX, BAD, SL]
  expressions:
    - ORD[j] = argsort(AE[s], s, j)
    - EX[j] = AE[ORD[j]]
    - BAD[j] = AE[ORD[j]] where j > 0
    - SL[t, j] = sort(L[t, s], s, j)
""")
    assert sorted_dims(c) == {"EX": frozenset({0}), "SL": frozenset({1})}
    env = evaluate(c, {"AE": np.random.default_rng(0).integers(0, 4, 10), "L": np.zeros((3, 10))})
    assert np.all(np.diff(env["EX"]) >= 0)


RANGES = """  ranks: {{T: 3, K: 2, S: "T*K", X: 4, D: 2}}
  inputs: {{X0: [T, D], L: [S, X]}}
  outputs: [XS]
  ranges: {{{ranges}}}
  expressions:
    - AT[s] = {rhs}
    - AM[s] = argmax(x) L[s, x]
    - XS[s, d] = X0[AT[s], d] * AM[s]
"""


def test_a_computed_tensor_declared_in_ranges_is_an_index_tensor():
    c = _cascade(RANGES.format(ranges="AT: T", rhs="s // K"))
    assert c.tensors["AT"].value_range == "T" and c.tensors["AT"].range_declared
    rng = np.random.default_rng(0)
    X0, L = rng.standard_normal((3, 2)), rng.standard_normal((6, 4))
    want = X0[np.arange(6) // 2] * np.argmax(L, axis=1)[:, None]
    np.testing.assert_allclose(evaluate(c, {"X0": X0, "L": L})["XS"], want, atol=1e-15)


def test_a_declared_range_is_checked_after_the_tensor_is_computed():
    c = _cascade(RANGES.format(ranges="AT: T", rhs="s // K + 1"))
    with pytest.raises(EvalError, match=r"^AT: AT \(declared in ranges: as positions in T, 0..2\) "
                                        r"holds 3 at \[s=4\]$"):
        evaluate(c, {"X0": np.zeros((3, 2)), "L": np.zeros((6, 4))})


@pytest.mark.parametrize("ranges,msg", [
    ("X0: T", "einsum.ranges.X0: X0 is an input: declare its range there"),
    ("Q: T", "einsum.ranges.Q: Q is not a tensor of the cascade"),
    ("AT: Z", "einsum.ranges.AT: 'Z' is not a rank"),
    ("AT: T, AM: T", "einsum.ranges.AM: AM holds positions in X \\(computed by expression 1\\), not in T"),
])
def test_bad_ranges_are_located_load_errors(ranges, msg):
    with pytest.raises(ConfigError, match=msg):
        _cascade(RANGES.format(ranges=ranges, rhs="s // K"))
