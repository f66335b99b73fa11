"""mapping.dump: a loaded mapping written back as a section loads to the same MappingSpec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from einsum.yamlsrc import Source
from mapping.dump import mapping_to_data
from mapping.config import load_config
from mapping.loader import mapping_from_data

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / "mapping" / "configs").glob("*.yaml")
                 if "arch" in (yaml.safe_load(p.read_text()) or {}))


def _norm(m):
    return ({k: (v.unit, v.dataflow, v.rows, v.cols, v.free) for k, v in m.einsums.items()},
            [(g.name, g.einsums, g.loops, g.stages, dict(g.deferred), g.buffer, g.streamed, dict(g.hold))
             for g in m.groups])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_round_trip_shipped_configs(path):
    cfg = load_config(path)
    data = mapping_to_data(cfg.mapping, cfg.cascade, cfg.arch)
    again = mapping_from_data(yaml.safe_load(yaml.safe_dump(data)), Source("dump"), ("mapping",),
                              cfg.cascade, cfg.arch, cfg.counts)
    assert _norm(again) == _norm(cfg.mapping)


def test_round_trip_defaults_and_holds(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("workload: {cascade: softmax-1pass, ranks: {M: 4096, P: 4096, E: 64, F: 64, P0: 256}}\n"
                 "arch: fusemax\nmapping: {groups: [{name: all, einsums: rest, tiles: {GB: {M: 1024, P1: 1}},"
                 " loop_order: [M, P1], hold: {K: M, V: M}, deferred: {AV: 2}}]}\n")
    cfg = load_config(p)
    data = mapping_to_data(cfg.mapping, cfg.cascade, cfg.arch)
    assert data["groups"][0]["hold"] == {"K": "M", "V": "M"} and data["groups"][0]["deferred"] == {"AV": 2}
    again = mapping_from_data(data, Source("dump"), ("mapping",), cfg.cascade, cfg.arch, cfg.counts)
    assert _norm(again) == _norm(cfg.mapping)
    # every Einsum is spelled out: nothing is left to a default
    assert set(data["einsums"]) == {e.name for e in cfg.cascade.einsums}
    assert all("unit" in d for d in data["einsums"].values())
