"""Bad input: every mistake gives one located line and exit status 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from einarray.cli import main

DATA = Path(__file__).parent / "data"
BASE = (DATA / "attn-small.yaml").read_text()

# (name, edit of the base file as (old, new) pairs, expected message after "FILE:")
CASES = [
    ("malformed", [("ranks: {M: 8,", "ranks: {M: 8,,")],
     ":4: malformed YAML: "),
    ("unknown_index", [("QK[m,p] = Q[m,e]", "QK[m,p] = Q[q,e]")],
     ":9 einsum.expressions[0]: 'q' is not an index of any rank (indices: e, f, m, p)"),
    ("unknown_tensor", [("A[m,p] * V[p,f]", "A[m,p] * W[p,f]")],
     ":14 einsum.expressions[5]: unknown tensor 'W'"),
    ("wrong_subscript_count", [("K[p,e] * scale", "K[p] * scale")],
     ":9 einsum.expressions[0]: K has 2 subscripts (P, E), got 1 in K[p]"),
    ("rank_mismatch", [("K[p,e] * scale", "K[m,e] * scale")],
     ":9 einsum.expressions[0]: rank mismatch in K[m, e]: subscript 0 of K is rank P, "
     "but 'm' is an index of rank M"),
    ("undefined_operator", [("exp(QK", "expo(QK")],
     ":11 einsum.expressions[2]: undefined operator 'expo'"),
    ("cycle", [("GM[m] = max(p) QK[m,p]", "GM[m] = max(p) A[m,p]")],
     ":11 einsum.expressions[2]: cycle between Einsums: SN -> SD -> A -> GM -> SN"),
    ("where_unknown_index", [("A[m,p] * V[p,f]", "A[m,p] * V[p,f] where p <= q")],
     ":14 einsum.expressions[5]: 'q' is not an index of any rank"),
    ("where_not_iterated", [("SD[m] = SN[m,p]", "SD[m] = SN[m,p] where f < 2")],
     ":12 einsum.expressions[3]: the 'where' filter names index 'f', which this Einsum does not iterate"),
    ("unused_input", [("V: [P, F]}", "V: [P, F], W: [M]}")],
     ":6 einsum.inputs.W: input W is never read"),
    ("unknown_rank_in_input", [("V: [P, F]", "V: [P, G]")],
     ":6 einsum.inputs.V[1]: unknown rank 'G' (ranks: M, P, E, F)"),
    ("undefined_output", [("outputs: [AV]", "outputs: [AV, ZZ]")],
     ":7 einsum.outputs[1]: output 'ZZ' is never defined"),
    ("version", [("version: 1", "version: 7")],
     ":2 einsum.version: unsupported version 7 (this einarray reads 1)"),
    ("duplicate_key", [("  name: t\n", "  name: t\n  name: u\n")],
     ":4 einsum.name: duplicate key 'name'"),
    ("unknown_key", [("  name: t\n", "  name: t\n  rankz: {}\n")],
     ":4 einsum.rankz: unknown key 'rankz'"),
    ("defined_twice", [("    - AV[m,f]", "    - SD[m] = SN[m,p]\n    - AV[m,f]")],
     ":14 einsum.expressions[5]: tensor SD is defined 2 times"),
    ("reduce_kept_index", [("max(p) QK[m,p]", "max(m) QK[m,p]")],
     ":10 einsum.expressions[1]: max(m): 'm' is not reduced here"),
    ("negative_rank", [("M: 8,", "M: -8,")],
     ":4 einsum.ranks.M: size of M must be an integer >= 0, got -8"),
    ("partition_not_divisible", [("params:", "partitions: {P: [P1, P0]}\n  params:"),
                                 ("E: 4, F: 4}", "E: 4, F: 4, P1: 3}")],
     ":5 einsum.partitions.P: P=8 is not a multiple of P1=3: give the chunk size P0 instead"),
    ("partition_chunks_disagree", [("params:", "partitions: {P: [P1, P0]}\n  params:"),
                                   ("E: 4, F: 4}", "E: 4, F: 4, P0: 3, P1: 4}")],
     ":5 einsum.partitions.P: P=8 in chunks of P0=3 needs P1 = ceil(8/3) = 3, not 4"),
    ("syntax", [("SN[m,p] / SD[m]", "SN[m,p] / / SD[m]")],
     ":13 einsum.expressions[4]: syntax error"),
    ("dead_tensor", [("    - AV[m,f]", "    - XX[m] = SD[m]\n    - AV[m,f]")],
     ":14 einsum.expressions[5]: XX is computed but never read and is not an output"),
    ("operator_arity", [("exp(QK[m,p] - GM[m])", "exp(QK[m,p], GM[m])")],
     ":11 einsum.expressions[2]: exp() takes 1 argument, got 2"),
    ("shape_mismatch", [("params:", "partitions: {P: [P1, P0]}\n  params:"),
                        ("E: 4, F: 4}", "E: 4, F: 4, P0: 4}"), ("V: [P, F]", "V: [P0, F]")],
     ":15 einsum.expressions[5]: shape mismatch in V[p, f]: 'p' runs to 8 but dimension 0 of V has size 4"),
    ("input_assigned", [("    - AV[m,f]", "    - Q[m,e] = SD[m]\n    - AV[m,f]")],
     ":14 einsum.expressions[5]: Q is an input and cannot be assigned"),
    ("subscript_out_of_range", [("K[p,e] * scale", "K[p + 1,e] * scale")],
     ":9 einsum.expressions[0]: QK: subscript 0 of K[(p + 1), e] ranges over [1, 8], outside 0..7"),
    ("subscript_out_of_range_later", [("A[m,p] * V[p,f]", "A[m,p] * V[7 - p + 1,f]")],
     ":14 einsum.expressions[5]: AV: subscript 0 of V[((7 - p) + 1), f] ranges over [1, 8], outside 0..7"),
]


def _write(tmp_path: Path, name: str, edits: list[tuple[str, str]]) -> Path:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name,edits,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_cascade_is_one_located_line(tmp_path, capsys, name, edits, expected):
    path = _write(tmp_path, name, edits)
    status = main(["check", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert f"{path}{expected}" in err, err


def test_base_file_is_valid(capsys):
    assert main(["check", str(DATA / "attn-small.yaml")]) == 0


@pytest.mark.parametrize("args,expected", [
    (["--rank", "M=abc"], "--rank M=abc: the size must be an integer >= 0"),
    (["--rank", "M=-4"], "--rank M=-4: the size must be an integer >= 0"),
    (["--rank", "Z=4"], "command line --rank Z=4: unknown rank 'Z' (ranks: M, P, E, F)"),
    (["--rank", "M"], "--rank 'M': expected NAME=SIZE, e.g. --rank P=4096"),
    (["--param", "nope=1"], "command line --param nope=1: unknown param 'nope' (params: scale)"),
    (["--param", "scale=x"], "--param scale=x: the value must be a number"),
])
def test_bad_overrides(capsys, args, expected):
    status = main(["check", str(DATA / "attn-small.yaml"), *args])
    err = capsys.readouterr().err
    assert status == 2 and err == f"einarray check: error: {expected}\n", err


def test_missing_file_and_unknown_library_name(capsys):
    assert main(["check", "no/such/file.yaml"]) == 2
    assert "no/such/file.yaml: file not found" in capsys.readouterr().err
    assert main(["check", "softmax-4pass"]) == 2
    err = capsys.readouterr().err
    assert "no file and no library cascade named 'softmax-4pass'" in err
    assert "softmax-3pass" in err


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_eval_npz_missing_input(tmp_path, capsys):
    src = _npz(tmp_path / "in.npz", Q=np.zeros((8, 4)), K=np.zeros((8, 4)))
    out = tmp_path / "out.npz"
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(src), "-o", str(out)]) == 2
    assert f"{src}: missing input 'V' (expected Q, K, V)" in capsys.readouterr().err
    assert not out.exists()


def test_eval_npz_wrong_shape(tmp_path, capsys):
    src = _npz(tmp_path / "in.npz", Q=np.zeros((8, 4)), K=np.zeros((8, 4)), V=np.zeros((9, 4)))
    out = tmp_path / "out.npz"
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(src), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (f"einarray eval: error: {src}: inputs disagree on the size of rank P: "
                                       "K dimension 0 (P) is 8, but V dimension 0 (P) is 9\n")
    assert not out.exists() and not list(tmp_path.glob(".out.npz*"))


def test_eval_not_an_npz(tmp_path, capsys):
    src = tmp_path / "in.npz"
    src.write_text("hello")
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(src), "-o", str(tmp_path / "o.npz")]) == 2
    assert "not a readable .npz file" in capsys.readouterr().err


def test_eval_output_directory_missing(tmp_path, capsys):
    src = _npz(tmp_path / "in.npz", Q=np.zeros((8, 4)), K=np.zeros((8, 4)), V=np.zeros((8, 4)))
    assert main(["eval", str(DATA / "attn-small.yaml"), "-i", str(src),
                 "-o", str(tmp_path / "nodir" / "o.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- run and simulate configs: names written in a config, values given with --set -------------
SIM = "workload: {cascade: gemm, ranks: {M: 16, N: 16, K: 16}}\narch: systolic-16x16\n"


@pytest.mark.parametrize("text,expected", [
    (SIM.replace("systolic-16x16", "systolic-99x99"),
     ":2 arch: no file and no shipped arch named 'systolic-99x99' (shipped archs: attention-engine, "
     "eyeriss-like, fusemax, "),
    (SIM.replace("systolic-16x16", "archs/mine.yaml"), ":2 arch: included file 'archs/mine.yaml' not found"),
    (SIM + "mapping: maps/gemm.yaml\n", ":3 mapping: included file 'maps/gemm.yaml' not found"),
    ("einsum: softmax-4pass\narch: systolic-16x16\n",
     ":1 einsum: no file and no library cascade named 'softmax-4pass' (library cascades: "),
])
def test_names_in_a_config_are_located(tmp_path, capsys, text, expected):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    assert main(["simulate", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"einarray simulate: error: {p}{expected}" in err, err


@pytest.mark.parametrize("text,args,expected", [
    (SIM.replace("K: 16}", "K: 16, Q: 5}"), [], "{p}:1 workload.ranks.Q: unknown rank 'Q' (ranks: M, N, K)"),
    (SIM.replace("K: 16}}", "K: 16}, params: {nope: 2}}"), [],
     "{p}:1 workload.params.nope: unknown param 'nope' (params: none)"),
    (SIM, ["--rank", "Q=5"], "command line --rank Q=5: unknown rank 'Q' (ranks: M, N, K)"),
    (SIM.replace("workload: {cascade: gemm, ranks: {M: 16, N: 16, K: 16}}", "einsum: softmax-2pass"),
     ["--rank", "Q=5"], "command line --rank Q=5: unknown rank 'Q' (ranks: M, P, E, F)"),
])
def test_rank_and_param_overrides_are_located(tmp_path, capsys, text, args, expected):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    assert main(["simulate", str(p), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"einarray simulate: error: {expected.format(p=p)}\n", err


@pytest.mark.parametrize("cmd", ["simulate", "run"])
@pytest.mark.parametrize("sets,expected", [
    (["arch.foo=1"], "command line --set arch.foo=1: unknown key 'foo' (allowed: "),
    (["arch.array2d.rows=0"], "command line --set arch.array2d.rows=0: "),
    (["arch.memory.9.word_bits=8"], "command line --set arch.memory.9.word_bits=8: arch.memory.9 is not an "
                                    "index of the list (2 entries)"),
    (["arch.nothere.x=1"], "command line --set arch.nothere.x=1: no key 'nothere' under arch"),
    (["arch"], "command line --set arch: expected SECTION.key.path=VALUE"),
    (["arch=1"], "command line --set arch=1: expected SECTION.key.path=VALUE, not the whole 'arch' section"),
    (["report.top=3"], "command line --set report.top=3: unknown section 'report' (sections: "),
])
def test_set_errors_name_the_command_line(tmp_path, capsys, cmd, sets, expected):
    p = tmp_path / "c.yaml"
    p.write_text(SIM)
    argv = [cmd, str(p), *[a for s in sets for a in ("--set", s)]]
    assert main(argv + (["--no-progress", "-o", str(tmp_path / "r")] if cmd == "run" else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"einarray {cmd}: error: {expected}"), err
    assert str(p) not in err and "systolic-16x16.yaml" not in err


def test_an_empty_rank_from_the_command_line_checks(capsys):
    # M=0 queries: an empty output, nothing to compute (it used to be refused)
    assert main(["check", str(DATA / "attn-small.yaml"), "--rank", "M=0", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["ranks"]["M"] == 0 and s["evaluation"]["outputs"]["AV"]["shape"] == [0, 4]
    assert s["totals"] == {}
