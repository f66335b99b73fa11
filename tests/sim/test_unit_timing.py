"""Unit timing parameters that describe an RTL's schedule (mapping/arch/attention-engine.yaml):
``chain_stage`` (a stage's Einsums on a unit form one pipeline: the longest, not the sum) and
``pinned_elementwise`` (element-wise work on the PE array runs where its spatial mapping puts
it: folds over the spatial indices, not the work spread over every PE)."""

from __future__ import annotations

import pytest

from einarray.cli import main
from mapping.config import load_config
from sim.results import simulate

CONFIG = """einsum:
  version: 1
  name: two-maps
  ranks: {M: 2, N: 4}
  inputs: {X: [M, N]}
  outputs: [B]
  expressions:
    - A[m,n] = X[m,n] * 2
    - B[m,n] = A[m,n] + 1
arch:
  version: 1
  name: tiny
  clock_hz: 1.0e9
  array2d: {rows: 2, cols: 2, ops: {mul: 1, add: 1}, systolic: {fill_drain: false}}
  array1d: {width: 4, ops: {mul: 1, add: 1}}
  memory:
    - {name: DRAM, word_bits: 16, read_bw: 1000, write_bw: 1000}
    - {name: GB, capacity_bytes: 65536, word_bits: 16, read_bw: 1000, write_bw: 1000}
  energy:
    array2d: {mul: 1, add: 1}
    array1d: {mul: 1, add: 1}
    DRAM: {read: 1, write: 1}
    GB: {read: 1, write: 1}
mapping:
  version: 1
  einsums:
    A: {unit: UNIT_A}
    B: {unit: array1d}
  groups:
    - {name: g, einsums: rest, tiles: {GB: {M: TILE_M, N: 4}}, stages: STAGES}
"""


def _compute(tmp_path, sets=(), unit_a="array1d", tile_m=2, stages="[[A, B]]"):
    p = tmp_path / "cfg.yaml"
    p.write_text(CONFIG.replace("UNIT_A", unit_a).replace("TILE_M", str(tile_m))
                 .replace("STAGES", stages))
    return simulate(load_config(p, sets=list(sets)))["compute_cycles"]


def test_chain_stage_takes_the_longest_einsum_of_a_stage(tmp_path):
    # 8 points on 4 lanes: A and B take 2 cycles each
    assert _compute(tmp_path) == 4  # back to back
    assert _compute(tmp_path, ["arch.array1d.chain_stage=true"]) == 2  # one pipeline
    # Einsums of different stages still add up
    assert _compute(tmp_path, ["arch.array1d.chain_stage=true"], stages="[[A], [B]]") == 4


def test_pinned_elementwise_follows_the_spatial_mapping(tmp_path):
    # A on the 2 x 2 PEs with m on the rows and n on the columns, tiles of 1 x 4: spread over
    # the 4 PEs a tile is 1 cycle; pinned, its one row uses half the PE rows: 2 folds
    unit = "array2d, spatial: {rows: [m], cols: [n]}"
    spread = _compute(tmp_path, unit_a=unit, tile_m=1, stages="[[A], [B]]")
    pinned = _compute(tmp_path, ["arch.array2d.pinned_elementwise=true"], unit_a=unit, tile_m=1,
                      stages="[[A], [B]]")
    assert (spread, pinned) == (2 * 1 + 2 * 1, 2 * 2 + 2 * 1)  # A per step + B per step, 2 steps


@pytest.mark.parametrize("key", ["array1d.chain_stage", "array2d.pinned_elementwise"])
def test_flags_must_be_booleans(tmp_path, capsys, key):
    p = tmp_path / "cfg.yaml"
    p.write_text(CONFIG.replace("UNIT_A", "array1d").replace("TILE_M", "2")
                 .replace("STAGES", "[[A, B]]"))
    assert main(["simulate", str(p), "--set", f"arch.{key}=1"]) == 2
    assert (f"command line --set arch.{key}=1: expected true or false, got 1"
            in capsys.readouterr().err)
