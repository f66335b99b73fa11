"""Per-operand SRAM and DRAM counts against SCALE-Sim 3.0.0's own reports.

``tests/expected/scalesim/access_counts.json`` holds SCALE-Sim's DETAILED_ACCESS_REPORT and
Total Cycles for 42 one-layer runs (4 GEMMs and 3 convolutions, 16x16 and 8x32 arrays, OS,
WS and IS; regenerate with ``benchmarks/scalesim_reference.py``). Checked here:

* ``sim.systolic.scalesim_gemm`` / ``scalesim_conv`` (closed forms) equal every number;
* einarray's simulator, configured with SCALE-Sim's semantics (fill and drain every fold,
  a buffer that holds everything), counts the same ifmap and filter reads at the buffer and
  at DRAM for every GEMM, and one cycle more (SCALE-Sim's off-by-one);
* WS and IS write every K fold's partial sums to the buffer, as SCALE-Sim counts them
  (``sim.systolic.psum_words``; einarray also reads back all but the first fold's);
* where the two differ by design, the difference is the stated one: einarray writes each
  output once to DRAM (SCALE-Sim's WS/IS count also writes every K fold's partial sums to
  DRAM), an OS array accumulates in its PEs (SCALE-Sim's OS count adds R + C per fold), and a
  convolution lowered to an im2col GEMM (``workload: {topology: ...}``) reads the im2col
  matrix, M K words, from DRAM where SCALE-Sim reads the H W C distinct ifmap elements.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sim.results import simulate
from sim.systolic import scalesim_conv, scalesim_gemm

from sim_helpers import config_from, gemm_arch

REF = json.loads((Path(__file__).resolve().parents[1] / "expected/scalesim/access_counts.json").read_text())
RUNS = REF["runs"]
KEYS = {"SRAM IFMAP Reads": "sram_ifmap_reads", "SRAM Filter Reads": "sram_filter_reads",
        "SRAM OFMAP Writes": "sram_ofmap_writes", "DRAM IFMAP Reads": "dram_ifmap_reads",
        "DRAM Filter Reads": "dram_filter_reads", "DRAM OFMAP Writes": "dram_ofmap_writes",
        "cycles": "cycles"}


def _id(r: dict) -> str:
    return f"{r['kind']}-{'x'.join(map(str, r['shape']))}-{r['array'][0]}x{r['array'][1]}-{r['dataflow']}"


def _gemm_dims(r: dict) -> tuple[int, int, int]:
    if r["kind"] == "gemm":
        return tuple(r["shape"])  # type: ignore[return-value]
    H, W, Rf, Sf, Ci, Nf, st = r["shape"]
    return -(-(H - Rf + st) // st) * -(-(W - Sf + st) // st), Nf, Rf * Sf * Ci  # SCALE-Sim's OH, OW


def test_the_reference_covers_every_dataflow_and_shape():
    assert len(RUNS) == 42
    assert {r["dataflow"] for r in RUNS} == {"os", "ws", "is"}
    assert sum(r["kind"] == "conv" for r in RUNS) == 18


@pytest.mark.parametrize("r", RUNS, ids=_id)
def test_closed_forms_are_scalesims_numbers(r):
    R, C = r["array"]
    got = (scalesim_gemm(*r["shape"], R, C, r["dataflow"]) if r["kind"] == "gemm"
           else scalesim_conv(*r["shape"], R, C, r["dataflow"]))
    assert {k: got[v] for k, v in KEYS.items()} == {k: r[k] for k in KEYS}


def _simulate(M: int, N: int, K: int, R: int, C: int, df: str) -> dict:
    doc = {"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}},
           "arch": gemm_arch(R, C, fold_overlap=False), "mapping": {"einsums": {"C": {"dataflow": df}}}}
    return simulate(config_from(doc))


@pytest.mark.parametrize("r", [r for r in RUNS if r["kind"] == "gemm"], ids=_id)
def test_simulator_counts_scalesims_operand_traffic(r):
    M, N, K = r["shape"]
    R, C = r["array"]
    res = _simulate(M, N, K, R, C, r["dataflow"])
    dram, gb = (res["traffic"][lv]["tensors"] for lv in ("DRAM", "GB"))
    assert gb["A"]["reads"] == r["SRAM IFMAP Reads"]
    assert gb["B"]["reads"] == r["SRAM Filter Reads"]
    assert dram["A"]["reads"] == r["DRAM IFMAP Reads"] and dram["B"]["reads"] == r["DRAM Filter Reads"]
    assert res["einsums"]["C"]["cycles"] == r["cycles"] + 1
    # outputs: DRAM gets each output once; at the buffer OS writes each once (partial sums
    # accumulate in the PEs) where SCALE-Sim also counts its fold edges, and WS/IS write every
    # K fold's partial sums, as SCALE-Sim does, reading back all but the first
    # (sim.systolic.psum_words), where SCALE-Sim also writes every fold to DRAM
    assert dram["C"]["writes"] == M * N
    folds = math.ceil({"os": M, "ws": K, "is": K}[r["dataflow"]] / R) * \
        math.ceil({"os": N, "ws": N, "is": M}[r["dataflow"]] / C)
    if r["dataflow"] == "os":
        assert gb["C"]["writes"] == M * N and gb["C"]["reads"] == M * N  # the write-back's read
        assert r["SRAM OFMAP Writes"] == M * N + folds * (R + C) and r["DRAM OFMAP Writes"] == M * N
    else:
        F = math.ceil(K / R)
        assert gb["C"]["writes"] == r["SRAM OFMAP Writes"] == M * N * F
        assert gb["C"]["reads"] == M * N * (F - 1) + M * N  # accumulation + the write-back's read
        assert r["DRAM OFMAP Writes"] == M * N * F


@pytest.mark.parametrize("r", [r for r in RUNS if r["kind"] == "conv" and r["array"] == [16, 16]], ids=_id)
def test_im2col_convolution_against_scalesim(r, tmp_path):
    """A topology-CSV conv row (einarray's SCALE-Sim import, an im2col GEMM) on a 16x16
    array with SCALE-Sim's semantics: the same buffer reads; DRAM reads of the im2col matrix."""
    H, W, Rf, Sf, Ci, Nf, st = r["shape"]
    M, N, K = _gemm_dims(r)
    (tmp_path / "t.csv").write_text("Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                    f"Num Filter, Strides,\nL, {H}, {W}, {Rf}, {Sf}, {Ci}, {Nf}, {st},\n")
    from einarray.flow import load_run_data, run

    arch = gemm_arch(16, 16, fold_overlap=False)
    spec = load_run_data({"workload": {"topology": "t.csv"}, "arch": arch,
                          "mappings": {"L": {"einsums": {"C": {"dataflow": r["dataflow"]}}}}},
                         "conv", base_dir=tmp_path)
    (lay,) = run(spec, progress=False)["layer_results"].values()
    dram, gb = (lay["traffic"][lv]["tensors"] for lv in ("DRAM", "GB"))
    assert gb["A"]["reads"] == r["SRAM IFMAP Reads"] and gb["B"]["reads"] == r["SRAM Filter Reads"]
    assert dram["B"]["reads"] == r["DRAM Filter Reads"]
    assert lay["einsums"]["C"]["cycles"] == r["cycles"] + 1  # the array's time (DRAM stalls aside)
    assert dram["A"]["reads"] == M * K and r["DRAM IFMAP Reads"] == H * W * Ci
