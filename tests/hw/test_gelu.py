# amaranth: UnusedElaboratable=no
"""Gelu generator: Amaranth-simulator tests and cocotb tests on Icarus and Verilator.

Every check compares the RTL with the bit-exact golden model
:func:`einsum.approx.gelu_approx_int`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cocotb_runner import run_cocotb
from ecp5_models import mult18x18d_model
from stream_sim import run_stream

from einsum import approx as A
from einsum.errors import ConfigError
from hw.common import to_verilog
from hw.gelu import Gelu

PARAM_SETS = {
    "q4_14": {},  # default: 18-bit Q4.14 in and out
    "q10_22": {"width": 32, "frac_bits": 22},  # Edge-MoE's activation format
    "q4_12_to_q4_16": {"width": 16, "frac_bits": 12, "out_width": 20, "out_frac_bits": 16},
}
# Lattice MULT18X18D instances with pipeline registers (simulated with tests/hw/ecp5_models.py)
ECP5_SETS = {"q4_14_ecp5": {"dsp": "ecp5"}, "q10_22_ecp5": {"width": 32, "frac_bits": 22, "dsp": "ecp5"}}
COCOTB_CASES = ([("icarus", k) for k in PARAM_SETS] + [("icarus", "q10_22_ecp5")]
                + [("verilator", "q4_14"), ("verilator", "q4_14_ecp5")])


def _signed(v: int, w: int) -> int:
    v &= (1 << w) - 1
    return v - (1 << w) if v >> (w - 1) else v


def _vectors(g: Gelu, n: int, seed: int) -> np.ndarray:
    f = g.in_fmt
    rng = np.random.default_rng(seed)
    one = 1 << f.frac
    edges = [int(round(b * one)) for b in [k / 8 for k in range(17)] + [2 + k / 4 for k in range(13)]]
    corner = [0, 1, -1, f.max_int, f.min_int] + [e + d for e in edges for d in (-1, 0, 1)]
    corner += [-c for c in corner]
    v = np.concatenate([corner, rng.integers(max(f.min_int, -8 * one), min(f.max_int, 8 * one), n),
                        rng.integers(f.min_int, f.max_int + 1, n // 4)])
    return np.clip(v, f.min_int, f.max_int).astype(np.int64)


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_amaranth_sim_bit_exact_with_stalls(name):
    g = Gelu(**PARAM_SETS[name])
    xs = _vectors(g, 600, seed=len(name))
    res = run_stream(g, [int(x) for x in xs], in_stall=0.35, out_stall=0.35, seed=7)
    got = np.array([_signed(v, g.out_fmt.width) for v in res["out"]])
    assert np.array_equal(got, g.model(xs))


def test_amaranth_sim_throughput_and_latency():
    g = Gelu()
    xs = _vectors(g, 100, seed=1)[:120]
    res = run_stream(g, [int(x) for x in xs])
    assert res["in_cycles"] == list(range(len(xs)))  # one element per cycle
    lat = [o - i for o, i in zip(res["out_cycles"], res["in_cycles"])]
    assert lat == [g.latency] * len(xs) == [9] * len(xs)


def test_rtl_error_vs_float64_on_grid():
    """The golden model the RTL matches is within 1e-4 of float64 GELU on [-8, 8)."""
    g = Gelu()
    q = np.arange(-8 << 14, 8 << 14)
    y = g.model(q) * g.out_fmt.lsb
    assert np.abs(y - A.gelu_exact(q * g.in_fmt.lsb)).max() <= 1e-4


def test_describe_and_verilog():
    g = Gelu(width=32, frac_bits=22)
    d = g.describe()
    assert d["clock"] == "clk" and d["reset"] == "rst" and d["latency"] == 9
    assert d["ports"]["i"] == {"payload": "i__payload", "valid": "i__valid", "ready": "i__ready",
                               "width": 32, "frac_bits": 22, "signed": True}
    assert d["ports"]["o"]["width"] == 32 and d["ports"]["o"]["frac_bits"] == 22
    assert d["params"] == {"width": 32, "frac_bits": 22, "out_width": 32, "out_frac_bits": 22,
                           "dsp": "generic"}
    assert d["rom_bits"] == 1288 < 177 * 22
    json.dumps(d)
    v = to_verilog(g, "gelu")
    assert "module gelu" in v
    for port in ("clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"):
        assert port in v


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"width": 1}, ConfigError),
        ({"width": 3, "frac_bits": 1}, ValueError),
        ({"width": 64}, ConfigError),
        ({"width": 16, "frac_bits": 16}, ConfigError),
        ({"frac_bits": -1}, ConfigError),
        ({"width": 16.0}, ConfigError),
        ({"out_width": 8, "out_frac_bits": 9}, ConfigError),
    ],
)
def test_parameter_validation(kwargs, exc):
    with pytest.raises(exc):
        Gelu(**kwargs)


def test_positional_arguments_rejected():
    with pytest.raises(TypeError):
        Gelu(18, 14)  # type: ignore[misc]


def test_ecp5_dsp_variant():
    g = Gelu(dsp="ecp5")
    assert g.latency == 11 and g.describe()["params"]["dsp"] == "ecp5"
    v = to_verilog(g, "gelu")
    assert v.count("MULT18X18D") == 2 and "REG_OUTPUT_CLK" in v
    with pytest.raises(ConfigError, match="dsp"):
        Gelu(dsp="xilinx")


@pytest.mark.parametrize("simulator,name", COCOTB_CASES)
def test_cocotb(simulator, name, tmp_path):
    params = {**PARAM_SETS, **ECP5_SETS}[name]
    g = Gelu(**params)
    design = to_verilog(g, "gelu") + (mult18x18d_model() if g.dsp == "ecp5" else "")
    run_cocotb(
        design, "gelu", "cocotb_gelu", simulator, tmp_path,
        env={"GELU_PARAMS": json.dumps(params), "SEED": str(11 + len(name)),
             "N_RANDOM": "2000", "GELU_LATENCY": str(g.latency)},
    )
