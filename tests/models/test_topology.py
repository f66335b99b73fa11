"""SCALE-Sim topology CSVs: rows lower to SCALE-Sim's GEMMs and run in SCALE-Sim's cycles
(plus the one cycle it leaves out, sim/README.md) on an output-stationary systolic array."""

from __future__ import annotations

import pytest

from einarray.cli import main
from einarray.flow import default_layer, load_run
from einsum.errors import ConfigError
from models.layers import layer_macs
from models.topology import conv_gemm, import_topology
from sim.results import simulate
from sim.systolic import scalesim_gemm

# SCALE-Sim's semantics: every fold pays fill and drain, folds do not overlap
SCALESIM = ["arch.array2d.systolic.fill_drain=true", "arch.array2d.systolic.fold_overlap=false"]

CONV_CSV = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 224, 224, 7, 7, 3, 64, 2,
CB2a_1, 56, 56, 1, 1, 64, 64, 1,
S1, 31, 31, 3, 3, 16, 32, 2,
S2, 30, 30, 5, 5, 8, 24, 3,
R1, 30, 20, 3, 3, 8, 16, 2, 1,
"""


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("row,want", [
    # ResNet-50's first layer: ceil((224 - 7 + 2) / 2) = 110 per side
    ((224, 224, 7, 7, 3, 64, 2, 2), (110 * 110, 7 * 7 * 3, 64)),
    ((56, 56, 1, 1, 64, 64, 1, 1), (56 * 56, 64, 64)),
    # (31 - 3 + 2) / 2 = 15; (30 - 5 + 3) / 3 = 9.33 -> 10 (SCALE-Sim rounds up)
    ((31, 31, 3, 3, 16, 32, 2, 2), (15 * 15, 144, 32)),
    ((30, 30, 5, 5, 8, 24, 3, 3), (10 * 10, 200, 24)),
    # strides 2 x 1: ceil((30 - 3 + 2) / 2) = 15 rows, 20 - 3 + 1 = 18 columns
    ((30, 20, 3, 3, 8, 16, 2, 1), (15 * 18, 72, 16)),
])
def test_conv_row_is_scalesims_gemm(row, want):
    assert conv_gemm(*row) == want


def test_conv_topology_layers_and_macs(tmp_path):
    m = import_topology(_write(tmp_path, "resnet.csv", CONV_CSV))
    assert [(l["name"], l["cascade"], l["ranks"]) for l in m["layers"]] == [
        ("Conv1", "gemm", {"M": 12100, "K": 147, "N": 64}), ("CB2a_1", "gemm", {"M": 3136, "K": 64, "N": 64}),
        ("S1", "gemm", {"M": 225, "K": 144, "N": 32}), ("S2", "gemm", {"M": 100, "K": 200, "N": 24}),
        ("R1", "gemm", {"M": 270, "K": 72, "N": 16})]
    # MACs: output pixels x filter window x filters, SCALE-Sim's num_mac
    assert [layer_macs(l) for l in m["layers"]] == [110 * 110 * 7 * 7 * 3 * 64, 56 * 56 * 64 * 64,
                                                    15 * 15 * 3 * 3 * 16 * 32, 10 * 10 * 5 * 5 * 8 * 24,
                                                    15 * 18 * 3 * 3 * 8 * 16]


def test_gemm_topology(tmp_path):
    m = import_topology(_write(tmp_path, "gpt2.csv", "Layer,M,N,K,\nQKT,1024,1024,64,\nLinear1,1024,4800,1600,\n"))
    assert [(l["name"], l["ranks"]) for l in m["layers"]] == [
        ("QKT", {"M": 1024, "K": 64, "N": 1024}), ("Linear1", {"M": 1024, "K": 1600, "N": 4800})]


def _cycles(cfg, layer):
    spec = load_run(cfg, sets=SCALESIM)
    (lay,) = [l for l in spec.layers if l.name == layer]
    if lay.config.mapping_origin == "default":
        lay = default_layer(lay)
    r = simulate(lay.config)
    return r["einsums"]["C"]["cycles"], r["compute_only_cycles"], lay.config.cascade


@pytest.mark.parametrize("layer", ["CB2a_1", "S1", "S2", "R1"])
def test_conv_rows_take_scalesims_cycles(tmp_path, layer):
    _write(tmp_path, "resnet.csv", CONV_CSV)
    cfg = _write(tmp_path, "r.yaml", "workload: {topology: resnet.csv}\narch: systolic-16x16\n")
    cyc, compute, c = _cycles(cfg, layer)
    M, K, N = (c.ranks[r].size for r in "MKN")
    assert cyc == compute == scalesim_gemm(M, N, K, 16, 16, "os")["cycles"] + 1


def test_conv1_with_array_multiple_tiles_takes_scalesims_cycles(tmp_path):
    # 12,100 output pixels do not fit the 1 MiB buffer at once; tiles of 768 (48 folds of
    # 16) add no fold over SCALE-Sim's untiled ceil(12100 / 16) = 757
    _write(tmp_path, "resnet.csv", CONV_CSV)
    cfg = _write(tmp_path, "r.yaml", "workload: {topology: resnet.csv}\narch: systolic-16x16\nmappings:\n"
                 "  Conv1:\n    einsums: {C: {dataflow: os}}\n"
                 "    groups: [{name: g, einsums: [C], tiles: {GB: {M: 768}}, loop_order: [M]}]\n")
    cyc, compute, _ = _cycles(cfg, "Conv1")
    assert cyc == compute == scalesim_gemm(12100, 64, 147, 16, 16, "os")["cycles"] + 1 == 535_956


@pytest.mark.parametrize("arch,published", [("systolic-16x16", 1503), ("systolic-32x32", 503)])
def test_gemm_row_takes_scalesims_published_cycles(tmp_path, arch, published):
    # SCALE-Sim prints 1503 (16x16) and 503 (32x32) cycles for 64^3 output-stationary
    _write(tmp_path, "g.csv", "Layer, M, N, K,\ng, 64, 64, 64,\n")
    cfg = _write(tmp_path, "r.yaml", f"workload: {{topology: g.csv}}\narch: {arch}\n")
    assert _cycles(cfg, "g")[0] == published + 1


@pytest.mark.parametrize("text,line,msg", [
    ("Name, A, B\nx, 1, 2\n", 1, "expected a SCALE-Sim header"),
    ("Layer, M, N, K,\ng, 64, x, 64,\n", 2, "N: expected a positive integer, got 'x'"),
    ("Layer, M, N, K,\ng, 64, 64,\n", 2, "expected 4 columns (Layer, M, N, K), got 3"),
    (CONV_CSV + "Big, 4, 4, 5, 5, 1, 1, 1,\n", 7, "the 5 x 5 filter is larger than the 4 x 4 IFMAP"),
    ("Layer, M, N, K,\ng, 0, 64, 64,\n", 2, "M: expected a positive integer, got '0'"),
])
def test_bad_rows_name_the_line(tmp_path, text, line, msg):
    p = _write(tmp_path, "t.csv", text)
    with pytest.raises(ConfigError) as ei:
        import_topology(p)
    assert str(ei.value).startswith(f"{p}:{line}: {msg}")


def test_missing_topology_is_one_error_line(tmp_path, capsys):
    cfg = _write(tmp_path, "r.yaml", "workload: {topology: nope.csv}\narch: systolic-16x16\n")
    assert main(["run", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cfg}:1 workload.topology: no file 'nope.csv'" in err


def test_a_sweep_runs_again_when_the_topology_changes(tmp_path):
    from einarray.sweep import load_sweep, run_sweep

    csv = _write(tmp_path, "g.csv", "Layer, M, N, K,\ng, 32, 32, 32,\n")
    _write(tmp_path, "base.yaml", "workload: {topology: g.csv}\narch: systolic-16x16\n")
    p = _write(tmp_path, "sweep.yaml", "sweep:\n  version: 1\n  name: s\n  base: base.yaml\n"
               "  grid:\n    arch.array2d.rows: [8, 16]\n")
    first = run_sweep(load_sweep(p), tmp_path / "out", workers=1, progress=False)
    assert run_sweep(load_sweep(p), tmp_path / "out", workers=1, progress=False).skipped == 2
    csv.write_text("Layer, M, N, K,\ng, 64, 32, 32,\n")
    res = run_sweep(load_sweep(p), tmp_path / "out", workers=1, progress=False)
    assert res.skipped == 0 and sum(res.rerun.values()) == 2
    assert all(b["cycles"] > a["cycles"] for a, b in zip(first.records, res.records))
