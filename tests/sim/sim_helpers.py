"""Helpers for the simulator tests: configs written to temporary files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml

from mapping.config import load_config

DATA = Path(__file__).parent / "data"
CONFIGS = Path(__file__).resolve().parents[2] / "mapping" / "configs"


def gemm_arch(R: int, C: int, *, fold_overlap: bool = True, fill_drain: bool = True,
              dram_bw: float = 8, gb_bw: float = 1e6, gb_bytes: int = 1 << 20,
              buffers: int = 2, shared: bool = True) -> dict:
    return {
        "version": 1, "name": f"test-{R}x{C}", "clock_hz": 1.0e9, "data_bits": {"default": 16},
        "array2d": {"rows": R, "cols": C, "macs_per_pe": 1, "ops": {"mac": 1, "add": 1, "max": 1},
                    "systolic": {"fill_drain": fill_drain, "fold_overlap": fold_overlap}},
        "memory": [
            {"name": "DRAM", "word_bits": 16, "read_bw": dram_bw, "write_bw": dram_bw, "shared_rw": shared},
            {"name": "GB", "capacity_bytes": gb_bytes, "word_bits": 16, "read_bw": gb_bw, "write_bw": gb_bw,
             "double_buffer": buffers >= 2, "buffers": buffers},
        ],
        "energy": {"array2d": {"mac": 1.5, "add": 0.5, "max": 0.25},
                   "DRAM": {"read": 100.0, "write": 120.0}, "GB": {"read": 3.0, "write": 4.0}},
    }


def write_config(doc: dict, directory: str | Path, name: str = "cfg.yaml") -> Path:
    p = Path(directory) / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def config_from(doc: dict, **kw):
    with tempfile.TemporaryDirectory() as d:
        return load_config(write_config(doc, d), **kw)


@pytest.fixture
def cfg_file(tmp_path):
    def make(doc: dict, name: str = "cfg.yaml") -> Path:
        return write_config(doc, tmp_path, name)
    return make
