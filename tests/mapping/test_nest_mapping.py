"""mapping.nest_mapping: what a mapping adds to a hierarchy arch's loop nest: the tensor
binding, padding and double-buffered capacities (the nest's loading and located errors are
tests/mapping/test_hierarchy.py's; cascades of Einsums are tests/sim/test_nest_cascade.py's)."""

from __future__ import annotations

import pytest
import yaml

from einsum.errors import ConfigError
from mapping.config import load_config
from test_hierarchy import EX, arch_doc, err, nest_doc, write


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
    from mapping.nest_mapping import level_words, refilled

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
