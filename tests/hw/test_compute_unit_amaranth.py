"""Fast compute-unit tests with Amaranth's own simulator (in addition to cocotb)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from cu_common import SCENARIOS, SCENARIOS_GELU, CuDriver, formula_for, gelu_model_for, make_jobs
from einsum.errors import ConfigError
from hw.compute_unit import ComputeUnit, encode_cmd, tile_cycles


def run_amaranth(dut: ComputeUnit, jobs, *, p_valid: float, p_ready: float, seed: int,
                 max_cycles: int = 20000) -> CuDriver:
    f = dut.fmt
    drv = CuDriver(jobs, dut.rows, dut.cols, f.a_width, f.w_width, f.o_width,
                   p_valid=p_valid, p_ready=p_ready, seed=seed)

    async def bench(ctx):
        for _ in range(max_cycles):
            d = drv.drive()
            ctx.set(dut.cmd.valid, d["cmd_valid"])
            ctx.set(dut.cmd.payload.as_value(), d["cmd_payload"])
            ctx.set(dut.i.valid, d["i_valid"])
            ctx.set(dut.i.payload.as_value(), d["i_payload"])
            ctx.set(dut.w.valid, d["w_valid"])
            ctx.set(dut.w.payload.as_value(), d["w_payload"])
            ctx.set(dut.o.ready, d["o_ready"])
            cmd_hs = ctx.get(dut.cmd.valid) and ctx.get(dut.cmd.ready)
            i_hs = ctx.get(dut.i.valid) and ctx.get(dut.i.ready)
            w_hs = ctx.get(dut.w.valid) and ctx.get(dut.w.ready)
            o_hs = ctx.get(dut.o.valid) and ctx.get(dut.o.ready)
            o_pl = ctx.get(dut.o.payload.as_value())
            drv.observe(bool(cmd_hs), bool(i_hs), bool(w_hs), bool(o_hs), int(o_pl))
            await ctx.tick()
            if drv.done:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return drv


@pytest.mark.parametrize("rows,cols,gelu", [(2, 2, True), (4, 4, True), (3, 2, False)])
@pytest.mark.parametrize("stalls", [False, True])
def test_bit_exact_and_cycles(rows, cols, gelu, stalls):
    dut = ComputeUnit(rows=rows, cols=cols, max_k=32, gelu=gelu)
    scen = SCENARIOS + (SCENARIOS_GELU if gelu else [])
    jobs = make_jobs(rows, cols, dut.fmt, dut.max_k, seed=rows * 10 + cols, scenarios=scen,
                     gelu_fn=gelu_model_for(dut))
    drv = run_amaranth(dut, jobs, p_valid=0.6 if stalls else 1.0,
                       p_ready=0.5 if stalls else 1.0, seed=rows + cols)
    drv.check(formula_for(rows, cols, dut.gelu_latency), exact=not stalls)


def test_other_formats():
    # Edge-MoE-like wide activations (Q10.22 in, 32-bit), narrow output, small accumulator
    dut = ComputeUnit(rows=2, cols=3, a_width=24, a_frac=16, w_width=12, w_frac=10,
                      acc_width=44, o_width=12, o_frac=6, bias_frac=8, max_k=16)
    jobs = make_jobs(2, 3, dut.fmt, dut.max_k, seed=7, scenarios=SCENARIOS + SCENARIOS_GELU,
                     gelu_fn=gelu_model_for(dut))
    drv = run_amaranth(dut, jobs, p_valid=0.8, p_ready=0.7, seed=3)
    drv.check(formula_for(2, 3, dut.gelu_latency), exact=False)


def test_narrow_accumulator_wide_output():
    # after the fixed shift fewer bits remain than the output has: no saturation logic
    dut = ComputeUnit(rows=2, cols=2, a_width=8, a_frac=7, w_width=8, w_frac=7,
                      acc_width=16, o_width=12, o_frac=0, bias_frac=7, max_k=8, gelu=False)
    jobs = make_jobs(2, 2, dut.fmt, dut.max_k, seed=11)
    drv = run_amaranth(dut, jobs, p_valid=0.9, p_ready=0.6, seed=5)
    drv.check(formula_for(2, 2), exact=False)


def test_tile_cycles_closed_form():
    assert tile_cycles(4, 4, 16) == 16 + 4 + 10
    assert tile_cycles(4, 4, 16, bias=True) == 32
    assert tile_cycles(16, 16, 64, bias=True, epilogue_latency=3) == 64 + 16 + 2 + 10 + 3
    assert ComputeUnit(rows=2, cols=2).tile_cycles(8) == tile_cycles(2, 2, 8)
    with pytest.raises(ConfigError):
        tile_cycles(0, 4, 4)
    with pytest.raises(ConfigError):
        tile_cycles(4, 4, 0)


@pytest.mark.parametrize("kwargs,msg", [
    ({"rows": 0}, "rows"),
    ({"cols": 65}, "cols"),
    ({"a_width": 1}, "a_width"),
    ({"max_k": 12}, "power of two"),
    ({"acc_width": 20}, "acc_width"),
    ({"o_frac": 30}, "o_frac"),
    ({"a_frac": 16}, "a_frac"),
    ({"rows": 2.5}, "rows"),
    ({"gelu": "yes"}, "gelu"),
])
def test_param_validation(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        ComputeUnit(**kwargs)


def test_encode_cmd_validation():
    assert encode_cmd(1, max_k=16) == 0
    with pytest.raises(ConfigError):
        encode_cmd(17, max_k=16)
    with pytest.raises(ConfigError):
        encode_cmd(4, max_k=16, shift=16)
    with pytest.raises(ConfigError):
        encode_cmd(4, max_k=16, op=3)


def test_describe():
    dut = ComputeUnit(rows=2, cols=4, max_k=64)
    d = dut.describe()
    assert d["top"] == "compute_unit" and d["clock"] == "clk" and d["reset"] == "rst"
    assert set(d["ports"]) == {"cmd", "i", "w", "o"}
    assert d["ports"]["i"] == {"payload": "i__payload", "valid": "i__valid", "ready": "i__ready",
                               "width": 16, "frac_bits": 10, "signed": True, "lanes": 2}
    assert d["ports"]["o"]["lanes"] == 4
    fields = d["commands"]["fields"]
    assert fields["k_m1"] == {"lsb": 0, "width": 6}
    assert d["ports"]["cmd"]["width"] == sum(v["width"] for v in fields.values())
    assert d["latency"]["example_k16"] == tile_cycles(2, 4, 16)
    assert d["params"]["rows"] == 2 and d["params"]["max_k"] == 64
