"""einarray.tables and ``--format table|csv|json`` on every command that prints a table:
csv carries the raw values (the result's own numbers, not the terminal's abbreviations) and
stdout holds only data."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from einarray.cli import main
from einarray.tables import Cell, Column, Table, emit

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
GEMM = ROOT / "mapping/configs/unfused.yaml"


def _blocks(text: str) -> dict[str, list[dict[str, str]]]:
    """A multi-table csv: ``# TITLE`` blocks separated by blank lines."""
    out: dict[str, list[dict[str, str]]] = {}
    for block in text.strip("\n").split("\n\n"):
        head, _, body = block.partition("\n")
        assert head.startswith("# "), block
        out[head[2:]] = list(csv.DictReader(io.StringIO(body)))
    return out


def test_table_keeps_raw_values_for_csv_and_json():
    t = Table("t", [Column("name"), Column("latency", lambda v: f"{v * 1e3:.3g} ms", True, "latency_s"),
                    Column("what")])
    t.add("a, b", 1.25e-3, Cell(3, "three"))
    t.add('say "x"', 2e-6, {"mac": 4})
    buf = io.StringIO()
    emit([t], "csv", out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows == [["name", "latency_s", "what"], ["a, b", "0.00125", "3"], ['say "x"', "2e-06", '{"mac": 4}']]
    buf = io.StringIO()
    emit([t], "json", out=buf)
    assert json.loads(buf.getvalue()) == {"tables": [{"title": "t", "columns": ["name", "latency_s", "what"],
                                                      "rows": [{"name": "a, b", "latency_s": 0.00125, "what": 3},
                                                               {"name": 'say "x"', "latency_s": 2e-06,
                                                                "what": {"mac": 4}}]}]}
    rt = t.to_rich()
    assert [c.header for c in rt.columns] == ["name", "latency", "what"]
    assert list(rt.columns[1].cells) == ["1.25 ms", "0.002 ms"] and list(rt.columns[2].cells)[0] == "three"
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        t.add(1, 2)


def test_several_tables_are_csv_blocks():
    a, b = Table("first", [Column("x")]), Table("second", [Column("y"), Column("z")])
    a.add(1)
    b.add(2, 3)
    buf = io.StringIO()
    emit([a, b], "csv", out=buf)
    assert _blocks(buf.getvalue()) == {"first": [{"x": "1"}], "second": [{"y": "2", "z": "3"}]}


def test_json_and_another_format_disagree(capsys):
    assert main(["check", "softmax-3pass", "--json", "--format", "csv"]) == 2
    assert "--json and --format csv disagree" in capsys.readouterr().err


def test_simulate_csv_is_the_results_numbers(capsys):
    assert main(["simulate", str(GEMM), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(GEMM), "--format", "csv"]) == 0
    cap = capsys.readouterr()
    tabs = _blocks(cap.out)
    assert set(tabs) == {"utilization", "traffic (words)", "per Einsum",
                         "memory energy per tensor and level (uJ)"}
    mem = tabs["memory energy per tensor and level (uJ)"]
    assert sum(float(r["total_pj"]) for r in mem) == pytest.approx(res["energy_pj"]["memory"], rel=1e-12)
    for r in mem:
        want = res["energy_pj"]["tensors"][r["tensor"]]
        assert r["role"] == want["role"]
        assert float(r["DRAM_pj"]) == want["levels"].get("DRAM", 0.0)
    for r in tabs["per Einsum"]:
        e = res["einsums"][r["einsum"]]
        assert float(r["busy cycles"]) == e["cycles"]
        assert json.loads(r["actions"]) == e["actions"]
        assert float(r["energy uJ"]) == pytest.approx(e["energy_pj"] / 1e6, rel=1e-15)
    for r in tabs["traffic (words)"]:
        assert int(r["reads"]) == res["traffic"][r["level"]]["reads"]
    for r in tabs["utilization"]:
        assert float(r["PE util"]) == res["utilization"][r["unit"]]["pe_util"]
    # the other lines went to stderr
    assert "cycles =" in cap.err and "mapping: given" in cap.err
    assert main(["simulate", str(GEMM), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["cycles"] == res["cycles"]


@pytest.mark.parametrize("example,column", [("examples/eyeriss/alexnet-conv3.yaml", "energy_mac_equivalent"),
                                            ("examples/timeloop/01-conv1d-2level-os.yaml", "energy_pj")])
def test_hierarchy_csv_names_the_energy_unit(example, column, capsys):
    """A hierarchy arch's csv: the per-level rows of --json, the energy column named with the
    arch's unit (Eyeriss-like's energies are MAC-equivalents, not pJ)."""
    assert main(["simulate", str(ROOT / example), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(ROOT / example), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["level", "tensor", "instances", "tile", "reads", "fills", "updates", column]
    for r in rows:
        if r["tensor"] not in ("(leak)", "MAC"):
            want = res["levels"][r["level"]]["tensors"][r["tensor"]]
            assert float(r["reads"]) == want["reads"] and float(r[column]) == want["energy_pj"]


def test_run_csv_summary_and_layers_are_the_reports(tmp_path, capsys):
    assert main(["run", str(DATA / "vit-tiny-small.yaml"), "-o", str(tmp_path / "r"), "--format", "csv",
                 "--no-plots"]) == 0
    cap = capsys.readouterr()
    rep = json.loads((tmp_path / "r/report.json").read_text())
    tabs = _blocks(cap.out)
    title = next(iter(tabs))
    summary = {r["metric"]: r["value"] for r in tabs[title]}
    assert float(summary["latency_s"]) == rep["summary"]["latency_s"]
    assert float(summary["energy_per_inference_j"]) == pytest.approx(rep["summary"]["energy_per_inference_pj"] * 1e-12)
    assert int(summary["macs"]) == rep["summary"]["macs"]
    assert float(summary["tops_per_w"]) == rep["summary"]["tops_per_w"]
    layers = tabs["layers (util: PE-cycles / PEs x all cycles)"]
    assert [r["layer"] for r in layers] == [l["name"] for l in rep["layers"]]
    for r, l in zip(layers, rep["layers"]):
        assert float(r["latency_s"]) == l["latency_s"] and float(r["energy_pj"]) == l["energy_pj"]
    assert "report:" in cap.err and "report:" not in cap.out


@pytest.mark.parametrize("argv,title", [
    (["cascades"], "einarray cascade library"),
    (["check", "softmax-3pass"], "einsums"),
])
def test_cascade_commands_print_csv(argv, title, capsys):
    assert main(argv + ["--format", "csv"]) == 0
    out = capsys.readouterr().out
    if argv[0] == "cascades":
        rows = list(csv.DictReader(io.StringIO(out)))
        by = {r["name"]: r for r in rows}
        assert json.loads(by["softmax-3pass"]["passes"])["P"] == 3
        assert int(by["softmax-3pass"]["einsums"]) == 6
    else:
        tabs = _blocks(out)
        es = tabs[title]
        assert [int(r["points"]) for r in es] == [128 * 128 * 64, 128 * 128, 128 * 128, 128 * 128,
                                                  128 * 128, 128 * 128 * 64]
        assert json.loads(es[4]["pass"])["P"] == 3
        assert {r["tensor"]: int(r["elements"]) for r in tabs["tensors"]}["QK"] == 128 * 128


def test_compare_and_sweep_formats(tmp_path, capsys):
    assert main(["compare", str(DATA / "with-include.yaml"), "-o", str(tmp_path / "c"), "--no-progress",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    data = json.loads((tmp_path / "c/compare.json").read_text())["rows"]
    assert float(rows[0]["latency_s"]) == data[0]["latency_s"]
    assert float(rows[0]["energy_per_inference_pj"]) == data[0]["energy_per_inference_pj"]
    assert main(["compare", str(DATA / "with-include.yaml"), "-o", str(tmp_path / "c"), "--force",
                 "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["latency_s"] == data[0]["latency_s"]


def test_search_csv(tmp_path, capsys):
    cfg = tmp_path / "gemm.yaml"
    cfg.write_text("workload: {cascade: gemm, ranks: {M: 64, N: 64, K: 64}}\narch: systolic-16x16\n"
                   "search: {objective: latency, budget: 8}\n")
    assert main(["search", str(cfg), "--no-progress", "--format", "csv"]) == 0
    cap = capsys.readouterr()
    tabs = _blocks(cap.out)
    best = next(v for k, v in tabs.items() if k.startswith("best mapping of"))
    fig = {r["metric"]: r["found"] for r in best}
    assert int(fig["cycles"]) > 0 and float(fig["latency_s"]) > 0
    pareto = tabs["Pareto set: latency vs energy (simulated)"]
    assert any(r["best"] == "True" for r in pareto)
    assert "mapping:" in cap.err and "mapping:" not in cap.out  # the section to paste is not data
