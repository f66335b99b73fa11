# amaranth: UnusedElaboratable=no
"""The shared cocotb helper: Verilog sources, simulator checks (CI must never skip)."""

from __future__ import annotations

import shutil

import pytest
from cocotb_runner import require_simulator, run_cocotb, verilog_of

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
