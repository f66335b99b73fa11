"""Behavioural Verilog of the Lattice ECP5 primitives the generators may instantiate.

``MULT18X18D``: exactly the configuration of :func:`hw.common.ecp5_mult18x18d` (signed,
A/B input registers and output register on CLK0/CE0/RST0, synchronous reset); any other
register configuration stops the simulation, so the model cannot silently be misused.
"""

from __future__ import annotations


def mult18x18d_model() -> str:
    ins = ([f"A{j}" for j in range(18)] + [f"B{j}" for j in range(18)]
           + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"]
           + [f"{n}{j}" for n in ("CLK", "CE", "RST") for j in range(4)])
    outs = [f"P{j}" for j in range(36)]
    expect = {"REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0",
              "REG_INPUTA_CE": "CE0", "REG_INPUTB_CE": "CE0", "REG_OUTPUT_CE": "CE0",
              "REG_INPUTA_RST": "RST0", "REG_INPUTB_RST": "RST0", "REG_OUTPUT_RST": "RST0",
              "REG_PIPELINE_CLK": "NONE", "REG_INPUTC_CLK": "NONE", "RESETMODE": "SYNC",
              "MULT_BYPASS": "DISABLED", "GSR": "DISABLED"}
    lines = [f"module MULT18X18D({', '.join(ins + outs)});"]
    lines += [f"  input {n};" for n in ins] + [f"  output {n};" for n in outs]
    lines += [f'  parameter {k} = "";' for k in [*expect, "SOURCEB_MODE", "CAS_MATCH_REG"]]
    lines.append("  initial begin")
    lines += [f'    if ({k} != "{v}") begin $display("MULT18X18D: unsupported {k}"); $finish; end'
              for k, v in expect.items()]
    lines.append("    if (SIGNEDA !== 1'b1 && SIGNEDA !== 1'bx) $display(\"MULT18X18D: unsigned A\");")
    lines.append("  end")
    a = ", ".join(f"A{j}" for j in reversed(range(18)))
    b = ", ".join(f"B{j}" for j in reversed(range(18)))
    p = ", ".join(f"P{j}" for j in reversed(range(36)))
    lines += [
        f"  wire [17:0] a = {{{a}}};",
        f"  wire [17:0] b = {{{b}}};",
        "  reg [17:0] ar = 0, br = 0;",
        "  reg [35:0] pr = 0;",
        "  always @(posedge CLK0) begin",
        "    if (RST0) begin ar <= 0; br <= 0; pr <= 0; end",
        "    else if (CE0) begin ar <= a; br <= b; pr <= $signed(ar) * $signed(br); end",
        "  end",
        f"  assign {{{p}}} = pr;",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"
