"""The Python API (einarray/api.py): every documented name, and every ``python`` block of
README.md and docs/api.md run as it stands in an empty folder."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import einarray
from einarray.cli import main
from einsum.cascade import Cascade
from einsum.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "docs" / "api.md"]
GEMM = "workload: {cascade: gemm, ranks: {M: 32, N: 32, K: 32}}\narch: systolic-16x16\n"


def python_blocks() -> list[tuple[str, int, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in re.finditer(r"```python\n(.*?)```", text, re.S):
            out.append((doc.name, text[: m.start()].count("\n") + 1, m.group(1)))
    return out


def documented_names() -> list[str]:
    """The names in docs/api.md's table (first column; ``Summary``, ``LayerResult`` share a row)."""
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    cells = re.findall(r"^\| (`.*?) \|", text, re.M)
    return sorted({n for cell in cells for n in re.findall(r"`(\w+)", cell)})


def test_every_documented_name_is_exported():
    names = documented_names()
    assert {"load_config", "run", "simulate", "search", "evaluate", "Cascade", "RunResult", "Summary",
            "LayerResult", "SimResult"} <= set(names)
    for n in names:
        assert n in einarray.__all__, n
        assert callable(getattr(einarray, n)), n
    assert einarray.Cascade is Cascade


def test_every_name_has_an_example():
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    code = "\n".join(b for _, _, b in python_blocks())
    for n in ("load_config", "run", "simulate", "search", "evaluate", "from_yaml", "to_json", "summary",
              "layers"):
        assert f".{n}" in code, n
        assert f"`{n}" in text or f".{n}" in text, n


@pytest.mark.parametrize("doc,line,code", python_blocks(), ids=[f"{d}:{n}" for d, n, _ in python_blocks()])
def test_doc_block_runs(tmp_path, monkeypatch, doc, line, code):
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"{doc}:{line}", "exec"), {"__name__": "__doc_block__"})


def test_there_are_blocks_in_both_docs():
    assert {d for d, _, _ in python_blocks()} == {"README.md", "api.md"}


def test_einarray_search_is_the_submodule_and_the_api_call(tmp_path):
    import importlib

    import einarray.search as mod
    from einarray.search import Searcher

    assert einarray.search is mod is importlib.import_module("einarray.search")
    assert mod.Searcher is Searcher
    p = tmp_path / "s.yaml"
    p.write_text(GEMM + "search: {objective: latency, budget: 5}\n")
    assert einarray.search(p).budget == 5


def test_einarray_search_is_callable_in_a_fresh_interpreter():
    code = "import einarray; print(callable(einarray.search), hasattr(einarray.search, 'Searcher'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


def test_import_einarray_is_cheap():
    code = ("import sys, einarray; print(sorted(m for m in ('numpy', 'networkx', 'yaml', 'rich', 'mapping', "
            "'sim', 'einsum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def gemm(tmp_path):
    p = tmp_path / "gemm.yaml"
    p.write_text(GEMM)
    return p


def test_run_matches_the_cli_report(gemm, tmp_path, capsys):
    res = einarray.run(gemm)
    assert main(["run", str(gemm), "-o", str(tmp_path / "out"), "--no-plots", "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert res.to_json() == (tmp_path / "out" / "report.json").read_text(encoding="utf-8")
    report = json.loads(res.to_json())
    assert res.summary.cycles == report["cycles"] == sum(layer.cycles for layer in res.layers)
    assert res.summary.latency_s == pytest.approx(res.summary.cycles / 1e9)  # systolic-16x16 runs at 1 GHz
    assert [layer.name for layer in res.layers] == ["gemm"]
    assert res.layers[0].mapping_origin == "default"
    assert einarray.RunResult.from_report(report).summary == res.summary


@pytest.mark.parametrize("part", ["result", "summary", "layer"])
def test_results_are_frozen(gemm, part):
    res = einarray.run(gemm)
    obj = {"result": res, "summary": res.summary, "layer": res.layers[0]}[part]
    field = dataclasses.fields(obj)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)


def test_run_takes_a_loaded_spec_and_rank_overrides(gemm):
    spec = einarray.load_config(gemm, ranks={"M": 64})
    assert spec.layers[0].config.cascade.ranks["M"].size == 64
    assert einarray.run(spec).summary.macs == 64 * 32 * 32
    with pytest.raises(TypeError):
        einarray.run(spec, ranks={"M": 8})


def test_simulate_matches_the_cli(gemm, capsys):
    sim = einarray.simulate(gemm)
    assert main(["simulate", str(gemm), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert sim.cycles == cli["cycles"] and sim.mapping_origin == cli["mapping_origin"] == "default"
    assert sim.energy_pj == pytest.approx(cli["energy_pj"]["total"])
    assert json.loads(sim.to_json())["cycles"] == cli["cycles"]
    # a Config (a layer of load_config) simulates to the same figures
    assert einarray.simulate(einarray.load_config(gemm).layers[0].config).cycles == sim.cycles


def test_search_is_never_worse_than_the_default(gemm, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GEMM + "search: {objective: latency}\n")
    found = einarray.search(p, budget=20, seed=1)
    assert found.budget == 20 and found.seed == 1
    assert found.figures["cycles"] <= einarray.simulate(gemm).cycles


def test_evaluate_is_numpy(tmp_path):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((7, 2))
    out = einarray.evaluate("gemm", {"A": a, "B": b})
    np.testing.assert_allclose(out["C"], a @ b, rtol=1e-12)
    c = Cascade.from_yaml("gemm", ranks={"M": 3, "N": 4, "K": 2})
    out = einarray.evaluate(c, seed=5)
    np.testing.assert_allclose(out["C"], out["A"] @ out["B"], rtol=1e-12)


def test_softmax_reference_is_a_softmax():
    c = Cascade.from_yaml("softmax-1pass", ranks={"M": 4, "P": 8, "P0": 4, "E": 4, "F": 4})
    t = einarray.evaluate(c, seed=2)
    q, k, v = (t[n] for n in ("Q", "K", "V"))  # Q[m, e], K[p, e], V[p, f]
    s = q @ k.T * 0.125  # the cascade's scale parameter
    w = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(t["AV"], (w / w.sum(axis=1, keepdims=True)) @ v, rtol=1e-9)


def test_from_yaml_takes_a_file_and_names_the_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text((REPO / "einsum" / "library" / "gemm.yaml").read_text())
    assert Cascade.from_yaml(p).name == "gemm"
    with pytest.raises(ConfigError, match="softmax-1pass.yaml:"):
        Cascade.from_yaml("softmax-1pass", ranks={"P": 8, "P0": 3, "P1": 2})  # needs ceil(8/3) = 3
