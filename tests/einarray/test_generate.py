# amaranth: UnusedElaboratable=no
"""``einarray generate``: the attention engine from a simulation config; the Verilog it writes
runs on Icarus bit-identical to ``einarray eval`` of the config's cascade, in the predicted
cycles; configs the engine cannot build are refused with the file, line and YAML path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from einarray.cli import main

_HW = Path(__file__).resolve().parent.parent / "hw"
if str(_HW) not in sys.path:
    sys.path.insert(0, str(_HW))

from cocotb_runner import run_cocotb  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "mapping" / "configs" / "attention-engine.yaml"


def _generate(tmp_path, config=CONFIG, capsys=None):
    out = tmp_path / "engine"
    assert main(["generate", str(config), "-o", str(out)]) == 0
    return out


def test_writes_verilog_and_sidecar(tmp_path, capsys):
    out = _generate(tmp_path)
    assert "186 cycles (einarray simulate: 186)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".einarray-report.json", "attention_engine.json",
                                                     "attention_engine.v"]
    d = json.loads((out / "attention_engine.json").read_text())
    assert d["top"] == "attention_engine"
    assert d["params"] == {"rows": 2, "cols": 2, "head_dim": 4, "chunk": 2, "width": 16,
                           "frac_bits": 10, "qk_shift": 13, "max_keys": 8}
    # (E + 2) M + T (21 + 2 P) + T (Gs (2 E + 1) + 2 P1) with M=4, P=8, T=2, P1=Gs=4, E=4
    want = 6 * 4 + 2 * (21 + 16) + 2 * (4 * 9 + 8)
    assert d["predicted"] == {**d["predicted"], "M": 4, "P": 8, "cycles": want, "closed_form": want}
    assert d["ports"]["v"]["tdata"] == "v_tdata" and d["ports"]["o"]["direction"] == "out"
    v = (out / "attention_engine.v").read_text()
    assert "module attention_engine" in v and "o_tlast" in v
    # the same command again refreshes its own directory
    assert main(["generate", str(CONFIG), "-o", str(out)]) == 0


def test_refuses_a_directory_with_other_files(tmp_path, capsys):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep")
    assert main(["generate", str(CONFIG), "-o", str(d)]) == 2
    assert "einarray generate: error:" in capsys.readouterr().err
    assert (d / "notes.txt").read_text() == "keep" and len(list(d.iterdir())) == 1


def test_generated_verilog_is_einarray_eval_on_icarus(tmp_path):
    out = _generate(tmp_path)
    d = json.loads((out / "attention_engine.json").read_text())
    m, p, e = d["predicted"]["M"], d["predicted"]["P"], d["params"]["head_dim"]
    rng = np.random.default_rng(12)
    q, k, v = (rng.integers(-9000, 9001, (n, e)) for n in (m, p, p))
    np.savez(tmp_path / "in.npz", Q=q, K=k, V=v)
    assert main(["eval", "attention-fixed-1pass", "-i", str(tmp_path / "in.npz"), "-o",
                 str(tmp_path / "out.npz"), "--rank", f"P0={d['params']['chunk']}"]) == 0
    want = np.load(tmp_path / "out.npz")["AV"].astype(np.int64)
    cycles = tmp_path / "cycles.json"
    cycles = tmp_path / "cycles.json"
    head = {"M": m, "P": p, "seed": 0, "amp": 0, "pause": False,
            "inputs": str(tmp_path / "in.npz"), "expect": str(tmp_path / "out.npz")}
    run_cocotb(out / "attention_engine.v", "attention_engine", "cocotb_attention_engine", "icarus",
               tmp_path / "sim",
               env={"ENGINE_PARAMS": json.dumps(d["params"]),
                    "ENGINE_CASCADE_PARAMS": json.dumps(d["cascade_params"]),
                    "ENGINE_CASES": json.dumps([head]), "ENGINE_CYCLES": str(cycles)})
    assert json.loads(cycles.read_text())[0]["cycles"] == d["predicted"]["cycles"] == 186
    assert want.shape == (m, e) and np.abs(want).max() > 100  # a real head, not zeros


def _config(tmp_path, **edits) -> Path:
    text = CONFIG.read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("old,new,where", [
    ("P0: 2}", "P0: 3}", "workload.ranks: chunk (3) must be a multiple of cols (2)"),
    ("F: 4,", "F: 2,", "workload.ranks.F: the engine's value rows have head_dim = E = 4"),
    ("SLNV: {unit: array2d, dataflow: ws, spatial: {rows: [m], cols: [p0]}}",
     "SLNV: {unit: array1d}",
     "cfg.yaml:20 mapping.einsums.SLNV.unit: the engine runs SLNV on array2d, the mapping puts it "
     "on array1d"),
])
def test_refuses_what_it_cannot_build(tmp_path, capsys, old, new, where):
    cfg = _config(tmp_path, **{old: new})
    out = tmp_path / "engine"
    assert main(["generate", str(cfg), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("einarray generate: error: ") and where in err, err
    assert not out.exists()


def test_refuses_another_cascade(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("workload:\n  cascade: softmax-1pass\n  ranks: {M: 4, P: 8, E: 4, F: 4, P0: 2}\n"
                   "arch: attention-engine\n")
    assert main(["generate", str(cfg), "-o", str(tmp_path / "o")]) == 2
    assert ("cfg.yaml:2 workload.cascade: the engine computes the cascade 'attention-fixed-1pass', "
            "not 'softmax-1pass'") in capsys.readouterr().err


def _arch(tmp_path, **edits) -> None:
    arch = (REPO / "mapping" / "arch" / "attention-engine.yaml").read_text()
    for old, new in edits.items():
        assert old in arch, old
        arch = arch.replace(old, new)
    (tmp_path / "arch.yaml").write_text(arch)


def test_refuses_an_array_larger_than_the_engine(tmp_path, capsys):
    _arch(tmp_path, **{"rows: 2\n": "rows: 32\n", "cols: 2\n": "cols: 32\n",
                       "width: 8\n": "width: 128\n"})
    cfg = _config(tmp_path, **{"arch: attention-engine": "arch: arch.yaml"})
    assert main(["generate", str(cfg), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "arch.yaml:20 arch.array2d.rows: rows must be in 1..16, got 32" in err, err


def test_refuses_a_1d_array_of_other_width(tmp_path, capsys):
    _arch(tmp_path, **{"    width: 8\n": "    width: 3\n"})
    cfg = _config(tmp_path, **{"arch: attention-engine": "arch: arch.yaml"})
    assert main(["generate", str(cfg), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "arch.yaml:29 arch.array1d.width: the engine has a 1-D lane per query row and value " \
        "column: width must be array2d.rows x F = 2 x 4 = 8, got 3" in err, err


@pytest.mark.parametrize("old,new,got", [
    ("div: {cycles: 8, latency: 22}", "div: 1", "got {cycles: 1, latency: 1}"),
    ("div: {cycles: 8, latency: 22}", "div: {cycles: 8, latency: 4}", "got {cycles: 8, latency: 4}"),
])
def test_refuses_a_1d_divider_the_engine_does_not_have(tmp_path, capsys, old, new, got):
    _arch(tmp_path, **{old: new})
    cfg = _config(tmp_path, **{"arch: attention-engine": "arch: arch.yaml"})
    assert main(["generate", str(cfg), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "arch.yaml:33 arch.array1d.ops.div: the engine's lanes share one divider" in err, err
    assert "div must be {cycles: 8, latency: 22} (cycles = array1d.width), " + got in err, err


# (rows, cols, head_dim E = F, chunk P0, M, P): whole and partial query tiles, chunks of one
# and several column groups, ragged last chunks (one that skips groups), 8 x 8 (the last three
# of them the 8 x 8 heads measured on Icarus: a head of M < rows is one tile of M rows)
SIM_CASES = [(2, 2, 4, 2, 4, 8), (2, 2, 4, 4, 5, 11), (2, 2, 4, 8, 3, 9), (4, 4, 8, 4, 6, 13),
             (4, 4, 8, 4, 9, 20), (4, 2, 4, 6, 9, 17), (1, 1, 2, 1, 3, 5), (2, 4, 4, 8, 3, 21),
             (8, 8, 4, 8, 16, 64), (8, 8, 2, 16, 5, 21), (8, 8, 2, 16, 11, 21), (8, 8, 2, 16, 8, 7),
             # the 256-token heads of reports/hw (hw/report.py quotes the closed form)
             (2, 2, 4, 2, 256, 256), (4, 4, 8, 4, 256, 256)]


@pytest.mark.parametrize("r,c,e,p0,m,p", SIM_CASES)
def test_simulator_predicts_the_engine(r, c, e, p0, m, p):
    """einarray simulate of the engine's config equals the engine's cycles (measured on
    Icarus for the heads of tests/hw/test_attention_engine.py, which pins them to the closed
    form)."""
    from hw.attention_engine import AttentionEngine
    from mapping.config import load_config
    from sim.results import simulate

    sets = [f"arch.array2d.rows={r}", f"arch.array2d.cols={c}", f"arch.array1d.width={r * e}",
            f"arch.array1d.ops.div.cycles={r * e}",
            f"arch.memory.0.read_bw={e}", f"arch.memory.0.write_bw={e}",
            f"mapping.groups.0.tiles.BUF.M={min(r, m)}"]   # the engine's query tile
    cfg = load_config(CONFIG, ranks={"M": m, "P": p, "E": e, "F": e, "P0": p0}, sets=sets)
    got = simulate(cfg)["cycles"]
    assert got == AttentionEngine(rows=r, cols=c, head_dim=e, chunk=p0).cycles(m, p)


def test_single_chunk_heads_warn_that_the_simulator_keeps_keys(tmp_path, capsys):
    cfg = _config(tmp_path, **{"P: 8, E: 4, F: 4, P0: 2}": "P: 2, E: 4, F: 4, P0: 2}"})
    assert main(["generate", str(cfg), "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "einarray simulate predicts 92 cycles for this head, the engine takes 96" in err, err
    assert "streams them again for every tile" in err


def test_a_derived_mapping_warns_that_it_is_not_the_engines_schedule(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("workload:\n  cascade: attention-fixed-1pass\n"
                   "  ranks: {M: 4, P: 8, E: 4, F: 4, P0: 2}\narch: attention-engine\n")
    assert main(["generate", str(cfg), "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "the engine takes 186 (the mapping was not given" in err, err
