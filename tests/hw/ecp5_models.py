"""Behavioural Verilog of the Lattice ECP5 primitives the generators may instantiate.

``MULT18X18D``: exactly the configuration of :func:`hw.common.ecp5_mult18x18d` (signed,
A/B input registers and output register on CLK0/CE0/RST0, synchronous reset); any other
register configuration stops the simulation, so the model cannot silently be misused.
``DP16KD``: the pseudo-dual-port RAM of :func:`hw.common.ecp5_dp16kd_sdp`, with its output
register. ``LUT4``/``PFUMX``/``L6MUX21``: the wide multiplexers of :func:`hw.common.ecp5_mux8`.
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


def dp16kd_model() -> str:
    ins = ([f"DI{p}{j}" for p in "AB" for j in range(18)]
           + [f"AD{p}{j}" for p in "AB" for j in range(14)]
           + [f"{n}{p}" for p in "AB" for n in ("CE", "OCE", "CLK", "WE", "RST")]
           + [f"CS{p}{j}" for p in "AB" for j in range(3)])
    outs = [f"DO{p}{j}" for p in "AB" for j in range(18)]
    expect = {"REGMODE_A": "NOREG", "REGMODE_B": "OUTREG", "RESETMODE": "SYNC",
              "CSDECODE_A": "0b000", "CSDECODE_B": "0b000", "WRITEMODE_A": "NORMAL",
              "WRITEMODE_B": "NORMAL", "GSR": "DISABLED"}
    lines = [f"module DP16KD({', '.join(ins + outs)});"]
    lines += [f"  input {n};" for n in ins] + [f"  output {n};" for n in outs]
    lines += [f'  parameter {k} = "";' for k in [*expect, "ASYNC_RESET_RELEASE"]]
    lines += ["  parameter integer DATA_WIDTH_A = 18;", "  parameter integer DATA_WIDTH_B = 18;"]
    lines += [
        "  localparam integer LO = DATA_WIDTH_B == 18 ? 4 : DATA_WIDTH_B == 9 ? 3 :",
        "                          DATA_WIDTH_B == 4 ? 2 : DATA_WIDTH_B == 2 ? 1 : 0;",
        "  integer k;",
        "  initial begin",
    ]
    lines += [f'    if ({k} != "{v}") begin $display("DP16KD: unsupported {k}"); $finish; end'
              for k, v in expect.items()]
    lines += [
        '    if (DATA_WIDTH_A != DATA_WIDTH_B) begin $display("DP16KD: widths differ"); $finish; end',
        "    for (k = 0; k < 16384; k = k + 1) mem[k] = 0;",
        "  end",
    ]
    ada = ", ".join(f"ADA{j}" for j in reversed(range(14)))
    adb = ", ".join(f"ADB{j}" for j in reversed(range(14)))
    dia = ", ".join(f"DIA{j}" for j in reversed(range(18)))
    dob = ", ".join(f"DOB{j}" for j in reversed(range(18)))
    doa = ", ".join(f"DOA{j}" for j in reversed(range(18)))
    lines += [
        "  reg [17:0] mem [0:16383];",
        f"  wire [13:0] ada = {{{ada}}};",
        f"  wire [13:0] adb = {{{adb}}};",
        f"  wire [17:0] dia = {{{dia}}};",
        "  wire [17:0] mask = (18'd1 << DATA_WIDTH_A) - 1;",
        "  reg [17:0] lat = 0, outr = 0;",
        "  always @(posedge CLKA)",
        "    if (CEA && WEA && (DATA_WIDTH_A != 18 || (ADA0 && ADA1))) mem[ada >> LO] <= dia & mask;",
        "  always @(posedge CLKB) begin",
        "    if (CEB) lat <= mem[adb >> LO];",
        "    if (RSTB) outr <= 0; else if (OCEB) outr <= lat;",
        "  end",
        f"  assign {{{dob}}} = outr;",
        f"  assign {{{doa}}} = 18'd0;",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def widemux_models() -> str:
    """``LUT4``, ``PFUMX`` and ``L6MUX21`` (hw.common.ecp5_mux8) behaviour."""
    return """
module LUT4(A, B, C, D, Z);
  input A, B, C, D; output Z;
  parameter [15:0] INIT = 16'h0000;
  assign Z = INIT[{D, C, B, A}];
endmodule
module PFUMX(ALUT, BLUT, C0, Z);
  input ALUT, BLUT, C0; output Z;
  assign Z = C0 ? ALUT : BLUT;
endmodule
module L6MUX21(D0, D1, SD, Z);
  input D0, D1, SD; output Z;
  assign Z = SD ? D1 : D0;
endmodule
"""
