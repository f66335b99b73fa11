"""The cascade subcommands end to end: cascades, show, check, eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from einarray.cli import build_parser, main

DATA = Path(__file__).parents[1] / "einsum" / "data"


def test_help_of_every_subcommand(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"cascades", "show", "check", "eval"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: einarray {name}" in out and len(out) > 200


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "einarray.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("einarray ")


def test_cascades_json_lists_library_with_passes(capsys):
    assert main(["cascades", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by = {c["name"]: c for c in data["cascades"]}
    assert by["softmax-3pass"]["passes"]["P"] == 3
    assert by["softmax-1pass"]["passes"]["P"] == 1
    assert all(c["description"] for c in data["cascades"])


def test_cascades_table(capsys):
    assert main(["cascades"]) == 0
    assert "softmax-2pass" in capsys.readouterr().out


def test_check_json_reports_passes_counts_and_evaluation(capsys):
    assert main(["check", "softmax-2pass", "--json", "--rank", "M=16", "--rank", "P=32"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["passes"] == {"M": 1, "E": 1, "P": 2, "F": 1}
    assert s["ranks"]["P"] == 32
    qk = next(e for e in s["einsums"] if e["name"] == "QK")
    assert qk["ops"]["mac"] == 16 * 32 * 64
    assert s["evaluation"]["ran"] and s["evaluation"]["outputs"]["AV"]["finite"]


def test_check_text(capsys):
    assert main(["check", "softmax-1pass"]) == 0
    out = capsys.readouterr().out
    assert "passes: M=1, E=1, P=1, F=1" in out
    assert "RM[m,p1+1]" in out and "reference run (seed 0): AV shape [128, 64]" in out


def test_check_skips_evaluation_of_huge_shapes(capsys):
    assert main(["check", "softmax-1pass", "--json", "--rank", "M=65536", "--rank", "P=65536"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert not s["evaluation"]["ran"] and "exceed" in s["evaluation"]["reason"]
    assert s["passes"]["P"] == 1


@pytest.mark.parametrize("fmt,marker", [("text", "cascade softmax-3pass"), ("yaml", "einsum:"),
                                        ("dot", "digraph")])
def test_show_formats(capsys, fmt, marker):
    assert main(["show", "softmax-3pass", "-f", fmt]) == 0
    assert marker in capsys.readouterr().out


def test_show_dot_marks_loop_carried_edges(capsys):
    assert main(["show", "softmax-1pass", "-f", "dot"]) == 0
    dot = capsys.readouterr().out
    assert '"RM" -> "RM" [label="RM", style=dashed' in dot
    assert '"RM" -> "SLN" [label="RM"]' in dot


def test_show_png(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["show", "softmax-1pass", "-f", "png", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["show", "softmax-1pass", "-f", "png"]) == 2
    assert "--format png needs --output" in capsys.readouterr().err


def test_eval_roundtrip_matches_numpy(tmp_path, capsys):
    rng = np.random.default_rng(7)
    Q, K, V = rng.standard_normal((8, 4)), rng.standard_normal((8, 4)), rng.standard_normal((8, 4))
    np.savez(tmp_path / "in.npz", Q=Q, K=K, V=V)
    out = tmp_path / "out.npz"
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    S = Q @ K.T * 0.5
    A = np.exp(S - S.max(1, keepdims=True))
    want = (A / A.sum(1, keepdims=True)) @ V
    with np.load(out) as z:
        assert z.files == ["AV"]
        np.testing.assert_allclose(z["AV"], want, atol=1e-12)


def test_eval_all_writes_intermediates_and_overrides(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", Q=rng.standard_normal((4, 64)), K=rng.standard_normal((64, 64)),
             V=rng.standard_normal((64, 64)))
    out = tmp_path / "o.npz"
    assert main(["eval", "softmax-1pass", "-i", str(tmp_path / "in.npz"), "-o", str(out), "--all",
                 "--rank", "M=4", "--rank", "P=64", "--rank", "P0=16"]) == 0
    with np.load(out) as z:
        assert z["RM"].shape == (4, 5) and z["AV"].shape == (4, 64)


def test_eval_warns_about_non_finite_inputs_and_counts_non_finite_outputs(tmp_path, capsys):
    Q = np.ones((8, 4))
    Q[0, 0], Q[1, 1], Q[1, 2] = np.nan, np.inf, -np.inf
    np.savez(tmp_path / "in.npz", Q=Q, K=np.ones((8, 4)), V=np.ones((8, 4)))
    out = tmp_path / "out.npz"
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.err.splitlines() == [
        f"einarray eval: warning: {tmp_path / 'in.npz'}: input Q has 3 non-finite values (NaN or inf) of 32"]
    with np.load(out) as z:
        bad = int((~np.isfinite(z["AV"])).sum())
    assert bad == 8  # query rows 0 and 1 (4 features each) see a NaN/inf score
    assert cap.out.strip() == f"wrote {out}: AV[8, 4] (8 non-finite)"


def test_eval_warns_about_arrays_the_cascade_does_not_take(tmp_path, capsys):
    ones = np.ones((8, 4))
    np.savez(tmp_path / "in.npz", Q=ones, K=ones, V=ones, W=np.ones(3), mask=np.ones(2))
    out = tmp_path / "out.npz"
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.err.splitlines() == [f"einarray eval: warning: {tmp_path / 'in.npz'}: ignoring arrays W, mask, "
                                    "not inputs of t (inputs: Q, K, V)"]
    assert cap.out.strip() == f"wrote {out}: AV[8, 4]"
    with np.load(out) as z:
        np.testing.assert_allclose(z["AV"], ones)  # uniform attention over rows of ones


def test_eval_takes_rank_sizes_from_the_input_shapes(tmp_path, capsys):
    # non-default, non-square shapes: M=40, P=48, E=24, F=8 (the defaults are 128/128/64/64)
    rng = np.random.default_rng(11)
    Q, K, V = rng.standard_normal((40, 24)), rng.standard_normal((48, 24)), rng.standard_normal((48, 8))
    np.savez(tmp_path / "in.npz", Q=Q, K=K, V=V)
    out = tmp_path / "out.npz"
    assert main(["eval", "softmax-2pass", "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    S = Q @ K.T * 0.125
    A = np.exp(S - S.max(1, keepdims=True))
    with np.load(out) as z:
        np.testing.assert_allclose(z["AV"], (A / A.sum(1, keepdims=True)) @ V, rtol=1e-12, atol=1e-12)
    np.savez(tmp_path / "bad.npz", Q=Q, K=K, V=V[:47])
    assert main(["eval", "softmax-2pass", "-i", str(tmp_path / "bad.npz"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "bad.npz: inputs disagree on the size of rank P: K dimension 0 (P) is 48, but V dimension 0 (P) is 47")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eval_keeps_the_inputs_floating_point_dtype(tmp_path, capsys, dtype):
    rng = np.random.default_rng(12)
    Q, K, V = (rng.standard_normal(s).astype(dtype) for s in ((6, 5), (7, 5), (7, 3)))
    np.savez(tmp_path / "in.npz", Q=Q, K=K, V=V)
    out = tmp_path / "out.npz"
    assert main(["eval", "softmax-3pass", "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    q, k, v = (a.astype(np.float64) for a in (Q, K, V))
    S = q @ k.T * 0.125
    A = np.exp(S - S.max(1, keepdims=True))
    want = (A / A.sum(1, keepdims=True)) @ v  # computed in float64, then cast once
    with np.load(out) as z:
        assert z["AV"].dtype == np.dtype(dtype)
        np.testing.assert_allclose(z["AV"], want.astype(dtype), rtol=1e-12, atol=1e-12)


def test_eval_warns_when_a_float32_result_overflows(tmp_path, capsys):
    A = np.full((2, 3), 1e30, dtype=np.float32)
    np.savez(tmp_path / "in.npz", A=A, B=A.T.copy())
    out = tmp_path / "out.npz"
    assert main(["eval", "gemm", "-i", str(tmp_path / "in.npz"), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.err.splitlines() == ["einarray eval: warning: C: 4 values finite in float64 overflow "
                                    "float32 (the inputs' dtype)"]
    assert cap.out.strip() == f"wrote {out}: C[2, 2] (4 non-finite)"


def test_check_reports_a_partial_chunk(capsys):
    assert main(["check", "softmax-1pass", "--rank", "P=29", "--rank", "P0=4"]) == 0
    out = capsys.readouterr().out
    assert "partition: P = P1 x P0: 8 chunks of 4, the last of 1 (ragged)" in out
    assert main(["check", "softmax-1pass", "--rank", "P=32", "--rank", "P0=4"]) == 0
    assert "partition: P = P1 x P0: 8 chunks of 4\n" in capsys.readouterr().out
