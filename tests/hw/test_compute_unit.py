"""Compute unit cocotb tests on Icarus and Verilator (each parameter set built once per
simulator and cached), driven through the shared helper ``tests/hw/cocotb_runner.py``.

Every run covers the >= 8 tile shapes of ``cu_common.SCENARIOS`` (K = 1..32, bias, relu,
shift, saturation corners, attention opcodes, operand reuse, K split) plus the GELU tiles,
with and without random valid/ready stalls; RTL == golden model bit for bit, and the
cycles of each tile == ``tile_cycles`` exactly when nothing stalls.
"""

from __future__ import annotations

import json

import pytest
from cocotb_runner import SIMULATORS, run_cocotb
from ecp5_models import mult18x18d_model

from hw.compute_unit import ComputeUnit
from hw.export import to_verilog

PARAM_SETS = {
    "2x2": {"rows": 2, "cols": 2, "max_k": 32},
    "4x4": {"rows": 4, "cols": 4, "max_k": 32},
    # Lattice MULT18X18D instances (registered DSP), simulated with tests/hw/ecp5_models.py
    "2x2_ecp5dsp": {"rows": 2, "cols": 2, "max_k": 32, "dsp": "ecp5"},
    "3x2_wide": {"rows": 3, "cols": 2, "a_width": 24, "a_frac": 16, "w_width": 12,
                 "w_frac": 10, "acc_width": 44, "o_width": 12, "o_frac": 6, "bias_frac": 8,
                 "max_k": 64, "gelu": False},
}

CASES = [("2x2", "icarus"), ("4x4", "icarus"), ("3x2_wide", "icarus"), ("2x2_ecp5dsp", "icarus"),
         ("2x2", "verilator"), ("4x4", "verilator")]


@pytest.mark.parametrize("name,simulator", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_compute_unit_cocotb(name, simulator, tmp_path):
    assert simulator in SIMULATORS
    params = PARAM_SETS[name]
    run_cocotb(
        to_verilog(ComputeUnit(**params), "compute_unit")
        + (mult18x18d_model() if params.get("dsp") == "ecp5" else ""),  # Verilog text
        "compute_unit",
        "cocotb_compute_unit",
        simulator,
        tmp_path,
        env={"CU_PARAMS": json.dumps(params), "SEED": "3"},
    )
