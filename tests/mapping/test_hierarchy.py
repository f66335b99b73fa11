"""mapping.hierarchy: loading a hierarchy arch and a per-level nest mapping, and its located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from einarray.cli import main
from einsum.errors import ConfigError
from mapping.components import load_components
from mapping.hierarchy import NestConfig, tile_words
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


def test_tensors_bind_an_einsum_to_the_names_an_arch_keeps(tmp_path):
    """``mapping.tensors`` lets an arch written for a CNN (keeps: Weights / Inputs / Outputs) map
    another Einsum: the keep rules, the bank assignment and a searched mapping use the binding,
    and the counts are those of the same nest under the arch's own names."""
    from mapping.nest_search import mapping_section
    from sim.nest import simulate_nest

    prob = tmp_path / "renamed.yaml"
    prob.write_text((EX / "problems" / "conv1d-oc-ic.yaml").read_text().replace("Weights", "F")
                    .replace("Inputs", "I").replace("Outputs", "O"))
    arch = arch_doc()
    arch["hierarchy"][2].update(keeps=["Weights", "Outputs"],
                                banks={"count": 4, "bandwidth": 1, "assign": {"Weights": 2, "Outputs": 2}})
    same = nest_doc(RF={"temporal": {"P": 16}, "keep": ["Weights", "Outputs"]})
    p0 = tmp_path / "cfg.yaml"
    p0.write_text(yaml.safe_dump({"einsum": str(EX / "problems" / "conv1d-oc-ic.yaml"), "arch": arch,
                                  "mapping": same}, sort_keys=False))
    bound = dict(nest_doc(RF={"temporal": {"P": 16}, "keep": ["F", "O"]}),
                 tensors={"F": "Weights", "I": "Inputs", "O": "Outputs"})
    p1 = tmp_path / "bound.yaml"
    p1.write_text(yaml.safe_dump({"einsum": str(prob), "arch": arch, "mapping": bound}, sort_keys=False))
    a, b = load_config(p0, allow_hierarchy=True), load_config(p1, allow_hierarchy=True)
    assert dict(b.tensors) == {"F": "Weights", "I": "Inputs", "O": "Outputs"} and not a.tensors
    assert b.arch_name("F") == "Weights" and a.arch_name("Weights") == "Weights"
    assert [lm.keep for lm in b.levels] == [("F", "I", "O"), ("F", "I", "O"), ("F", "O")]
    ra, rb = simulate_nest(a), simulate_nest(b)
    rename = {"Weights": "F", "Inputs": "I", "Outputs": "O"}
    assert [{rename[t]: s for t, s in lv.tensors.items()} for lv in ra.levels] == [lv.tensors for lv in rb.levels]
    assert (ra.cycles, ra.energy_pj) == (rb.cycles, rb.energy_pj) and ra.levels[2].limit == "banks"
    assert mapping_section(b)["tensors"] == {"F": "Weights", "I": "Inputs", "O": "Outputs"}
    from sim.nest_text import map_text

    assert map_text(b).endswith("<< Compute >>\ntensors: F as Weights, I as Inputs, O as Outputs")
    assert map_text(a).endswith("<< Compute >>")
    # without the binding, the renamed Einsum's F may not live at RF
    p2 = tmp_path / "unbound.yaml"
    p2.write_text(yaml.safe_dump({"einsum": str(prob), "arch": arch,
                                  "mapping": nest_doc(RF={"temporal": {"P": 16}, "keep": ["F"]})}, sort_keys=False))
    assert "RF may not keep F (its keeps: Weights, Outputs)" in str(err(p2))


def test_pad_runs_the_loops_over_a_larger_size(tmp_path):
    """``mapping.pad: {P: 18}`` counts exactly as the Einsum at P = 18 (zero-padded operands are
    fetched and computed), and the result separates the Einsum's own MACs."""
    from mapping.nest_search import mapping_section
    from sim.nest import simulate_nest
    from sim.nest_text import table_text

    nest = nest_doc(RF={"temporal": {"P": 18}})
    padded = load_config(write(tmp_path, mapping=dict(nest, pad={"P": 18})), allow_hierarchy=True)
    p18 = load_config(write(tmp_path, mapping=nest), ranks={"P": 18}, allow_hierarchy=True)
    a, b = simulate_nest(padded), simulate_nest(p18)
    assert [lv.tensors for lv in a.levels] == [lv.tensors for lv in b.levels]
    assert (a.cycles, a.energy_pj, a.computes) == (b.cycles, b.energy_pj, 32 * 18 * 32 * 3)
    assert a.useful_computes == 32 * 16 * 32 * 3 and a.padding == {"P": (16, 18)}
    assert a.useful_utilization == a.utilization * 16 / 18
    assert "padded (P 16 -> 18): 49,152 of the MACs are the Einsum's (88.89%)" in table_text(a)
    assert a.as_dict()["padding"] == {"P": {"size": 16, "padded": 18}}
    assert mapping_section(padded)["pad"] == {"P": 18}
    from sim.nest_text import map_text

    assert map_text(padded).endswith("<< Compute >>\npadded: P 16 -> 18")
    # a prime size cannot be split: the error says so and names the way out
    prime = load_config(write(tmp_path, mapping=nest_doc(RF={"temporal": {"P": 16}})), allow_hierarchy=True)
    assert prime.useful_computes == prime.computes
    with pytest.raises(ConfigError, match=r"multiply to 16, not its size 17 \(17 is prime.*mapping.pad"):
        load_config(write(tmp_path, mapping=nest_doc(RF={"temporal": {"P": 16}})), ranks={"P": 17},
                    allow_hierarchy=True)


def test_double_buffered_levels_reserve_room_for_the_next_tile(tmp_path):
    """double_buffered: true counts twice each tile a level refills. The RF's tiles (Weights 1,
    Inputs 16, Outputs 16 words over its P loop) all change over GB's loops (C, K, R), so 33
    words become 66 > 64; the GB's tiles move only with DRAM's spatial loop, not in time, so a
    double-buffered GB reserves nothing more."""
    a = arch_doc()
    a["hierarchy"][2]["double_buffered"] = True
    cfg = load_config(write(tmp_path, arch=arch_doc()), allow_hierarchy=True)
    from mapping.hierarchy import level_words, refilled

    rf = cfg.levels[2]
    assert [refilled(cfg.levels, 2, o) for o in cfg.operands] == [True, True, True]
    assert level_words(cfg.levels, 2, cfg.operands, rf.keep, False) == 1 + 16 + 16
    assert level_words(cfg.levels, 2, cfg.operands, rf.keep, True) == 66
    e = err(write(tmp_path, arch=a))
    assert "mapping.nest.RF" in str(e) and "need 66 words (double-buffered: twice each tile it refills)" in str(e)
    # the GB's tiles move only with DRAM's spatial C loop (not in time): kept once
    assert not any(refilled(cfg.levels, 1, o) for o in cfg.operands)
    gb = arch_doc()
    gb["hierarchy"][1]["double_buffered"] = True
    assert load_config(write(tmp_path, arch=gb), allow_hierarchy=True).arch.levels[1].double_buffered
    a2 = arch_doc()
    a2["hierarchy"][1]["double_buffered"] = "yes"
    assert "arch.hierarchy[1].double_buffered: expected true or false" in str(err(write(tmp_path, arch=a2)))
