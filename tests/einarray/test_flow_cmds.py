"""einarray run/compare in the terminal: tables fit 80 columns without cutting a number, no
blank lines without a terminal, progress counts layers and runs with elapsed time."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

from einarray.cli import main
from einarray.commands.flow_cmds import compare_table, run_tables
from einarray.compare import compare
from einarray.flow import load_run, run
from einarray.progress import Bar, live_progress

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
NUMBER = re.compile(r"\d")


def _big(res: dict) -> dict:
    """The result with every figure scaled far up (the sizes that got cut before)."""
    r = copy.deepcopy(res)
    for key in ("top_einsums_by_time", "top_einsums_by_energy"):
        for e in r[key]:
            e["cycles"] = 210568740123.0
            e["energy_pj"] = 7.77e21
    s = r["summary"]
    s["macs"] = 12345678901234567
    s["dram_bytes"] = 9.87e17
    s["edp"] = 1.234e27
    for l in r["layers"]:
        l["latency_s"] *= 1e6
        l["energy_pj"] *= 1e9
    r["latency_s"] *= 1e6
    return r


def _printed(tables: list) -> str:
    con = Console(width=80, record=True, file=io.StringIO())
    for t in tables:
        con.print(t)
    return con.export_text()


def _numeric_cells(tables: list) -> list[str]:
    cells = []
    for t in tables:
        for col in t.columns:
            cells += [str(c) for c in col.cells if NUMBER.search(str(c))]
    return cells


@pytest.fixture(scope="module")
def vit():
    return run(load_run(ROOT / "examples/vit-base-fusemax.yaml"), progress=False)


@pytest.mark.parametrize("scale", ["as run", "huge"])
def test_run_tables_fit_80_columns_with_every_number_whole(vit, scale):
    res = vit if scale == "as run" else _big(vit)
    tables = run_tables(res)
    text = _printed(tables)
    lines = text.splitlines()
    assert max(len(l) for l in lines) <= 80
    assert "…" not in text and "..." not in text
    cells = _numeric_cells(tables)
    assert len(cells) > 40
    for c in cells:
        if c.startswith(("attention", "norm", "patch", "final")):
            continue  # layer names (with digits) may fold
        assert any(c in l for l in lines), c


def test_compare_table_fits_80_columns(tmp_path):
    rows = compare([DATA / "with-include.yaml", DATA / "vit-tiny-small.yaml"], tmp_path / "c", progress=False)
    for r in rows:
        r["config"] = "a-config-name-long-enough-to-fold-over-lines"
    big = copy.deepcopy(rows)
    for r in big:
        r["latency_s"] *= 1e9
        r["energy_per_inference_pj"] *= 1e12
    for rs in (rows, big):
        t = compare_table(rs, ("T", [1, 2]))
        text = _printed([t])
        lines = text.splitlines()
        assert max(len(l) for l in lines) <= 80 and "…" not in text
        for c in _numeric_cells([t]):
            assert any(c in l for l in lines), c


def test_no_blank_lines_without_a_terminal(tmp_path, capsys):
    """Progress is on by default; without a terminal it draws nothing, on stdout or stderr."""
    assert main(["run", str(DATA / "vit-tiny-small.yaml"), "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr()
    assert out.out.strip() and "" not in out.out.rstrip("\n").split("\n")
    assert "simulating" not in out.err
    assert main(["compare", str(DATA / "with-include.yaml"), "--sweep", "M:16,32,64", "-o",
                 str(tmp_path / "c")]) == 0
    out = capsys.readouterr()
    assert "" not in out.out.rstrip("\n").split("\n")
    assert "comparing" not in out.err and "simulating" not in out.err


def test_progress_counts_layers_with_elapsed_time():
    term = Console(file=io.StringIO(), force_terminal=True, width=100)
    bar = live_progress(term)
    assert bar is not None and live_progress(Console(file=io.StringIO())) is None
    assert any(isinstance(c, TimeElapsedColumn) for c in bar.columns)
    assert any(isinstance(c, MofNCompleteColumn) for c in bar.columns)
    spec = load_run(DATA / "vit-tiny-small.yaml")
    seen = []
    from sim.results import simulate

    def sim(cfg):
        (t,) = bar.tasks
        seen.append((t.description, t.completed, t.total))
        return simulate(cfg)

    with bar:
        run(spec, progress=bar, simulate=sim)
        assert bar.tasks == []  # the run's task is removed when it ends
    assert [s[1:] for s in seen] == [(i, len(spec.layers)) for i in range(len(spec.layers))]
    assert [s[0] for s in seen] == [f"simulating {l.name}" for l in spec.layers]


def test_bar_on_a_shared_display_and_off():
    term = Console(file=io.StringIO(), force_terminal=True, width=100)
    outer = Progress(console=term)
    with outer, Bar(outer, "outer", 3) as b:
        b.advance()
        b.describe("run 2/3")
        (t,) = outer.tasks
        assert (t.description, t.completed, t.total) == ("run 2/3", 1, 3)
    with Bar(False, "nothing", 2) as off:
        assert off.progress is None
        off.advance()  # a no-op


def test_sweep_draws_no_progress_without_a_terminal(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("workload: {cascade: gemm, ranks: {M: 16, N: 16, K: 16}}\n"
                                        "arch: systolic-16x16\n")
    p = tmp_path / "sweep.yaml"
    p.write_text("sweep:\n  version: 1\n  name: s\n  base: base.yaml\n  grid:\n    workload.ranks.M: [16, 32]\n")
    assert main(["sweep", str(p), "-o", str(tmp_path / "out"), "-j", "1"]) == 0
    out = capsys.readouterr()
    assert "" not in out.out.rstrip("\n").split("\n")
    assert not re.search(r"\d:\d\d:\d\d|-:--:--", out.out + out.err)  # no bar (elapsed / remaining)
