"""Compute unit cocotb tests on Icarus and Verilator (one build directory per parameter
set and simulator), driven through the shared helper ``tests/hw/cocotb_runner.py``.

Every run covers the >= 8 tile shapes of ``cu_common.SCENARIOS`` (K = 1..32, bias, relu,
shift, saturation corners, attention opcodes, operand reuse, K split) plus the GELU tiles,
with and without random valid/ready stalls; RTL == golden model bit for bit, and the
cycles of each tile == ``tile_cycles`` exactly when nothing stalls.
"""

from __future__ import annotations

import json

import pytest
from cocotb_runner import REPO, SIMULATORS, run_cocotb

from hw.compute_unit import ComputeUnit
from hw.export import to_verilog

PARAM_SETS = {
    "2x2": {"rows": 2, "cols": 2, "max_k": 32},
    "4x4": {"rows": 4, "cols": 4, "max_k": 32},
    # Lattice MULT18X18D instances (registered DSP), simulated with the behavioural model below
    "2x2_ecp5dsp": {"rows": 2, "cols": 2, "max_k": 32, "dsp": "ecp5"},
    "3x2_wide": {"rows": 3, "cols": 2, "a_width": 24, "a_frac": 16, "w_width": 12,
                 "w_frac": 10, "acc_width": 44, "o_width": 12, "o_frac": 6, "bias_frac": 8,
                 "max_k": 64, "gelu": False},
}

CASES = [("2x2", "icarus"), ("4x4", "icarus"), ("3x2_wide", "icarus"), ("2x2_ecp5dsp", "icarus"),
         ("2x2", "verilator"), ("4x4", "verilator")]


def mult18x18d_model() -> str:
    """Behavioural Verilog of ECP5 MULT18X18D in exactly the configuration the compute unit
    instantiates (signed, A/B input and output registers on CLK0/CE0/RST0, sync reset);
    any other parameter value stops the simulation."""
    ins = ([f"A{j}" for j in range(18)] + [f"B{j}" for j in range(18)] +
           ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"] +
           [f"{n}{j}" for n in ("CLK", "CE", "RST") for j in range(4)])
    outs = [f"P{j}" for j in range(36)]
    expect = {"REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0",
              "REG_INPUTA_CE": "CE0", "REG_INPUTB_CE": "CE0", "REG_OUTPUT_CE": "CE0",
              "REG_INPUTA_RST": "RST0", "REG_INPUTB_RST": "RST0", "REG_OUTPUT_RST": "RST0",
              "REG_PIPELINE_CLK": "NONE", "REG_INPUTC_CLK": "NONE", "RESETMODE": "SYNC",
              "MULT_BYPASS": "DISABLED", "GSR": "DISABLED"}
    others = ["SOURCEB_MODE", "CAS_MATCH_REG"]
    lines = [f"module MULT18X18D({', '.join(ins + outs)});"]
    lines += [f"  input {n};" for n in ins] + [f"  output {n};" for n in outs]
    lines += [f'  parameter {k} = "";' for k in list(expect) + others]
    lines.append("  initial begin")
    for k, v in expect.items():
        lines.append(f'    if ({k} != "{v}") begin $display("MULT18X18D: unsupported {k}"); '
                     "$finish; end")
    lines.append("  end")
    a = ", ".join(f"A{j}" for j in reversed(range(18)))
    b = ", ".join(f"B{j}" for j in reversed(range(18)))
    p = ", ".join(f"P{j}" for j in reversed(range(36)))
    lines += [
        f"  wire [17:0] a = {{{a}}};", f"  wire [17:0] b = {{{b}}};",
        "  reg [17:0] ar = 0, br = 0;", "  reg [35:0] pr = 0;",
        "  always @(posedge CLK0) begin",
        "    if (RST0) begin ar <= 0; br <= 0; pr <= 0; end",
        "    else if (CE0) begin ar <= a; br <= b; pr <= $signed(ar) * $signed(br); end",
        "  end",
        f"  assign {{{p}}} = pr;",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name,simulator", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_compute_unit_cocotb(name, simulator):
    assert simulator in SIMULATORS
    params = PARAM_SETS[name]
    run_cocotb(
        to_verilog(ComputeUnit(**params), "compute_unit")
        + (mult18x18d_model() if params.get("dsp") == "ecp5" else ""),  # Verilog text
        "compute_unit",
        "cocotb_compute_unit",
        simulator,
        REPO / "build" / "cocotb" / f"compute_unit-{name}-{simulator}",
        env={"CU_PARAMS": json.dumps(params), "SEED": "3"},
    )
