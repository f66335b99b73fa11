"""The simulator held to the RTL.

1. Cycles. For two compute-unit sizes (2x2 and 4x4) and nine GEMM shapes each, the
   simulator's prediction for the GEMM Einsum (``gemm`` cascade on the shipped
   ``zcu102-edge-moe`` architecture with its 2-D array resized to the unit, i.e. the
   ``broadcast`` timing model with the shipped ``tile_overhead``) equals, exactly, the
   cycles the cocotb test measures on the generated Verilog of ``hw.compute_unit`` from
   the first command accepted to the last output row accepted (commands back to back,
   operands always valid, output always ready). The outputs equal the golden
   ``tiled_gemm``.

2. Function. A fixed-point attention head (M = P = 16, E = F = 8; cascade
   ``attention-fixed``) runs on the RTL as a chain: S = Q K^T on the 4x4 compute unit
   built with the cascade's formats (opcode QKT, shift 3), the rows of S through the
   softmax block (Q6.10 in, Q2.14 out, random stalls), then A V on the 2x2 unit (A Q2.14,
   V Q6.10, out Q6.10); each stage is fed the previous stage's RTL output. S, A and the
   output equal, bit for bit, the tensors the simulator's functional mode
   (``sim.functional``: golden operators, tile by tile) computes from the same integer
   codes, and ``check_functional`` reports ``ok`` with rtol = atol = 0. Two heads: codes in
   +-2048 and the full 16-bit range (S saturates both ways). The two matmuls' cycles
   on the RTL also equal the simulator's cycles for the Einsums ``QK`` (4x4 array) and
   ``AVACC`` (2x2 array).

The RTL is one Verilog toplevel (``sim_rtl_common.top``: both units and the softmax block
side by side, ports forwarded) built once per simulator, Icarus and Verilator (cocotb;
with ``CI=true`` a missing simulator fails instead of skipping, see
``tests/hw/cocotb_runner.py``).
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
for _p in (HERE.parent / "hw", HERE):  # cocotb_runner, cu_common; this directory for cocotb
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from cocotb_runner import run_cocotb  # noqa: E402
from sim_rtl_common import (AV_UNIT, QKT_SHIFT, QKT_UNIT, SHAPES, SOFTMAX, TOP,  # noqa: E402
                            UNITS, arch_for, sim_einsum_cycles, sim_gemm_cycles, top,
                            unit_format)

from einsum.approx import softmax_approx_int  # noqa: E402
from einsum.fixed import QFormat  # noqa: E402
from einsum.golden_gemm import av_tile, qkt_tile, tiled_gemm  # noqa: E402
from hw.compute_unit import tile_cycles  # noqa: E402
from hw.export import to_verilog  # noqa: E402

SIMS = ["icarus", "verilator"]


@lru_cache(maxsize=1)
def _verilog() -> str:
    return to_verilog(top(), TOP)


def _summary(res) -> str:
    if isinstance(res, list):  # cu_gemms
        return "\n".join(f"  {r['name']}: {r['tiles']} tiles, RTL {r['measured']} cycles, "
                         f"simulator {r['predicted']}" for r in res)
    return "\n".join(f"  {h}: QK^T RTL {r['qk_cycles']} cycles ({r['qk_tiles']} tiles), "
                     f"AV RTL {r['av_cycles']} cycles ({r['av_tiles']} tiles)" for h, r in res.items())


def _run(testcase: str, spec: dict, simulator: str, tmp: Path):
    """Run cocotb ``testcase`` with ``spec``; returns what it wrote to its results file."""
    res_path = tmp / f"{testcase}-results.json"
    spec = dict(spec, results=str(res_path))
    (tmp / f"{testcase}-spec.json").write_text(json.dumps(spec))
    try:
        run_cocotb(_verilog(), TOP, "cocotb_sim_rtl", simulator, tmp, testcase=testcase,
                   env={"SIMRTL_SPEC": str(tmp / f"{testcase}-spec.json")})
    except AssertionError as e:  # say what was measured before cocotb's own check failed
        got = _summary(json.loads(res_path.read_text())) if res_path.exists() else "  (nothing)"
        raise AssertionError(f"{e}\nmeasured on {simulator}:\n{got}") from None
    return json.loads(res_path.read_text())


# -- 1. cycles ----------------------------------------------------------------------------

def test_shapes_cover_the_required_cases():
    """>= 8 shapes per unit, two sizes, K = 1 and K > rows, several folds, the shipped
    overhead is the RTL's."""
    assert len({(p["rows"], p["cols"]) for p in UNITS.values()}) >= 2
    for name, p in UNITS.items():
        R, C = p["rows"], p["cols"]
        shapes = SHAPES[name]
        assert len({s[:3] for s in shapes}) >= 8
        assert any(K == 1 for _M, _N, K, _r in shapes) and any(K > R for _M, _N, K, _r in shapes)
        assert any(M >= 2 * R and N >= 3 * C for M, N, _K, _r in shapes)
        assert all(K <= p["max_k"] for _M, _N, K, _r in shapes)
        sy = arch_for(R, C)["array2d"]["systolic"]
        assert sy["model"] == "broadcast"
        assert sy["tile_overhead"] == tile_cycles(R, C, 1) - 1 - R, (
            f"the simulator's tile_overhead ({sy['tile_overhead']}, mapping/arch/zcu102-edge-moe.yaml) "
            f"is not the RTL's (hw.compute_unit.tile_cycles: {tile_cycles(R, C, 1) - 1 - R})")


