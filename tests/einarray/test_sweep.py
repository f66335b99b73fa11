"""Sweeps: grid expansion, validation up front, point identity and resume, failures, Dask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import einarray
from einarray.cli import main
from einarray.sweep import load_sweep, run_sweep
from einsum.errors import ConfigError

BASE = "workload: {cascade: gemm, ranks: {M: 16, N: 16, K: 16}}\narch: systolic-16x16\n"
REAL = "einarray.points:evaluate_point"
CHANGED = "config changed (the base, a file it includes or names, or the sweep's search)"


def write(tmp_path: Path, body: str, evaluator: str = "sweep_points:cost", base: str = BASE) -> Path:
    (tmp_path / "base.yaml").write_text(base)
    p = tmp_path / "sweep.yaml"
    p.write_text("sweep:\n  version: 1\n  name: s\n  base: base.yaml\n"
                 f"  evaluator: '{evaluator}'\n" + body)
    return p


def figures(res) -> list[tuple]:
    return [(r["latency_s"], r["energy_pj"]) for r in res.records]


def test_grid_expands_to_all_combinations(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.array2d.rows: [2, 4, 8]\n    workload.ranks.M: [16, 64]\n"))
    assert len(spec.tasks) == 6
    assert spec.parameters == ("arch.array2d.rows", "workload.ranks.M")
    assert len({t.point_id for t in spec.tasks}) == 6
    assert spec.tasks[5].data()["arch"]["array2d"]["rows"] == 8  # the shipped arch, overridden
    assert spec.tasks[5].data()["workload"]["ranks"] == {"M": 64, "N": 16, "K": 16}


def test_overrides_apply_to_copies(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.memory.1.read_bw: [8, 128]\n"))
    a, b = (t.data()["arch"]["memory"][1]["read_bw"] for t in spec.tasks)
    assert (a, b) == (8, 128)
    assert spec.tasks[0].sections["arch"][0]["memory"][1]["read_bw"] == 64  # the base is untouched


@pytest.mark.parametrize("body,msg", [
    ("  grid:\n    arch.array2d.rowz: [1]\n",
     "sweep.yaml:7 sweep.grid.arch.array2d.rowz: unknown parameter 'arch.array2d.rowz': 'rowz' is not a key "
     "of arch.array2d (keys: cols, macs_per_pe, ops, rf_entries, rows, systolic)"),
    ("  grid:\n    include: [x.yaml]\n", "unknown parameter 'include': 'include' is not a key of the config "
                                          "(keys: arch, workload)"),
    ("  grid: {}\n", "sweep.yaml:6 sweep.grid: the grid is empty"),
    ("  grid:\n    arch.array2d.rows: []\n", "sweep.grid.arch.array2d.rows: expected a non-empty list of values"),
    ("  points: []\n", "sweep.points: the list of points is empty"),
    ("  points:\n    - {arch.depth: 3}\n", "unknown parameter 'arch.depth'"),
    ("  grid:\n    arch.array2d.rows: [1]\n  points:\n    - {arch.array2d.rows: 2}\n", "give exactly one of 'grid'"),
    ("  grid:\n    arch.array2d.rows: [1]\n  colour: red\n", "unknown key 'colour'"),
    ("  points:\n    - {arch.array2d.rows: 2}\n    - {arch.array2d.rows: 2}\n",
     "sweep.yaml:8 sweep.points[1]: points 0 and 1 have the same parameters"),
])
def test_bad_sweep_files(tmp_path, body, msg):
    with pytest.raises(ConfigError) as exc:
        load_sweep(write(tmp_path, body))
    assert msg in str(exc.value)


@pytest.mark.parametrize("body,msg,original", [
    # the grid key whose value is wrong, the point, and the original located error
    ("  grid:\n    workload.ranks.M: [16]\n    arch.array2d.rows: [8, 0]\n",
     "{sweep}:8 sweep.grid.arch.array2d.rows: point 1 (workload.ranks.M=16, arch.array2d.rows=0): "
     "{arch}:10 arch.array2d.rows: ", "expected a row count > 0, got 0"),
    ("  points:\n    - {workload.ranks.M: 16}\n    - {workload.ranks.M: -4}\n",
     "{sweep}:8 sweep.points[1].workload.ranks.M: point 1 (workload.ranks.M=-4): "
     "{base}:1 workload.ranks.M: ", "a rank size must be a positive integer, got -4"),
    ("  grid:\n    arch: [systolic-16x16, no-such-arch]\n",
     "{sweep}:7 sweep.grid.arch: point 1 (arch=no-such-arch): ", "no shipped arch named 'no-such-arch'"),
])
def test_bad_point_fails_before_anything_runs(tmp_path, capsys, body, msg, original):
    from mapping.arch import resolve_arch

    p = write(tmp_path, body, evaluator=REAL)
    msg = msg.format(arch=resolve_arch("systolic-16x16"), base=tmp_path / "base.yaml", sweep=p)
    with pytest.raises(ConfigError) as exc:
        load_sweep(p)
    assert str(exc.value).startswith(msg) and original in str(exc.value)
    out = tmp_path / "o"
    assert main(["sweep", str(p), "-o", str(out), "-j", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"einarray sweep: error: {exc.value}"]
    assert not out.exists()


def test_run_records_failures_and_resumes(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.array2d.rows: [2, 4]\n    workload.ranks.M: [16, 48]\n"))
    out = tmp_path / "out"
    res = run_sweep(spec, out, workers=1, progress=False)
    assert len(res.records) == 4 and res.rerun == {"new point": 4}
    failed = res.failed
    assert len(failed) == 2 and all("unlucky size" in r["error"] for r in failed)
    ok = [r for r in res.records if r["status"] == "ok"]
    assert {(r["arch.array2d.rows"], r["energy_pj"]) for r in ok} == {(2, 320.0), (4, 640.0)}
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert json.loads(lines[0])["einarray_version"] == einarray.__version__
    csv_text = (out / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("index,point_id,arch.array2d.rows,workload.ranks.M,status")
    assert (out / "energy-vs-latency.png").exists()
    # resume: ok points are skipped, failed points run again
    res2 = run_sweep(spec, out, workers=1, progress=False)
    assert res2.skipped == 2 and len(res2.records) == 4 and res2.rerun == {"failed last time": 2}


def test_interrupted_jsonl_line_is_ignored_on_resume(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.array2d.rows: [2, 4, 8]\n"))
    out = tmp_path / "out"
    run_sweep(spec, out, workers=1, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    res = run_sweep(spec, out, workers=1, progress=False)
    assert res.skipped == 1 and len(res.records) == 3 and not res.failed


def test_process_pool_and_dying_worker(tmp_path):
    spec = load_sweep(write(tmp_path, "  grid:\n    workload.ranks.M: [16, 999, 32, 64]\n",
                            evaluator="sweep_points:dies_on_big"))
    res = run_sweep(spec, tmp_path / "out", workers=2, progress=False)
    by_m = {r["workload.ranks.M"]: r for r in res.records}
    assert by_m[999]["status"] == "failed" and "worker process died" in by_m[999]["error"]
    assert all(by_m[m]["status"] == "ok" for m in (16, 32, 64))


# -- identity: a recorded result is reused only for the same config and version ----------
GRID = "  grid:\n    workload.ranks.M: [16, 32]\n"


def test_base_change_runs_every_point_again(tmp_path):
    p = write(tmp_path, GRID, evaluator=REAL)
    out = tmp_path / "out"
    first = run_sweep(load_sweep(p), out, workers=1, progress=False)
    again = run_sweep(load_sweep(p), out, workers=1, progress=False)  # unchanged: resumed
    assert again.skipped == 2 and again.rerun == {} and figures(again) == figures(first)
    write(tmp_path, GRID, evaluator=REAL, base=BASE.replace("N: 16", "N: 64"))
    changed = run_sweep(load_sweep(p), out, workers=1, progress=False)
    assert changed.skipped == 0 and changed.rerun == {CHANGED: 2}
    fresh = run_sweep(load_sweep(p), tmp_path / "fresh", workers=1, progress=False)
    assert figures(changed) == figures(fresh)
    assert all(a[0] != b[0] for a, b in zip(figures(changed), figures(first)))
    # results.csv holds this config's points only, though results.jsonl keeps every line
    assert len((out / "results.csv").read_text().splitlines()) == 3
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    # back to the first base: its recorded results are this config's again
    write(tmp_path, GRID, evaluator=REAL)
    back = run_sweep(load_sweep(p), out, workers=1, progress=False)
    assert back.skipped == 2 and figures(back) == figures(first)


def test_comment_and_layout_changes_resume(tmp_path):
    p = write(tmp_path, GRID, evaluator="sweep_points:cost")
    run_sweep(load_sweep(p), tmp_path / "out", workers=1, progress=False)
    write(tmp_path, GRID, base="# a comment\nworkload:\n  cascade: gemm\n  ranks: {K: 16, N: 16, M: 16}\n"
                               "arch: systolic-16x16   # the 16x16 array\n")
    res = run_sweep(load_sweep(p), tmp_path / "out", workers=1, progress=False)
    assert res.skipped == 2 and res.rerun == {}


def test_included_file_change_runs_again(tmp_path):
    from mapping.arch import resolve_arch

    arch = resolve_arch("systolic-16x16").read_text()
    (tmp_path / "my-arch.yaml").write_text(arch)
    base = "include: [my-arch.yaml]\nworkload: {cascade: gemm, ranks: {M: 16, N: 16, K: 16}}\n"
    p = write(tmp_path, "  grid:\n    arch.array2d.rows: [8, 16]\n", evaluator=REAL, base=base)
    out = tmp_path / "out"
    first = run_sweep(load_sweep(p), out, workers=1, progress=False)
    (tmp_path / "my-arch.yaml").write_text(arch.replace("clock_hz: 1.0e9", "clock_hz: 0.5e9"))
    res = run_sweep(load_sweep(p), out, workers=1, progress=False)
    assert res.skipped == 0 and res.rerun == {CHANGED: 2}
    # same cycles at half the clock: twice the latency
    assert [r["cycles"] for r in res.records] == [r["cycles"] for r in first.records]
    assert [r["latency_s"] for r in res.records] == pytest.approx([2 * r["latency_s"] for r in first.records])


def test_named_cascade_file_change_runs_again(tmp_path):
    from einsum.load import resolve

    gemm = resolve("gemm").read_text()
    (tmp_path / "my-gemm.yaml").write_text(gemm)
    base = "workload: {cascade: my-gemm.yaml, ranks: {M: 16, N: 16}}\narch: systolic-16x16\n"
    p = write(tmp_path, GRID, evaluator=REAL, base=base)
    out = tmp_path / "out"
    first = run_sweep(load_sweep(p), out, workers=1, progress=False)
    assert first.records[0]["cycles"] > 0
    (tmp_path / "my-gemm.yaml").write_text(gemm.replace("K: 768", "K: 64"))  # the rank the base keeps
    res = run_sweep(load_sweep(p), out, workers=1, progress=False)
    assert res.skipped == 0 and res.rerun == {CHANGED: 2}
    assert all(a["cycles"] != b["cycles"] for a, b in zip(res.records, first.records))


def test_version_change_runs_again(tmp_path, monkeypatch):
    p = write(tmp_path, GRID)
    out = tmp_path / "out"
    run_sweep(load_sweep(p), out, workers=1, progress=False)
    old = einarray.__version__
    monkeypatch.setattr(einarray, "__version__", "99.0")
    res = run_sweep(load_sweep(p), out, workers=1, progress=False)
    assert res.skipped == 0 and res.rerun == {f"einarray version changed ({old} -> 99.0)": 2}
    assert run_sweep(load_sweep(p), out, workers=1, progress=False).skipped == 2


def test_results_without_a_config_digest_are_not_reused(tmp_path):
    """A results.jsonl line that names its point by the parameters alone (no config digest)
    may hold any config's result: the point runs again."""
    spec = load_sweep(write(tmp_path, GRID))
    out = tmp_path / "out"
    run_sweep(spec, out, workers=1, progress=False)
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    legacy = [{"index": r["index"], "point_id": r["params_id"], "workload.ranks.M": r["workload.ranks.M"],
               "status": "ok", "latency_s": 1.0, "energy_pj": 1.0} for r in lines]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in legacy))
    res = run_sweep(spec, out, workers=1, progress=False)
    assert res.skipped == 0 and res.rerun == {"recorded by an einarray that did not record its config": 2}
    assert [r["latency_s"] for r in res.records] == [16 / 16 * 1e-6, 32 / 16 * 1e-6]


