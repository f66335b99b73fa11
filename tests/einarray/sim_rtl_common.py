"""Shared by ``test_sim_rtl.py`` (pytest) and ``cocotb_sim_rtl.py`` (cocotb): the compute
unit sizes and GEMM shapes of the simulator-vs-RTL test, the simulator's predictions, and
how a whole GEMM is cut into compute-unit commands (one command per R x C output tile,
K <= max_k, operands streamed in the order the RTL expects).

Only NumPy, the golden models and the compute unit's command encoder are needed on the
cocotb side; the simulator imports are lazy (pytest side only).
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from einsum.golden_gemm import OP_GEMM, GemmFormat, gemm_tile
from hw.compute_unit import encode_cmd

#: the FPGA architecture whose 2-D array models the unified compute unit
ARCH = "zcu102-edge-moe"

#: the two compute units (ComputeUnit kwargs, keyed by their port prefix in the test top,
#: see :func:`top`). Their formats are those of the attention head's matmuls: ``cu4`` runs
#: S = Q K^T (Q, K and S with 10 fraction bits), ``cu2`` runs A V (A with 14, V and the
#: output with 10). Cycles do not depend on the formats. No GELU lanes (the GELU flag is
#: never set; the lanes would only lengthen the build).
UNITS = {
    "cu2": {"rows": 2, "cols": 2, "max_k": 64, "a_frac": 14, "w_frac": 10, "o_frac": 10,
            "gelu": False},
    "cu4": {"rows": 4, "cols": 4, "max_k": 64, "a_frac": 10, "w_frac": 10, "o_frac": 10,
            "gelu": False},
}

#: GEMM shapes (M, N, K, reuse) per unit: K = 1, K < R, K > R, K = max_k; one tile and
#: many folds (M = 2R, N = 3C, ...); the last shape has M, N not multiples of the tile
#: (edge tiles are zero-padded; both the simulator and the RTL count ceil(M/R) ceil(N/C)
#: folds). ``reuse``: tiles after the first of a row of tiles take the left operand from
#: the unit's operand buffer instead of the ``i`` port (timing unchanged).
SHAPES = {
    "cu2": [(2, 2, 1, False), (4, 6, 1, True), (2, 4, 3, False), (4, 6, 5, True),
            (6, 2, 17, False), (8, 8, 32, True), (4, 4, 64, False), (10, 6, 9, True),
            (3, 5, 7, False)],
    "cu4": [(4, 4, 1, False), (8, 12, 1, True), (8, 12, 3, False), (4, 16, 8, True),
            (16, 4, 17, False), (12, 8, 33, True), (16, 16, 64, True), (8, 8, 2, False),
            (6, 10, 5, True)],
}

# the attention head (cascade attention-fixed): Q K^T on cu4, the softmax block, A V on cu2
QKT_UNIT, AV_UNIT = "cu4", "cu2"
QKT_SHIFT = 3  # requant(QK, 13, ...) = base shift 10 + 3
SOFTMAX = {"width": 16, "frac_bits": 10, "out_width": 16, "out_frac_bits": 14, "max_len": 16}
TOP = "sim_rtl_top"


def softmax_params() -> dict:
    """:data:`SOFTMAX`, plus ``dsp="generic"`` when the generator has that choice (plain
    ``a * b`` multipliers and inferred RAM: no vendor primitives, any simulator)."""
    import inspect

    from hw.softmax import Softmax

    p = dict(SOFTMAX)
    if "dsp" in inspect.signature(Softmax.__init__).parameters:
        p["dsp"] = "generic"
    return p


def top():
    """The test's toplevel: both compute units and the softmax block side by side, their
    ports forwarded unchanged with prefixes ``cu2__``, ``cu4__`` and ``sm__`` (no logic in
    between; one Verilog build per simulator serves every test)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import Out

    from hw.compute_unit import ComputeUnit
    from hw.softmax import Softmax

    class SimRtlTop(wiring.Component):
        def __init__(self):
            self._subs = {name: ComputeUnit(**p) for name, p in UNITS.items()}
            self._subs["sm"] = Softmax(**softmax_params())
            super().__init__({name: Out(c.signature) for name, c in self._subs.items()})

        def elaborate(self, platform):
            m = Module()
            for name, c in self._subs.items():
                m.submodules[name] = c
                wiring.connect(m, wiring.flipped(getattr(self, name)), c)
            return m

    return SimRtlTop()


