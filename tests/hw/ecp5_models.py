"""Behavioural Verilog of the Lattice ECP5 primitives the generators may instantiate.

``MULT18X18D``: the configurations of :func:`hw.common.ecp5_mult18x18d` (signed, A/B input
registers and output register on CLK0/CE0/RST0, synchronous reset) and of yosys's
``synth_ecp5`` mapping (no register, signedness from ``SIGNEDA``/``SIGNEDB``). ``DP16KD``: the
simple-dual-port RAM of :func:`hw.common.ecp5_dp16kd_sdp` (``REGMODE_B = "OUTREG"``) and of
yosys's mapping (``"NOREG"``, byte enables, read reset, the x36 mode). Any configuration
outside what they model stops the simulation with a message, so they cannot silently be
misused. ``tests/hw/test_primitive_models.py`` checks both against yosys's ECP5 mapping.
``LUT4``/``PFUMX``/``L6MUX21``: the wide multiplexers of :func:`hw.common.ecp5_mux8`.
"""

from __future__ import annotations


def mult18x18d_model() -> str:
    """``MULT18X18D`` as a plain 18 x 18 multiplier: ``P = A * B`` with each operand signed
    (two's complement) when its ``SIGNEDA``/``SIGNEDB`` input is 1 and unsigned when 0 (taken
    with the operand, through its input register when that is used), and each of the input
    registers A, B and the output register either absent (``"NONE"``, the primitive's
    default) or on CLK0/CE0/RST0 with synchronous reset. ``C`` is accepted and not used (it
    only feeds the ALU). Any other configuration (pipeline or C registers, CLK1-3, the
    shift/cascade inputs ``SOURCEA``/``SOURCEB``, MULT_BYPASS) stops the simulation. GSR is
    not modelled. Parameter defaults are the primitive's (yosys ``cells_bb.v``)."""
    ins = ([f"{n}{j}" for n in "ABC" for j in range(18)]
           + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"]
           + [f"{n}{j}" for n in ("CLK", "CE", "RST") for j in range(4)])
    outs = [f"P{j}" for j in range(36)]
    params = {f"REG_{r}_{s}": "NONE" if s == "CLK" else f"{s}0"
              for r in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")
              for s in ("CLK", "CE", "RST")}
    params.update({f"CLK{j}_DIV": "ENABLED" for j in range(4)})
    params.update(HIGHSPEED_CLK="NONE", GSR="ENABLED", CAS_MATCH_REG="FALSE",
                  SOURCEB_MODE="B_SHIFT", MULT_BYPASS="DISABLED", RESETMODE="SYNC")
    lines = [f"module MULT18X18D({', '.join(ins + outs)});"]
    lines += [f"  input {n};" for n in ins] + [f"  output {n};" for n in outs]
    lines += [f'  parameter {k} = "{v}";' for k, v in params.items()]
    lines += [
        '  localparam RA = REG_INPUTA_CLK == "CLK0", RB = REG_INPUTB_CLK == "CLK0",',
        '             RO = REG_OUTPUT_CLK == "CLK0";',
        "  initial begin",
    ]
    for r in ("INPUTA", "INPUTB", "OUTPUT"):
        bad = f'REG_{r}_CLK != "CLK0" || REG_{r}_CE != "CE0" || REG_{r}_RST != "RST0"'
        lines.append(f'    if (REG_{r}_CLK != "NONE" && ({bad})) begin'
                     f' $display("MULT18X18D: unsupported REG_{r}"); $finish; end')
    lines += [f'    if ({k} != "{v}") begin $display("MULT18X18D: unsupported {k}"); $finish; end'
              for k, v in (("REG_INPUTC_CLK", "NONE"), ("REG_PIPELINE_CLK", "NONE"),
                           ("RESETMODE", "SYNC"), ("MULT_BYPASS", "DISABLED"))]
    lines.append("  end")
    a = ", ".join(f"A{j}" for j in reversed(range(18)))
    b = ", ".join(f"B{j}" for j in reversed(range(18)))
    p = ", ".join(f"P{j}" for j in reversed(range(36)))
    lines += [
        "  always @(SOURCEA or SOURCEB) if (SOURCEA === 1'b1 || SOURCEB === 1'b1) begin",
        '    $display("MULT18X18D: SOURCEA/SOURCEB (shift/cascade input) not modelled"); $finish;',
        "  end",
        f"  wire [17:0] a = {{{a}}};",
        f"  wire [17:0] b = {{{b}}};",
        "  reg [17:0] ar = 0, br = 0;",
        "  reg sar = 0, sbr = 0;",
        "  reg [35:0] pr = 0;",
        "  wire [17:0] am = RA ? ar : a, bm = RB ? br : b;",
        "  wire sa = RA ? sar : SIGNEDA, sb = RB ? sbr : SIGNEDB;",
        "  wire signed [18:0] ax = {sa & am[17], am}, bx = {sb & bm[17], bm};",
        "  wire signed [37:0] prod = ax * bx;",
        "  always @(posedge CLK0) begin",
        "    if (RST0) begin ar <= 0; br <= 0; sar <= 0; sbr <= 0; pr <= 0; end",
        "    else if (CE0) begin ar <= a; br <= b; sar <= SIGNEDA; sbr <= SIGNEDB;"
        " pr <= prod[35:0]; end",
        "  end",
        f"  assign {{{p}}} = RO ? pr : prod[35:0];",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def dp16kd_model() -> str:
    """``DP16KD`` as a simple dual-port RAM: port A writes, port B reads (``WEB`` high, or
    a chip select bit high, at a clock edge stops the simulation). Both ports have the same
    width: 1, 2, 4, 9 or 18 bits (word address ``AD[13:k]`` with k = 0, 1, 2, 3, 4; in x18
    mode ``ADA1``/``ADA0`` are the write enables of the upper/lower 9-bit byte), or 36 bits
    (the pseudo-dual-port mode yosys maps ``PDPW16KD`` to: write data ``{DIB, DIA}``, byte
    enables ``ADA3..ADA0``, read data ``{DOB, DOA}``, word address ``AD[13:5]``). A write
    needs ``CEA`` and ``WEA``; a read (``CEB``) latches the addressed word, which
    ``REGMODE_B = "OUTREG"`` passes through a further register enabled by ``OCEB``.
    ``RSTB`` clears the output stage (the latch with ``"NOREG"``, the output register with
    ``"OUTREG"``) synchronously, regardless of ``CEB``/``OCEB``, with ``RESETMODE =
    "SYNC"`` and at once with ``"ASYNC"``. The contents start as zero (``INITVAL_*`` must be
    zero). Reading a word in the cycle it is written gives the old word (the hardware's
    word is undefined then). ``WRITEMODE_*`` only concerns the read data of the writing port,
    which is not modelled (``DOA`` is 0 below x36). GSR and ``ASYNC_RESET_RELEASE`` are not
    modelled. Parameter defaults are the primitive's (yosys ``cells_sim.v``)."""
    ins = ([f"DI{p}{j}" for p in "AB" for j in range(18)]
           + [f"AD{p}{j}" for p in "AB" for j in range(14)]
           + [f"{n}{p}" for p in "AB" for n in ("CE", "OCE", "CLK", "WE", "RST")]
           + [f"CS{p}{j}" for p in "AB" for j in range(3)])
    outs = [f"DO{p}{j}" for p in "AB" for j in range(18)]
    params = dict(REGMODE_A="NOREG", REGMODE_B="NOREG", RESETMODE="SYNC",
                  ASYNC_RESET_RELEASE="SYNC", CSDECODE_A="0b000", CSDECODE_B="0b000",
                  WRITEMODE_A="NORMAL", WRITEMODE_B="NORMAL", CLKAMUX="CLKA",
                  CLKBMUX="CLKB", GSR="ENABLED")
    inits = [f"INITVAL_{j:02X}" for j in range(64)]
    lines = [f"module DP16KD({', '.join(ins + outs)});"]
    lines += [f"  input {n};" for n in ins] + [f"  output {n};" for n in outs]
    lines += [f'  parameter {k} = "{v}";' for k, v in params.items()]
    lines += ["  parameter integer DATA_WIDTH_A = 18;", "  parameter integer DATA_WIDTH_B = 18;"]
    lines += [f"  parameter [319:0] {n} = 320'h0;" for n in inits]
    lines += [
        "  localparam integer W = DATA_WIDTH_B;",
        "  localparam integer LO = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 :",
        "                          W == 2 ? 1 : 0;",
        '  localparam OUTREG = REGMODE_B == "OUTREG";',
        "  integer k;",
        "  initial begin",
    ]
    checks = [('REGMODE_B != "NOREG" && REGMODE_B != "OUTREG"', "REGMODE_B"),
              ('W == 36 && REGMODE_A != REGMODE_B', "REGMODE_A (x36)"),
              ('RESETMODE != "SYNC" && RESETMODE != "ASYNC"', "RESETMODE"),
              ('CSDECODE_A != "0b000" || CSDECODE_B != "0b000"', "CSDECODE"),
              ('CLKAMUX != "CLKA" || CLKBMUX != "CLKB"', "clock inversion"),
              ("DATA_WIDTH_A != DATA_WIDTH_B", "different port widths"),
              ("W != 36 && W != 18 && W != 9 && W != 4 && W != 2 && W != 1", "DATA_WIDTH"),
              (" || ".join(f"{n} != 0" for n in inits), "INITVAL (initial contents)")]
    lines += [f'    if ({c}) begin $display("DP16KD: unsupported {what}"); $finish; end'
              for c, what in checks]
    lines += [
        "    for (k = 0; k < 16384; k = k + 1) mem[k] = 0;",
        "  end",
    ]
    cat = lambda n, m: ", ".join(f"{n}{j}" for j in reversed(range(m)))  # noqa: E731
    lines += [
        "  reg [35:0] mem [0:16383];",
        f"  wire [13:0] ada = {{{cat('ADA', 14)}}};",
        f"  wire [13:0] adb = {{{cat('ADB', 14)}}};",
        f"  wire [35:0] di = {{{cat('DIB', 18)}, {cat('DIA', 18)}}};",
        "  // write enable of each 9-bit byte: the byte-enable address bits in x18 and x36",
        "  wire [3:0] be = W == 36 ? ada[3:0] : W == 18 ? {2'b00, ada[1:0]} : 4'b0001;",
        "  wire [35:0] bits = W == 36 ? {{9{be[3]}}, {9{be[2]}}, {9{be[1]}}, {9{be[0]}}} :",
        "                     W == 18 ? {18'd0, {9{be[1]}}, {9{be[0]}}} : (36'd1 << W) - 1;",
        "  reg [35:0] lat = 0, outr = 0;",
        "  wire [13:0] wa = ada >> LO, ra = adb >> LO;",
        "  always @(posedge CLKA) begin",
        "    if ({CSA2, CSA1, CSA0} !== 3'b000) begin",
        '      $display("DP16KD: chip select not modelled"); $finish;',
        "    end",
        "    if (CEA && WEA) mem[wa] <= (mem[wa] & ~bits) | (di & bits);",
        "  end",
        "  always @(posedge CLKB)",
        "    if (WEB !== 1'b0 || {CSB2, CSB1, CSB0} !== 3'b000) begin",
        '      $display("DP16KD: port B writes / chip select not modelled"); $finish;',
        "    end",
        "  // the output stage: the latch (NOREG) or the output register (OUTREG)",
        '  wire arst = RESETMODE == "ASYNC" && RSTB;',
        "  wire arst_lat = arst && !OUTREG, arst_out = arst && OUTREG;",
        "  always @(posedge CLKB or posedge arst_lat)",
        "    if (RSTB && !OUTREG) lat <= 0; else if (CEB) lat <= mem[ra];",
        "  always @(posedge CLKB or posedge arst_out)",
        "    if (RSTB && OUTREG) outr <= 0; else if (OCEB) outr <= lat;",
        "  wire [35:0] dout = OUTREG ? outr : lat;",
        f"  assign {{{cat('DOB', 18)}}} = W == 36 ? dout[35:18] : dout[17:0];",
        f"  assign {{{cat('DOA', 18)}}} = W == 36 ? dout[17:0] : 18'd0;",
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