def test_cli_says_why_points_ran(tmp_path, capsys):
    p = write(tmp_path, GRID)
    out = tmp_path / "o"
    args = ["sweep", str(p), "-o", str(out), "-j", "1", "--no-progress"]
    assert main(args) == 0
    assert "(0 resumed, 2 run, 0 failed)" in capsys.readouterr().out
    assert main(args) == 0
    assert "(2 resumed, 0 run, 0 failed)" in capsys.readouterr().out
    write(tmp_path, GRID, base=BASE.replace("K: 16", "K: 32"))
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "(0 resumed, 2 run, 0 failed)" in text and "run: 2 config changed" in text


# -- bases as run and simulate accept them ---------------------------------------------
def test_named_arch_base_matches_simulate_and_run_with_set(tmp_path, capsys):
    p = write(tmp_path, "  grid:\n    arch.array2d.rows: [8, 16]\n", evaluator=REAL)
    res = run_sweep(load_sweep(p), tmp_path / "out", workers=2, progress=False)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    for rec in res.records:
        rows = rec["arch.array2d.rows"]
        assert main(["simulate", str(tmp_path / "base.yaml"), "--set", f"arch.array2d.rows={rows}",
                     "--json"]) == 0
        sim = json.loads(capsys.readouterr().out)
        assert (rec["cycles"], rec["latency_s"], rec["energy_pj"]) == \
            (sim["cycles"], sim["latency_s"], sim["energy_pj"]["total"])
        assert main(["run", str(tmp_path / "base.yaml"), "--set", f"arch.array2d.rows={rows}", "--json",
                     "--no-progress", "--no-plots", "-o", str(tmp_path / f"run{rows}")]) == 0
        run = json.loads(capsys.readouterr().out)
        assert (rec["latency_s"], rec["energy_pj"]) == (run["latency_s"], run["energy_per_inference_pj"])
    assert [r["cycles"] for r in res.records] == [102, 94]  # `einarray simulate --set` printed these