@pytest.mark.parametrize("simulator", SIMS)
@pytest.mark.parametrize("unit", list(UNITS))
def test_gemm_cycles_equal_simulator(unit, simulator, tmp_path):
    p = UNITS[unit]
    R, C = p["rows"], p["cols"]
    fmt = unit_format(p)
    rng = np.random.default_rng(5)
    gemms, golden = [], {}
    for M, N, K, reuse in SHAPES[unit]:
        name = f"{M}x{N}x{K}"
        x = rng.integers(-(1 << (fmt.a_width - 1)), 1 << (fmt.a_width - 1), size=(M, K))
        w = rng.integers(-(1 << (fmt.w_width - 1)), 1 << (fmt.w_width - 1), size=(K, N))
        predicted = sim_gemm_cycles(R, C, M, N, K)
        gemms.append({"name": name, "x": x.tolist(), "w": w.tolist(), "reuse": reuse,
                      "predicted": predicted})
        golden[name] = tiled_gemm(x, w, rows=R, cols=C, max_k=p["max_k"], fmt=fmt)
    res = _run("cu_gemms", {"unit": unit, "gemms": gemms}, simulator, tmp_path)
    assert [r["name"] for r in res] == [g["name"] for g in gemms]
    for g, r in zip(gemms, res):
        M, N, K = map(int, g["name"].split("x"))
        folds = -(-M // R) * -(-N // C)
        assert r["measured"] == g["predicted"], (
            f"{unit} {g['name']}: RTL {r['measured']} cycles, simulator {g['predicted']} "
            f"({folds} tiles; hw.compute_unit.tile_cycles says {folds * tile_cycles(R, C, K)})")
        np.testing.assert_array_equal(np.array(r["out"]), golden[g["name"]], err_msg=g["name"])


# -- 2. the attention head, bit for bit ---------------------------------------------------

M_, P_, E_, F_ = 16, 16, 8, 8


def _heads() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Integer codes (16-bit, 10 fraction bits) of Q (M, E), K (P, E), V (P, F)."""
    rng = np.random.default_rng(2026)
    small = tuple(rng.integers(-2048, 2049, size=s) for s in ((M_, E_), (P_, E_), (P_, F_)))
    # full 16-bit range: most of S saturates (+-32 in Q6.10), softmax rows with tied maxima
    full = tuple(rng.integers(-32768, 32768, size=s) for s in ((M_, E_), (P_, E_), (P_, F_)))
    return {"pm2048": small, "full": full}


def _sim_config():
    from einarray.flow import load_run_data

    return load_run_data({"workload": {"cascade": "attention-fixed"}, "arch": "zcu102-edge-moe"},
                         "head").layers[0].config


def _sim_tensors(cfg, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor of the functional mode's tile-by-tile run (``check_functional`` keeps
    only the outputs; this is its loop with the environment returned)."""
    from sim.functional import _Exec

    c = cfg.cascade
    env = {t: np.array(a, dtype=np.float64) for t, a in inputs.items()}
    for t, info in c.tensors.items():
        if t not in env:
            env[t] = np.full(info.shape, np.nan) if info.iterative_dim is None else np.zeros(info.shape)
    ex = _Exec(cfg, env)
    for g in cfg.mapping.groups:
        ex.run_group(g)
    return env


def _codes(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    assert np.all(np.isfinite(a)) and np.array_equal(a, np.rint(a))
    return a.astype(np.int64)


@pytest.mark.parametrize("simulator", SIMS)
def test_attention_head_bit_identical(simulator, tmp_path):
    from sim.functional import check_functional

    heads = _heads()
    cfg = _sim_config()
    sim = {}
    for h, (q, k, v) in heads.items():
        inputs = {"Q": q.astype(np.float64), "K": k.astype(np.float64), "V": v.astype(np.float64)}
        fr = check_functional(cfg, inputs=inputs, rtol=0, atol=0)
        assert fr.ok, (h, fr.tensors)
        env = _sim_tensors(cfg, inputs)
        np.testing.assert_array_equal(env["AV"], fr.outputs["AV"])
        sim[h] = {t: _codes(env[t]) for t in ("S", "A", "AV")}
        sim[h]["AV_check_functional"] = _codes(fr.outputs["AV"])

    # the simulator's cycles of the two matmuls on arrays of the two units' sizes
    qu, au = UNITS[QKT_UNIT], UNITS[AV_UNIT]
    qk = sim_einsum_cycles({"cascade": "attention-fixed"}, qu["rows"], qu["cols"], "head-qk")["QK"]
    av = sim_einsum_cycles({"cascade": "attention-fixed"}, au["rows"], au["cols"], "head-av")["AVACC"]
    assert qk[0] == av[0] == "array2d", (qk, av)
    predicted = {"QK": qk[1], "AVACC": av[1]}

    spec = {"heads": {h: {"Q": q.tolist(), "K": k.tolist(), "V": v.tolist()}
                      for h, (q, k, v) in heads.items()},
            "qkt_shift": QKT_SHIFT, "predicted": predicted,
            "softmax_stream": {"seed": 11, "in_stall": 0.2, "out_stall": 0.2}}
    res = _run("attention_head", spec, simulator, tmp_path)

    fi = QFormat(SOFTMAX["width"], SOFTMAX["frac_bits"])
    fo = QFormat(SOFTMAX["out_width"], SOFTMAX["out_frac_bits"])
    for h, (q, k, v) in heads.items():
        r = {t: np.array(res[h][t], dtype=np.int64) for t in ("S", "A", "O")}
        assert r["S"].shape == (M_, P_) and r["A"].shape == (M_, P_) and r["O"].shape == (M_, F_)
        # each RTL stage against its golden model (on the previous RTL stage's output) ...
        np.testing.assert_array_equal(r["S"], qkt_tile(q, k, fmt=unit_format(UNITS[QKT_UNIT]),
                                                       shift=QKT_SHIFT)[0])
        np.testing.assert_array_equal(r["A"], softmax_approx_int(r["S"], fi, fo))
        np.testing.assert_array_equal(r["O"], av_tile(r["A"], v, fmt=unit_format(UNITS[AV_UNIT]))[0])
        # ... and against the simulator's functional mode, bit for bit
        np.testing.assert_array_equal(r["S"], sim[h]["S"], err_msg=f"{h}: S, RTL != simulator")
        np.testing.assert_array_equal(r["A"], sim[h]["A"], err_msg=f"{h}: A, RTL != simulator")
        np.testing.assert_array_equal(r["O"], sim[h]["AV"], err_msg=f"{h}: AV, RTL != simulator")
        np.testing.assert_array_equal(r["O"], sim[h]["AV_check_functional"])
        # the matmuls' cycles
        assert (res[h]["qk_cycles"], res[h]["av_cycles"]) == (predicted["QK"], predicted["AVACC"]), (
            f"{h}: RTL QK^T {res[h]['qk_cycles']} / AV {res[h]['av_cycles']} cycles, simulator "
            f"QK {predicted['QK']} / AVACC {predicted['AVACC']}")
    # the full-range head saturates S both ways (rows with several equal largest scores)
    s_full = np.array(res["full"]["S"])
    assert s_full.max() == 32767 and s_full.min() == -32768
