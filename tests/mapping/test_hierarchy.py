"""mapping.hierarchy: loading a hierarchy arch and a per-level nest mapping, and its located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from einarray.cli import main
from einsum.errors import ConfigError
from mapping.components import load_components
from mapping.nest_mapping import NestConfig, tile_words
from mapping.config import load_config

EX = Path(__file__).resolve().parents[2] / "examples" / "timeloop"


def arch_doc(**over):
    doc = {"version": 1, "name": "t", "clock_hz": 1e9,
           "hierarchy": [{"name": "DRAM", "component": "dram-256bit-40nm"},
                         {"name": "GB", "component": "sram-32768x64-40nm", "mesh": [4, 1]},
                         {"name": "RF", "component": "regfile-64x8-40nm", "capacity_words": 64, "mesh": [4, 1]}],
           "compute": {"name": "MAC", "component": "intmac-8bit-40nm", "mesh": [4, 1]}}
    doc.update(over)
    return doc


def nest_doc(**levels):
    nest = {"DRAM": {"spatial": {"X": {"C": 4}}}, "GB": {"temporal": {"C": 8, "K": 32, "R": 3}},
            "RF": {"temporal": {"P": 16}}}
    nest.update(levels)
    return {"version": 1, "nest": nest}


def write(tmp_path, arch=None, mapping=None, problem="conv1d-oc-ic"):
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump({"einsum": str(EX / "problems" / f"{problem}.yaml"),
                                 "arch": arch or arch_doc(), "mapping": mapping or nest_doc()}, sort_keys=False))
    return p


def err(path) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_config(path, allow_hierarchy=True)
    return e.value


def test_loads_arch_components_and_nest(tmp_path):
    cfg = load_config(write(tmp_path), allow_hierarchy=True)
    assert isinstance(cfg, NestConfig)
    gb = cfg.arch.levels[1]
    assert (gb.instances, gb.block_size, gb.capacity_words) == (4, 8, 262144)
    assert dict(gb.energy) == {"read": 43.353054, "write": 30.878292, "update": 30.878292, "leak": 0.007972}
    assert cfg.arch.compute.energy_pj == 0.845 and cfg.arch.compute.area_um2 == 332.25
    assert cfg.arch.fanout(0) == (4, 1) and cfg.arch.fanout(1) == (1, 1)
    assert [lm.temporal for lm in cfg.levels] == [(), (("C", 8), ("K", 32), ("R", 3)), (("P", 16),)]
    assert cfg.ranks == {"K": 32, "P": 16, "C": 32, "R": 3}
    ins = next(o for o in cfg.operands if o.name == "Inputs")
    assert ins.terms == ((("C", 1),), (("P", 1), ("R", 1))) and not ins.is_output
    # the tile of Inputs at GB: 8 channels x (16 + 3 - 1) positions
    assert tile_words(cfg.levels, 1, ins) == 8 * 18


def test_level_keys_override_the_component(tmp_path):
    a = arch_doc()
    a["hierarchy"][2]["energy"] = {"read": 1.0}
    cfg = load_config(write(tmp_path, arch=a), allow_hierarchy=True)
    assert dict(cfg.arch.levels[2].energy) == {"read": 1.0, "write": 0.42564, "update": 0.42564, "leak": 0.000861}


def test_every_component_has_a_citation_comment():
    text = (Path(__file__).resolve().parents[2] / "mapping" / "components.yaml").read_text()
    for name in load_components():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{name}:"))
        assert "[TL24]" in line or "[TL20]" in line or "[FM]" in line, name


@pytest.mark.parametrize("mutate, where, msg", [
    (lambda a, m: m["nest"]["GB"]["temporal"].update(C=4), "mapping.nest",
     "the factors of rank C multiply to 16, not its size 32"),
    (lambda a, m: m["nest"]["DRAM"]["spatial"]["X"].update(C=8), "mapping.nest.DRAM.spatial.X",
     "spatial factors 8 exceed the fan-out of DRAM along X (4)"),
    (lambda a, m: m["nest"]["GB"].update(spatial={"Y": {"K": 2}}), "mapping.nest.GB.spatial.Y",
     "spatial factors 2 exceed the fan-out of GB along Y (1)"),
    (lambda a, m: m["nest"]["RF"].update(temporal={"P": 16, "K": 4}), "mapping.nest",
     "the factors of rank K multiply to 128, not its size 32"),
    (lambda a, m: (m["nest"]["GB"]["temporal"].update(K=8), m["nest"]["RF"]["temporal"].update(K=4)),
     "mapping.nest.RF", "the tiles kept at RF need 84 words, more than its capacity of 64"),
    (lambda a, m: m["nest"]["DRAM"].update(bypass=["Inputs"]), "mapping.nest.DRAM",
     "the outermost level DRAM must keep every tensor (missing: Inputs)"),
    (lambda a, m: (a["hierarchy"][2].update(keeps=["Weights"]), m["nest"]["RF"].update(keep=["Inputs"])),
     "mapping.nest.RF.keep", "RF may not keep Inputs (its keeps: Weights)"),
    (lambda a, m: m["nest"]["RF"].update(keep=["Inputs"], bypass=["Inputs"]), "mapping.nest.RF.bypass",
     "Inputs is both kept and bypassed at RF"),
    (lambda a, m: m["nest"]["GB"]["temporal"].update(Q=1), "mapping.nest.GB.temporal.Q",
     "'Q' is not a rank of the Einsum"),
    (lambda a, m: m["nest"].update(SRAM={}), "mapping.nest.SRAM", "unknown key 'SRAM'"),
    (lambda a, m: m["nest"]["GB"].update(order=["K", "C"]), "mapping.nest.GB.order",
     "expected the temporal ranks in some order"),
    (lambda a, m: a["hierarchy"][1].update(component="sram-nope"), "arch.hierarchy[1].component",
     "unknown component 'sram-nope'"),
    (lambda a, m: a["hierarchy"][2].update(mesh=[6, 1]), "arch.hierarchy[2].mesh",
     "mesh [6, 1] is not a multiple of the enclosing level's [4, 1]"),
    (lambda a, m: a["hierarchy"][2].pop("capacity_words"), "arch.hierarchy[2]",
     "level 'RF' needs capacity_words"),
    (lambda a, m: a["compute"].pop("component"), "arch.compute.energy",
     "missing the MAC energy 'compute'"),
    (lambda a, m: a["hierarchy"][1].update(read_bw=0), "arch.hierarchy[1].read_bw", "expected a bandwidth > 0"),
    (lambda a, m: m.update(counting={"output_first_fill": "yes"}), "mapping.counting.output_first_fill",
     "expected true or false"),
    (lambda a, m: a.update(energy_unit=""), "arch.energy_unit", "expected the name of the energies' unit"),
    (lambda a, m: m.update(tensors={"X": "Inputs"}), "mapping.tensors.X", "'X' is not a tensor of the Einsum"),
    (lambda a, m: m.update(pad={"Z": 4}), "mapping.pad.Z", "'Z' is not a rank of the Einsum"),
    (lambda a, m: m.update(pad={"P": 15}), "mapping.pad.P", "expected a size >= the rank's 16, got 15"),
    (lambda a, m: (a["hierarchy"][1].update(keeps=["Weights", "Inputs"]), a["hierarchy"][2].update(keeps=["Weights"]),
                   m.update(tensors={"Inputs": "Ifmap"})),
     "mapping.tensors.Inputs", "expected a tensor name the arch's levels keep (Inputs, Weights), got 'Ifmap'"),
    (lambda a, m: m.update(tensors={"Inputs": "Weights"}), "mapping.tensors",
     "two tensors of the Einsum are bound to 'Weights': Weights, Inputs"),
    (lambda a, m: (a["hierarchy"][1].update(keeps=["Weights", "Inputs", "Outputs"]),
                   a["hierarchy"][2].update(keeps=["Weights"]), m.update(tensors={"Inputs": "Weights",
                                                                                  "Weights": "Inputs"}),
                   m["nest"]["RF"].update(keep=["Weights"])),
     "mapping.nest.RF.keep", "RF may not keep Weights (bound to Inputs) (its keeps: Weights)"),
])
def test_located_errors(tmp_path, mutate, where, msg):
    a, m = arch_doc(), nest_doc()
    mutate(a, m)
    e = err(write(tmp_path, arch=a, mapping=m))
    assert e.file.endswith("cfg.yaml") and e.line is not None
    assert where in str(e) and msg in str(e), str(e)


def test_einsum_must_be_one_sum_of_products(tmp_path):
    e = err(write(tmp_path, problem="../../../einsum/library/softmax-3pass"))
    assert "mapping.nest: cascade 'softmax-3pass' has 6 Einsums" in str(e) and "map each under einsums:" in str(e)
    p = tmp_path / "relu.yaml"
    p.write_text("einsum:\n  version: 1\n  name: r\n  ranks: {M: 4}\n  inputs: {X: [M]}\n  outputs: [Y]\n"
                 "  expressions:\n    - Y[m] = relu(X[m])\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"einsum": str(p), "arch": arch_doc(),
                                   "mapping": {"version": 1, "nest": {"DRAM": {"temporal": {"M": 4}}}}}))
    e = err(cfg)
    assert "a product of tensors; relu(X[m]) is not a tensor factor" in str(e)
    assert e.file == str(p) and e.ypath == ("einsum", "expressions", 0)


def test_other_commands_refuse_a_hierarchy_arch(tmp_path, capsys):
    p = write(tmp_path)
    with pytest.raises(ConfigError, match=r"arch\.hierarchy: a memory-hierarchy arch"):
        load_config(p)
    assert main(["run", str(p), "-o", str(tmp_path / "out")]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("einarray run: error: ") and "cfg.yaml" in err_lines[0]
    assert not (tmp_path / "out").exists()


def test_simulate_reports_a_bad_mapping_in_one_line(tmp_path, capsys):
    m = nest_doc()
    m["nest"]["GB"]["temporal"].update(C=4)
    assert main(["simulate", str(write(tmp_path, mapping=m))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "mapping.nest: the factors of rank C multiply to 16" in lines[0]