def test_whole_section_by_name(tmp_path):
    p = write(tmp_path, "  grid:\n    arch: [systolic-16x16, systolic-32x32]\n", evaluator=REAL)
    spec = load_sweep(p)
    assert spec.tasks[1].data()["arch"]["name"] == "systolic-32x32"
    res = run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    from einarray.flow import load_run, run

    for rec, arch in zip(res.records, ("systolic-16x16", "systolic-32x32")):
        (tmp_path / f"{arch}.yaml").write_text(BASE.replace("systolic-16x16", arch))
        assert rec["latency_s"] == run(load_run(tmp_path / f"{arch}.yaml"), progress=False)["latency_s"]


def test_model_base(tmp_path):
    from einarray.flow import load_run, run

    base = "workload: {model: vit-tiny, batch: 1, ranks: {T: 16}}\narch: fusemax\n"
    p = write(tmp_path, "  grid:\n    workload.ranks.T: [16, 32]\n", evaluator=REAL, base=base)
    with pytest.warns(UserWarning):  # fusemax's array2d lacks 'div' (as `einarray run` warns)
        res = run_sweep(load_sweep(p), tmp_path / "out", workers=1, progress=False)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    for rec in res.records:
        t = rec["workload.ranks.T"]
        (tmp_path / f"t{t}.yaml").write_text(base.replace("T: 16", f"T: {t}"))
        with pytest.warns(UserWarning):
            ref = run(load_run(tmp_path / f"t{t}.yaml"), progress=False)
        assert (rec["cycles"], rec["latency_s"], rec["energy_pj"]) == \
            (ref["cycles"], ref["latency_s"], ref["energy_pj"]["total"])
        assert rec["instances"] == sum(lay["instances"] for lay in ref["layers"])
    assert res.records[0]["cycles"] < res.records[1]["cycles"]