def unit_format(params: dict) -> GemmFormat:
    """The GemmFormat a ComputeUnit built with ``params`` uses (same defaults)."""
    a_width, a_frac = params.get("a_width", 16), params.get("a_frac", 10)
    w_width, w_frac = params.get("w_width", 16), params.get("w_frac", 14)
    o_width = params.get("o_width", a_width)
    o_frac = params.get("o_frac", a_frac)
    return GemmFormat(a_width=a_width, a_frac=a_frac, w_width=w_width, w_frac=w_frac,
                      acc_width=params.get("acc_width", 40), o_width=o_width, o_frac=o_frac,
                      bias_frac=params.get("bias_frac", w_frac))


# -- simulator side -----------------------------------------------------------------------

@lru_cache(maxsize=None)
def _shipped_arch() -> dict:
    import yaml

    from mapping.arch import resolve_arch

    return yaml.safe_load(resolve_arch(ARCH).read_text())["arch"]


def arch_for(rows: int, cols: int) -> dict:
    """The shipped FPGA architecture with its 2-D array (the compute unit) resized to
    ``rows`` x ``cols``; its ``systolic`` block (model broadcast, tile_overhead) unchanged."""
    d = copy.deepcopy(_shipped_arch())
    d["name"] = f"{ARCH}-cu{rows}x{cols}"
    d["array2d"]["rows"], d["array2d"]["cols"] = rows, cols
    return d


def sim_einsum_cycles(workload: dict, rows: int, cols: int, name: str) -> dict[str, tuple[str, int]]:
    """Simulate ``workload`` on :func:`arch_for` and return {einsum: (unit, cycles)}."""
    from einarray.flow import load_run_data
    from sim.results import simulate

    spec = load_run_data({"workload": workload, "arch": arch_for(rows, cols)}, name)
    r = simulate(spec.layers[0].config)
    out = {}
    for e, v in r["einsums"].items():
        cyc = v["cycles"]
        assert float(cyc) == int(cyc), f"{name}: non-integer cycles {cyc} for {e}"
        out[e] = (v["unit"], int(cyc))
    return out


def sim_gemm_cycles(rows: int, cols: int, M: int, N: int, K: int) -> int:
    """The simulator's cycles for the GEMM Einsum ``C`` of the ``gemm`` cascade."""
    res = sim_einsum_cycles({"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}}, rows, cols,
                            f"gemm-{M}x{N}x{K}")
    unit, cyc = res["C"]
    assert unit == "array2d", f"gemm {M}x{N}x{K} mapped on {unit}, not the compute unit"
    return cyc


# -- RTL side: one GEMM as a list of tile commands ------------------------------------------

def gemm_tiles(x, w, *, rows: int, cols: int, max_k: int, fmt: GemmFormat, op: int = OP_GEMM,
               shift: int = 0, reuse: bool = False):
    """Cut ``x`` (M, K) @ ``w`` (K, N) into R x C output tiles, row of tiles by row of tiles.

    Returns a list of dicts ``{cmd, i_beats, w_beats, expected, k, m0, n0}``: beat ``k`` of
    ``i`` is column ``k`` of the (zero-padded) R x K slice of ``x``, beat ``k`` of ``w`` row
    ``k`` of the K x C slice of ``w`` (for ``Q K^T`` pass ``w = K^T``: the beat is column
    ``k`` of the K tile, as :func:`einsum.golden_gemm.qkt_tile` defines). ``expected`` is the
    golden tile (:func:`einsum.golden_gemm.gemm_tile`).
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    M, K = x.shape
    K2, N = w.shape
    assert K == K2 and 1 <= K <= max_k, (x.shape, w.shape, max_k)
    tiles = []
    for m0 in range(0, M, rows):
        a = np.zeros((rows, K), dtype=np.int64)
        a[: min(rows, M - m0)] = x[m0:m0 + rows]
        for j, n0 in enumerate(range(0, N, cols)):
            wt = np.zeros((K, cols), dtype=np.int64)
            wt[:, : min(cols, N - n0)] = w[:, n0:n0 + cols]
            re = reuse and j > 0
            y, _ = gemm_tile(a, wt, fmt=fmt, op=op, shift=shift)
            tiles.append({
                "cmd": encode_cmd(K, max_k=max_k, op=op, reuse=re, shift=shift),
                "i_beats": [] if re else [[int(v) for v in a[:, k]] for k in range(K)],
                "w_beats": [[int(v) for v in wt[k]] for k in range(K)],
                "expected": y, "k": K, "m0": m0, "n0": n0,
            })
    return tiles


def assemble(tiles, outputs, M: int, N: int) -> np.ndarray:
    """Place the R x C output tiles (in the order of ``tiles``) into the M x N result."""
    out = np.zeros((M, N), dtype=np.int64)
    for t, y in zip(tiles, outputs):
        m0, n0 = t["m0"], t["n0"]
        rr, cc = min(y.shape[0], M - m0), min(y.shape[1], N - n0)
        out[m0:m0 + rr, n0:n0 + cc] = y[:rr, :cc]
    return out
