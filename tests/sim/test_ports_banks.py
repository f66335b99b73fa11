"""Port and bank limits of a hierarchy level (sim.nest.port_bank_cycles) against closed forms.

Exercise 01 (output stationary, examples/timeloop/01-conv1d-2level-os.yaml): 48 MACs; its Buffer
(block size 1) reads Weights 48, Inputs 48, Outputs 32 (48 updates - 16 first writes), fills
Weights 3 (they stay), Inputs 3 + 15 = 18 (the window slides), and takes 48 Output updates:
accesses a_W = 51, a_I = 66, a_O = 80, A = 197. MainMemory (8 words per block) reads Weights 3
and Inputs 18 and takes 16 Output updates: ceil(3/8) + ceil(18/8) + ceil(16/8) = 1 + 3 + 2 = 6
block accesses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from einarray.cli import main

EX = str(Path(__file__).resolve().parents[2] / "examples" / "timeloop" / "01-conv1d-2level-os.yaml")


def _run(capsys, *sets: str) -> dict:
    args = ["simulate", EX, "--json"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("sets, level, cycles, limit, timeline", [
    # ports shared by reads and writes: ceil(197 / 1) and ceil(197 / 2)
    (["arch.hierarchy.1.ports=1"], "Buffer", 197, "ports", 16 * (3 + 4 + 4) + 6 + 15 * 2 + 1),
    (["arch.hierarchy.1.ports=2"], "Buffer", 99, "ports", 48 * 2 + 3 + 15 + 1),
    # interleaved banks: the busiest of 2 takes ceil(197 / 2) = 99 blocks of 1 word; at half a word
    # per cycle per bank, 198 cycles
    (["arch.hierarchy.1.banks={count: 2, bandwidth: 1}"], "Buffer", 99, "banks", 48 * 2 + 3 + 15 + 1),
    (["arch.hierarchy.1.banks={count: 2, bandwidth: 0.5}"], "Buffer", 198, "banks",
     16 * 3 + 32 * 4 + 6 + 15 * 2 + 2),
    # partitioned per tensor (4 banks of 16 words): max(51 / 1, 66 / 1, ceil(80 / 2)) = 66
    (["arch.hierarchy.1.banks={count: 4, bandwidth: 1, assign: {Weights: 1, Inputs: 1, Outputs: 2}}"],
     "Buffer", 66, "banks", 48 + 3 + 15 + 1),
    # both: the larger bound names the limit (ports 197 / 3 -> 66; banks 99)
    (["arch.hierarchy.1.ports=3", "arch.hierarchy.1.banks={count: 2, bandwidth: 1}"], "Buffer", 99, "banks",
     48 * 2 + 3 + 15 + 1),
])
def test_port_and_bank_bounds_set_the_cycles(capsys, sets, level, cycles, limit, timeline):
    """The bound (Timeloop's traffic spread over the run) and the timeline, whose closed form is:
    16 output positions of 3 MAC steps each, a step's Buffer blocks 2 reads + 1 update at r = 0 and
    3 + 1 after (words as fractions of blocks); the first transfer's 6 blocks (Weights 3, Inputs
    3); 15 transfers of 2 blocks (the window's new input word, the old output's write-back read,
    which Timeloop's counts leave out); the last output's 1-block drain. E.g. 1 port: 16 x (3 + 4
    + 4) + 6 + 15 x 2 + 1 = 213; per-tensor banks: 1 cycle a step (Outputs' 2 words over its 2
    banks), 3, 15 x 1, 1."""
    out = _run(capsys, *sets)
    lv = out["levels"][level]
    assert (lv["cycles"], lv["limit"]) == (cycles, limit)
    assert (out["compute_cycles"], out["bound_cycles"], out["cycles"]) == (48, cycles, timeline)
    assert out["stall_cycles"] == timeline - 48 and out["timeline"]["cycles"] == timeline
    assert out["bound_by"].startswith("the timeline: waits for Buffer")
    assert lv["leak_pj"] == pytest.approx(0.000861 * timeline)  # the register file leaks for the whole run


def test_blocks_count_whole_accesses(capsys):
    """MainMemory's 6 block accesses of 8 words: 1 port, 6 cycles (below the 48 MACs: the bound is
    compute); 2 banks at 1 word per cycle: the busiest takes 3 blocks = 24 words, 24 cycles. On the
    timeline each transfer takes whole blocks: 1 port: the first 2 blocks (Weights, Inputs), 15 x
    2 (an input word, an output word written back), a 1-block drain: 48 + 2 + 30 + 1 = 81; 2 banks:
    every transfer's busiest bank takes 1 block of 8 words at 1 word per cycle: 48 + 8 + 15 x 8 +
    8 = 184."""
    out = _run(capsys, "arch.hierarchy.0.ports=1")
    assert (out["levels"]["MainMemory"]["cycles"], out["bound_cycles"], out["cycles"]) == (6, 48, 81)
    out = _run(capsys, "arch.hierarchy.0.banks={count: 2, bandwidth: 1}")
    assert (out["levels"]["MainMemory"]["cycles"], out["bound_cycles"], out["cycles"]) == (24, 48, 184)


def test_without_ports_or_banks_nothing_changes(capsys):
    out = _run(capsys)
    assert (out["cycles"], out["bound_by"], out["stall_cycles"]) == (48, "compute", 0)
    assert {lv["limit"] for lv in out["levels"].values()} == {"bandwidth"}


@pytest.mark.parametrize("value, msg", [
    ("arch.hierarchy.1.ports=0", "expected a number of ports"),
    ("arch.hierarchy.1.banks={count: 3, bandwidth: 1}", "3 banks do not divide the capacity of 64 words"),
    ("arch.hierarchy.1.banks={count: 2, bandwidth: 0}", "bandwidth > 0"),
    ("arch.hierarchy.1.banks={count: 2}", "missing required key 'bandwidth'"),
    ("arch.hierarchy.1.banks={count: 2, bandwidth: 1, width: 4}", "unknown key 'width'"),
    ("arch.hierarchy.1.banks={count: 2, bandwidth: 1, assign: {Weights: 2, Inputs: 1}}",
     "the tensors take 3 banks, more than the level's 2"),
    ("arch.hierarchy.1.banks={count: 4, bandwidth: 1, assign: {Weights: 1, Inputs: 1}}",
     "Outputs is kept at Buffer but assigned no banks"),
    ("arch.hierarchy.1.banks={count: 4, bandwidth: 1, assign: {Weights: 1, Inputs: 1, Outputs: 1, X: 1}}",
     "X is not a tensor Buffer keeps"),
    # 64 banks of one word: a 3-word tile does not fit one bank (located at the mapping's level)
    ("arch.hierarchy.1.banks={count: 64, bandwidth: 1, assign: {Weights: 1, Inputs: 1, Outputs: 1}}",
     "the tile of Weights at Buffer needs 3 words, more than the 1 words of its 1 bank(s)"),
])
def test_bad_ports_and_banks_are_located_errors(capsys, value, msg):
    assert main(["simulate", EX, "--set", value]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert "banks" in err or "ports" in err or "mapping.nest.Buffer" in err


def test_bank_count_must_match_the_component(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text(Path(EX).read_text().replace("arch: arch/2level.yaml", f"""arch:
  version: 1
  name: banked
  clock_hz: 1.0e9
  hierarchy:
    - {{name: MainMemory, word_bits: 16, energy: {{read: 1.0}}}}
    - {{name: Buffer, capacity_words: 64, word_bits: 16, component: {{class: sram, banks: 4}},
       banks: {{count: 2, bandwidth: 1}}}}
  compute: {{name: MACC, energy: {{compute: 1.0}}}}""").replace("problems/", str(Path(EX).parent / "problems") + "/"))
    assert main(["simulate", str(p)]) == 2
    assert "2 banks, but the level's component has banks: 4" in capsys.readouterr().err
