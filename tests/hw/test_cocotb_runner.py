# amaranth: UnusedElaboratable=no
"""The shared cocotb helper: Verilog sources, simulator checks (CI must never skip), the
build cache."""

from __future__ import annotations

import shutil

import pytest
from cocotb_runner import build_key, require_simulator, run_cocotb, verilog_of

from hw.gelu import Gelu


def test_verilog_of_accepts_component_factory_text_and_path(tmp_path):
    v1 = verilog_of(Gelu(), "gelu")
    v2 = verilog_of(lambda: Gelu(), "gelu")
    assert v1 == v2 and "module gelu" in v1
    p = tmp_path / "g.v"
    p.write_text(v1)
    assert verilog_of(p, "gelu") == v1
    assert verilog_of(str(p), "gelu") == v1
    assert verilog_of(v1, "gelu") == v1


def test_missing_simulator_fails_in_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda exe: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must not be skipped"):
        require_simulator("verilator")


def test_missing_simulator_skips_locally(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda exe: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_simulator("icarus")


def test_unknown_simulator_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown simulator"):
        run_cocotb(Gelu(), "gelu", "cocotb_gelu", "modelsim", tmp_path)


def test_build_key_covers_verilog_toplevel_simulator_and_flags():
    v = verilog_of(Gelu(), "gelu")
    base = build_key(v, "gelu", "icarus", [])
    assert build_key(v, "gelu", "icarus", []) == base and len(base) == 16
    others = {build_key(v + "\n// changed\n", "gelu", "icarus", []),
              build_key(v, "gelu2", "icarus", []),
              build_key(v, "gelu", "verilator", []),
              build_key(v, "gelu", "icarus", ["-DX=1"])}
    assert base not in others and len(others) == 4


def test_same_verilog_is_built_once_and_shared(tmp_path):
    """Two runs (other parameters, other test directories) of one Verilog: one build."""
    v = verilog_of(Gelu(), "gelu")
    root = tmp_path / "cache"
    runs = []
    for seed in (1, 2):
        res = run_cocotb(v, "gelu", "cocotb_gelu", "icarus", tmp_path / f"run{seed}",
                         env={"N_RANDOM": "40", "SEED": str(seed)}, testcase="gelu_random_stalls",
                         build_root=root)
        assert res.parent == tmp_path / f"run{seed}" and res.exists()
        (build,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("gelu-")]
        runs.append((build, (build / "sim.vvp").stat().st_mtime_ns))
    assert runs[0] == runs[1]
    assert build.name == f"gelu-icarus-{build_key(v, 'gelu', 'icarus', [])}"
    assert (build / ".built").read_text() == build.name.rsplit("-", 1)[1]


def test_interrupted_build_is_redone(tmp_path):
    v = verilog_of(Gelu(), "gelu")
    root = tmp_path / "cache"
    build = root / f"gelu-icarus-{build_key(v, 'gelu', 'icarus', [])}"
    build.mkdir(parents=True)
    (build / "sim.vvp").write_text("half-written\n")  # no .built stamp
    run_cocotb(v, "gelu", "cocotb_gelu", "icarus", tmp_path / "run", build_root=root,
               env={"N_RANDOM": "40"}, testcase="gelu_full_throughput_and_latency")
    assert (build / "sim.vvp").read_text() != "half-written\n"
    assert (build / ".built").exists()