# -- Dask ------------------------------------------------------------------------------
def test_dask_local_cluster_same_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.array2d.rows: [2, 4]\n    workload.ranks.M: [16, 64]\n"))
    local = run_sweep(spec, tmp_path / "local", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        res = run_sweep(spec, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    assert res.records == local.records


def test_unreachable_scheduler(tmp_path):
    pytest.importorskip("distributed")
    spec = load_sweep(write(tmp_path, "  grid:\n    arch.array2d.rows: [2]\n"))
    with pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s"):
        run_sweep(spec, tmp_path / "o", scheduler="tcp://127.0.0.1:9", progress=False, connect_timeout=1)
    assert not (tmp_path / "o").exists()


def test_cli_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    p = write(tmp_path, "  grid:\n    arch.array2d.rows: [2]\n")
    out = tmp_path / "o"
    argv = ["sweep", str(p), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"]
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "einarray sweep: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s")
    assert not out.exists()


@pytest.mark.parametrize("address,why", [
    ("not a url", "not a Dask scheduler address (expected e.g. tcp://10.0.0.1:8786)"),
    ("tcp://host", "give HOST:PORT"),
    ("tcp://host:0", "give HOST:PORT"),
    ("gopher://host:70", "protocols: inproc, tcp, tls, ucx, ws, wss"),
])
def test_bad_scheduler_is_one_line_exit_2(tmp_path, capsys, address, why):
    pytest.importorskip("distributed")
    p = write(tmp_path, "  grid:\n    arch.array2d.rows: [2]\n")
    out = tmp_path / "o"
    assert main(["sweep", str(p), "-o", str(out), "--scheduler", address, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"einarray sweep: error: --scheduler {address!r}: ")
    assert why in err[0]
    assert not out.exists()


def test_cli_sweep_partial_failure_exits_zero_total_failure_one(tmp_path, capsys):
    p = write(tmp_path, "  grid:\n    workload.ranks.M: [16, 48]\n")
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "-j", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 failed" in out and "unlucky size" in out
    p = write(tmp_path, "  grid:\n    workload.ranks.M: [48]\n")
    assert main(["sweep", str(p), "-o", str(tmp_path / "o2"), "-j", "1", "--no-progress"]) == 1
