"""Sweeps: grid expansion, validation, incremental results, resume, failures, Dask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from einarray.sweep import apply_overrides, load_sweep, run_sweep
from einsum.errors import ConfigError

BASE = "arch: {rows: 4, cols: 4}\nworkload: {cascade: gemm, ranks: {P: 16}}\n"


def write(tmp_path: Path, body: str, evaluator: str = "sweep_points:cost") -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    p = tmp_path / "sweep.yaml"
    p.write_text("sweep:\n  version: 1\n  name: s\n  base: base.yaml\n"
                 f"  evaluator: '{evaluator}'\n" + body)
    return p


def test_grid_expands_to_all_combinations(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.rows: [2, 4, 8]\n    workload.ranks.P: [16, 64]\n"))
    assert len(spec.tasks) == 6
    assert spec.parameters == ("arch.rows", "workload.ranks.P")
    assert len({t.point_id for t in spec.tasks}) == 6


def test_apply_overrides_is_a_deep_copy():
    base = {"a": {"b": [1, {"c": 2}]}}
    out = apply_overrides(base, [("a.b.1.c", 5)])
    assert out["a"]["b"][1]["c"] == 5 and base["a"]["b"][1]["c"] == 2


@pytest.mark.parametrize("body,msg", [
    ("  grid:\n    arch.rowz: [1]\n", "sweep.yaml:7 sweep.grid.arch.rowz: unknown parameter 'arch.rowz': "
                                       "'rowz' is not a key of arch (keys: cols, rows)"),
    ("  grid: {}\n", "sweep.yaml:6 sweep.grid: the grid is empty"),
    ("  grid:\n    arch.rows: []\n", "sweep.grid.arch.rows: expected a non-empty list of values"),
    ("  points: []\n", "sweep.points: the list of points is empty"),
    ("  points:\n    - {arch.depth: 3}\n", "unknown parameter 'arch.depth'"),
    ("  grid:\n    arch.rows: [1]\n  points:\n    - {arch.rows: 2}\n", "give exactly one of 'grid'"),
    ("  grid:\n    arch.rows: [1]\n  colour: red\n", "unknown key 'colour'"),
])
def test_bad_sweep_files(tmp_path, body, msg):
    with pytest.raises(ConfigError) as exc:
        load_sweep(write(tmp_path, body))
    assert msg in str(exc.value)


def test_run_records_failures_and_resumes(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.rows: [2, 4]\n    workload.ranks.P: [16, -1]\n"))
    out = tmp_path / "out"
    res = run_sweep(spec, out, workers=1, progress=False)
    assert len(res.records) == 4
    failed = res.failed
    assert len(failed) == 2 and all("negative sequence length" in r["error"] for r in failed)
    ok = [r for r in res.records if r["status"] == "ok"]
    assert {(r["arch.rows"], r["energy_pj"]) for r in ok} == {(2, 320.0), (4, 640.0)}
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4
    csv_text = (out / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("index,point_id,arch.rows,workload.ranks.P,status")
    assert (out / "energy-vs-latency.png").exists()
    # resume: ok points are skipped, failed points run again
    res2 = run_sweep(spec, out, workers=1, progress=False)
    assert res2.skipped == 2 and len(res2.records) == 4


def test_interrupted_jsonl_line_is_ignored_on_resume(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.rows: [2, 4, 8]\n"))
    out = tmp_path / "out"
    run_sweep(spec, out, workers=1, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    res = run_sweep(spec, out, workers=1, progress=False)
    assert res.skipped == 1 and len(res.records) == 3 and not res.failed


def test_process_pool_and_dying_worker(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    workload.ranks.P: [16, 999, 32, 64]\n",
                            evaluator="sweep_points:dies_on_big"))
    res = run_sweep(spec, tmp_path / "out", workers=2, progress=False)
    by_p = {r["workload.ranks.P"]: r for r in res.records}
    assert by_p[999]["status"] == "failed" and "worker process died" in by_p[999]["error"]
    assert all(by_p[p]["status"] == "ok" for p in (16, 32, 64))


def test_dask_local_cluster_same_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.rows: [2, 4]\n    workload.ranks.P: [16, 64]\n"))
    local = run_sweep(spec, tmp_path / "local", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        res = run_sweep(spec, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items()} for r in rs]  # noqa: E731
    assert strip(res.records) == strip(local.records)


def test_unreachable_scheduler(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.rows: [2]\n"))
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_sweep(spec, tmp_path / "o", scheduler="tcp://127.0.0.1:9", progress=False, connect_timeout=1)


def test_cli_sweep_partial_failure_exits_zero_total_failure_one(tmp_path, capsys):
    from einarray.cli import main

    p = write(tmp_path, "  grid:\n    workload.ranks.P: [16, -1]\n")
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "-j", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 failed" in out and "negative sequence length" in out
    p = write(tmp_path, "  grid:\n    workload.ranks.P: [-1, -2]\n")
    assert main(["sweep", str(p), "-o", str(tmp_path / "o2"), "-j", "1", "--no-progress"]) == 1
