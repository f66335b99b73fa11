"""The broadcast (FPGA compute unit) timing model equals hw.compute_unit.tile_cycles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einarray.flow import load_run_data
from hw.compute_unit import tile_cycles
from mapping.arch import load_arch
from sim.results import simulate
from sim.systolic import broadcast_cycles


def _arch(R: int, C: int, max_k: int | None = None) -> dict:
    sy = {"model": "broadcast", "tile_overhead": tile_cycles(R, C, 1) - 1 - R}
    if max_k:
        sy["max_k"] = max_k
    return {"version": 1, "name": f"cu-{R}x{C}", "clock_hz": 300e6, "data_bits": {"default": 32},
            "array2d": {"rows": R, "cols": C, "macs_per_pe": 1, "ops": {"mac": 1}, "systolic": sy},
            "memory": [{"name": "DRAM", "word_bits": 32, "read_bw": 1024, "write_bw": 1024},
                       {"name": "BRAM", "capacity_bytes": 1 << 22, "word_bits": 32, "read_bw": 1024,
                        "write_bw": 1024}],
            "energy": {"array2d": {"mac": 1.0}, "DRAM": {"read": 1.0, "write": 1.0},
                       "BRAM": {"read": 1.0, "write": 1.0}}}


def sim_gemm_cycles(R: int, C: int, M: int, N: int, K: int, max_k: int | None = None) -> int:
    spec = load_run_data({"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}},
                          "arch": _arch(R, C, max_k)}, f"gemm-{M}x{N}x{K}")
    r = simulate(spec.layers[0].config)
    return int(r["einsums"]["C"]["cycles"])


@pytest.mark.parametrize("R,C", [(2, 2), (4, 4), (16, 16)])
@pytest.mark.parametrize("K", [1, 2, 3, 8, 17, 64, 100, 256])
def test_one_tile_equals_rtl_formula(R, C, K):
    assert sim_gemm_cycles(R, C, R, C, K) == tile_cycles(R, C, K)


@settings(max_examples=40, deadline=None)
@given(R=st.sampled_from([2, 4, 8]), C=st.sampled_from([2, 4, 8]), M=st.integers(1, 40),
       N=st.integers(1, 40), K=st.integers(1, 80))
def test_tiled_gemm_is_back_to_back_tiles(R, C, M, N, K):
    folds = -(-M // R) * -(-N // C)
    want = folds * tile_cycles(R, C, K)
    assert sim_gemm_cycles(R, C, M, N, K) == want == broadcast_cycles(folds, K, R, tile_cycles(R, C, 1) - 1 - R)


@settings(max_examples=30, deadline=None)
@given(R=st.sampled_from([2, 4]), M=st.integers(1, 12), K=st.integers(1, 300), max_k=st.sampled_from([16, 32, 64]))
def test_long_k_is_chained_commands(R, M, K, max_k):
    """K beyond max_k: the RTL splits it into commands chained through the accumulators."""
    chunks = [max_k] * (K // max_k) + ([K % max_k] if K % max_k else [])
    want = -(-M // R) * sum(tile_cycles(R, R, k) for k in chunks)
    assert sim_gemm_cycles(R, R, M, R, K, max_k) == want


def test_fpga_config_uses_the_rtl_constants():
    import inspect

    from hw.compute_unit import ComputeUnit

    a = load_arch("zcu102-edge-moe")
    u = a.units["array2d"]
    assert u.timing == "broadcast"
    assert u.tile_overhead == tile_cycles(u.rows, u.cols, 1) - 1 - u.rows
    assert u.max_k == inspect.signature(ComputeUnit).parameters["max_k"].default
