# amaranth: UnusedElaboratable=no
"""Softmax generator: Amaranth-simulator tests and cocotb tests on Icarus and Verilator.

Every check compares the RTL with the bit-exact golden model
:func:`einsum.approx.softmax_approx_int`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cocotb_runner import run_cocotb
from ecp5_models import dp16kd_model, mult18x18d_model, widemux_models
from stream_sim import run_stream

from einsum.errors import ConfigError
from einsum.fixed import quantize, to_float
from hw.common import to_verilog
from hw.softmax import Softmax

# dsp="ecp5" (the ECP5 synthesis path) instantiates MULT18X18D and DP16KD (simulated with the
# models below); the Amaranth simulator runs dsp="generic" (the block's default), which has
# the same pipeline and latency
PARAM_SETS = {
    "default": {"dsp": "ecp5"},  # Q6.10 scores, Q2.14 probabilities, rows up to 1024
    "small": {"width": 12, "frac_bits": 6, "out_width": 10, "out_frac_bits": 8, "max_len": 16,
              "dsp": "ecp5"},
    "wide": {"width": 24, "frac_bits": 16, "out_width": 20, "out_frac_bits": 18, "max_len": 2048,
             "dsp": "ecp5"},
    "small_generic": {"width": 12, "frac_bits": 6, "out_width": 10, "out_frac_bits": 8,
                      "max_len": 16, "dsp": "generic"},
}
COCOTB_CASES = [("icarus", k) for k in PARAM_SETS] + [("verilator", "default"), ("verilator", "small")]


def _signed(v: int, w: int) -> int:
    v &= (1 << w) - 1
    return v - (1 << w) if v >> (w - 1) else v


def _payloads(rows):
    return [{"data": int(v), "last": int(j == len(r) - 1)} for r in rows for j, v in enumerate(r)]


def _expected(sm, rows):
    return [(int(p), int(j == len(r) - 1)) for r in rows
            for j, p in enumerate(sm.model(np.asarray(r)[None, :])[0])]


def _rows(sm, rng, lengths):
    f = sm.in_fmt
    rows = [quantize(rng.uniform(-16, 16, n), f) for n in lengths]
    rows += [np.zeros(5, dtype=np.int64), np.full(3, f.min_int), np.full(4, f.max_int),
             np.array([f.min_int, f.max_int, f.min_int])]
    return rows


def ecp5_models() -> str:
    return mult18x18d_model() + dp16kd_model() + widemux_models()


@pytest.mark.parametrize("name", ["default", "small", "wide"])
def test_amaranth_sim_bit_exact_with_stalls(name):
    sm = Softmax(**{**PARAM_SETS[name], "dsp": "generic"})
    rng = np.random.default_rng(3)
    rows = _rows(sm, rng, [1, 2, 8, min(sm.max_len, 100), sm.max_len if sm.max_len <= 64 else 37])
    res = run_stream(sm, _payloads(rows), n_out=sum(len(r) for r in rows),
                     in_stall=0.3, out_stall=0.3, seed=5, out_fields=("data", "last"))
    got = [(_signed(o["data"], sm.out_fmt.width), o["last"]) for o in res["out"]]
    assert got == _expected(sm, rows)


@pytest.mark.parametrize("max_len", [2, 16, 1024])
def test_amaranth_sim_latency_formula(max_len):
    sm = Softmax(max_len=max_len, dsp="generic")
    rng = np.random.default_rng(max_len)
    n = min(max_len, 12)
    rows = [quantize(rng.uniform(-16, 16, n), sm.in_fmt), quantize(rng.uniform(-16, 16, 2), sm.in_fmt)]
    res = run_stream(sm, _payloads(rows), out_fields=("data", "last"))
    ic, oc = res["in_cycles"], res["out_cycles"]
    assert ic[:n] == list(range(n))
    assert oc[0] - ic[n - 1] == sm.latency == 36 + sm.norm_cycles + sm.div_cycles
    assert oc[n - 1] - ic[0] + 1 == sm.row_cycles(n) == 2 * n - 1 + sm.latency
    assert oc[:n] == list(range(oc[0], oc[0] + n))
    assert [(_signed(o["data"], 16), o["last"]) for o in res["out"]] == _expected(sm, rows)


@pytest.mark.parametrize("max_len", [16, 1024])
def test_amaranth_sim_rows_overlap(max_len):
    """Back-to-back rows: the next row is accepted while the previous one is emitted."""
    sm = Softmax(max_len=max_len, dsp="generic")
    rng = np.random.default_rng(7)
    lens = [16, 16, 16, 5, 1, 16]
    rows = [quantize(rng.uniform(-16, 16, n), sm.in_fmt) for n in lens]
    res = run_stream(sm, _payloads(rows), n_out=sum(lens), out_fields=("data", "last"))
    ic, oc = res["in_cycles"], res["out_cycles"]
    ends = np.cumsum(lens)
    for k in range(len(lens) - 1):
        last_in, next_in = ic[ends[k] - 1], ic[ends[k]]
        assert next_in - last_in == sm.row_gap  # input side never waits for the output side
    assert ic[ends[0]] < oc[ends[0] - 1]  # row 2 accepted while row 1 is still emitted
    # outputs of consecutive rows follow each other as soon as each row is ready
    assert oc[0] - ic[ends[0] - 1] == sm.latency
    assert ic[ends[2]] - ic[0] == 3 * sm.row_interval(16)  # three rows of 16
    assert [(_signed(o["data"], 16), o["last"]) for o in res["out"]] == _expected(sm, rows)


def test_rtl_model_error_vs_float64():
    """The integer model the RTL matches: <= 2**-10 per probability, rows of 8..1024 in [-16, 16]."""
    sm = Softmax()
    rng = np.random.default_rng(0)
    for n in (8, 100, 1024):
        x = rng.uniform(-16, 16, (8, n))
        p = to_float(sm.model(quantize(x, sm.in_fmt)), sm.out_fmt)
        ref = np.exp(x - x.max(-1, keepdims=True))
        ref /= ref.sum(-1, keepdims=True)
        assert np.abs(p - ref).max() <= 2.0**-10


def test_describe_and_verilog():
    sm = Softmax(max_len=64, dsp="ecp5")
    d = sm.describe()
    assert d["clock"] == "clk" and d["reset"] == "rst"
    assert d["latency"] == sm.latency == 36 + 6 + 18
    assert d["row_gap"] == sm.row_gap == 18 + 6 + 18
    assert d["ports"]["i"]["payload"] == "i__payload" and d["ports"]["i"]["width"] == 16
    assert d["ports"]["i"]["frac_bits"] == 10 and d["ports"]["i"]["signed"] is True
    assert d["ports"]["i"]["fields"] == {"data": [0, 16], "last": [16, 1]}
    assert d["ports"]["o"]["frac_bits"] == 14 and d["ports"]["o"]["payload_width"] == 17
    assert d["params"] == {"width": 16, "frac_bits": 10, "out_width": 16, "out_frac_bits": 14,
                           "max_len": 64, "dsp": "ecp5"}
    json.dumps(d)
    g = Softmax(max_len=64, dsp="generic")  # same pipeline, same latency
    assert (g.latency, g.row_gap, g.emit_latency) == (sm.latency, sm.row_gap, sm.emit_latency)
    assert sm.emit_latency == 19
    v = to_verilog(sm, "softmax")
    assert "module softmax" in v and "i__payload" in v and "o__ready" in v


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"max_len": 1}, ConfigError),
        ({"max_len": 1 << 17}, ConfigError),
        ({"max_len": 10.5}, ConfigError),
        ({"width": 40}, ConfigError),
        ({"width": 3, "frac_bits": 0}, ValueError),
        ({"out_width": 32, "out_frac_bits": 31}, ConfigError),
        ({"frac_bits": 16}, ConfigError),
        ({"dsp": "xilinx"}, ConfigError),
    ],
)
def test_parameter_validation(kwargs, exc):
    with pytest.raises(exc):
        Softmax(**kwargs)


@pytest.mark.parametrize("simulator,name", COCOTB_CASES)
def test_cocotb(simulator, name, tmp_path):
    params = PARAM_SETS[name]
    sm = Softmax(**params)
    design = to_verilog(sm, "softmax")
    if sm.dsp == "ecp5":
        design += ecp5_models()
    run_cocotb(
        design, "softmax", "cocotb_softmax", simulator, tmp_path,
        env={"SOFTMAX_PARAMS": json.dumps(params), "SEED": str(21 + len(name)),
             "SOFTMAX_LATENCY": str(sm.latency), "SOFTMAX_ROW_GAP": str(sm.row_gap),
             "SOFTMAX_EMIT_LATENCY": str(sm.emit_latency), "N_ROWS": "6"},
    )


@pytest.mark.parametrize("depth,width", [(40000, 3), (2048, 16)])
def test_ecp5_dp16kd_sdp_with_model(depth, width, tmp_path):
    """hw.common.ecp5_dp16kd_sdp (stacked 16384 x 1 blocks with the output select, and the
    2048 x 9 tiling of the default row buffer) on Icarus with the DP16KD model: a word
    written is read back 2 cycles after its address."""
    import shutil
    import subprocess

    from amaranth import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from cocotb_runner import require_simulator

    from hw.common import ecp5_dp16kd_sdp

    require_simulator("icarus")
    ab = (depth - 1).bit_length()

    class Ram(wiring.Component):
        def __init__(self):
            super().__init__({"waddr": In(ab), "wdata": In(width), "we": In(1),
                              "raddr": In(ab), "rce": In(1), "rdata": Out(width)})

        def elaborate(self, platform):
            m = Module()
            ecp5_dp16kd_sdp(m, "ram", depth=depth, width=width, waddr=self.waddr,
                            wdata=self.wdata, we=self.we, raddr=self.raddr,
                            rdata=self.rdata, rce=self.rce)
            return m

    rng = np.random.default_rng(1)
    addrs = rng.choice(depth, 200, replace=False).tolist() + [0, depth - 1]
    words = rng.integers(0, 1 << width, len(addrs)).tolist()
    wr = "\n".join(f"    waddr = {a}; wdata = {d}; we = 1; @(posedge clk); #1;"
                   for a, d in zip(addrs, words))
    rd = "\n".join(f"    raddr = {a}; @(posedge clk); #1; @(posedge clk); #1;"
                   f" if (rdata !== {d}) begin $display(\"BAD %0d\", {a}); errors = errors + 1; end"
                   for a, d in zip(addrs, words))
    tb = f"""
module tb;
  reg clk = 0, rst = 0, we = 0, rce = 1;
  reg [{ab - 1}:0] waddr = 0, raddr = 0;
  reg [{width - 1}:0] wdata = 0;
  wire [{width - 1}:0] rdata;
  integer errors = 0;
  always #5 clk = ~clk;
  ram dut(.clk(clk), .rst(rst), .waddr(waddr), .wdata(wdata), .we(we), .raddr(raddr),
          .rce(rce), .rdata(rdata));
  initial begin
    @(posedge clk); #1;
{wr}
    we = 0;
{rd}
    if (errors == 0) $display("PASS");
    $finish;
  end
endmodule
"""
    src = tmp_path / "ram.v"
    src.write_text(to_verilog(Ram(), "ram") + dp16kd_model() + tb)
    out = tmp_path / "ram.vvp"
    subprocess.run([shutil.which("iverilog"), "-g2012", "-o", str(out), str(src)], check=True)
    res = subprocess.run([shutil.which("vvp"), str(out)], capture_output=True, text=True,
                         check=True)
    assert "PASS" in res.stdout, res.stdout[-2000:]
