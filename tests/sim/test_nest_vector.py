"""sim.nest_vector: a cascade's Einsums that are not sums of products on a hierarchy arch's
vector unit (mapping.vector), against hand counts of FuseMax's 3-pass softmax attention."""

from __future__ import annotations

import json

import pytest

from einarray.cli import main
from mapping.config import load_config
from sim.nest_cascade import simulate_cascade_nest

E_DRAM = {"read": 100.0, "write": 100.0, "update": 100.0}
E_BUF = {"read": 2.0, "write": 3.0, "update": 3.0}
VEC = {"max": 0.1, "add": 1.0, "exp": 10.0, "div": 5.0}
CFG = """einsum:
  version: 1
  name: attention-3pass
  ranks: {M: 4, P: 8, E: 2, F: 2}
  inputs: {Q: [M, E], K: [P, E], V: [P, F]}
  outputs: [AV]
  expressions:
    - QK[m,p] = Q[m,e] * K[p,e]
    - GM[m] = max(p) QK[m,p]
    - SN[m,p] = exp(QK[m,p] - GM[m])
    - SD[m] = SN[m,p]
    - A[m,p] = SN[m,p] / SD[m]
    - AV[m,f] = A[m,p] * V[p,f]
arch:
  version: 1
  name: two-level-vector
  clock_hz: 1.0e9
  hierarchy:
    - {name: DRAM, energy: {read: 100.0, write: 100.0, update: 100.0}READBW}
    - {name: Buffer, capacity_words: 4096, energy: {read: 2.0, write: 3.0, update: 3.0}}
  compute: {name: MAC, energy: {compute: 1.0}}
  vector: {name: VU, level: Buffer, lanes: 4, energy: {max: 0.1, add: 1.0, exp: 10.0, div: 5.0}, cycles: {exp: 6}}
mapping:
  version: 1
  einsums:
    QK: {nest: {DRAM: {temporal: {M: 4, P: 8}}, Buffer: {temporal: {E: 2}}}}
    AV: {nest: {DRAM: {temporal: {M: 4, F: 2}}, Buffer: {temporal: {P: 8}}}}
ONCHIP"""


def _load(tmp_path, read_bw: str = "", on_chip: str = "", **subs):
    text = CFG.replace("READBW", read_bw).replace("ONCHIP", on_chip)
    for a, b in subs.items():
        text = text.replace(a, b)
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p, allow_hierarchy=True)


def _vector(res, name):
    return dict(res.einsums)[name]


def test_softmax_on_the_vector_unit_hand_counts(tmp_path):
    """GM: 32 max; SN: 32 subtracts + 32 exps of 6 lane-cycles each; SD: 32 adds; A: 32 divides,
    over 4 lanes. Each reads its inputs from DRAM through the Buffer (DRAM read, Buffer fill,
    Buffer read) and writes its output back (Buffer update, Buffer read, DRAM update)."""
    cn = _load(tmp_path)
    assert [j.einsum for j in cn.vector] == ["GM", "SN", "SD", "A"]
    res = simulate_cascade_nest(cn)
    assert [n for n, _ in res.einsums] == ["QK", "GM", "SN", "SD", "A", "AV"]
    words = {"QK": 32, "GM": 4, "SN": 32, "SD": 4, "A": 32}
    for name, ops, lane_cycles, ins, out in [("GM", {"max": 32}, 32, ["QK"], "GM"),
                                             ("SN", {"add": 32, "exp": 32}, 32 + 32 * 6, ["QK", "GM"], "SN"),
                                             ("SD", {"add": 32}, 32, ["SN"], "SD"),
                                             ("A", {"div": 32}, 32, ["SN", "SD"], "A")]:
        r = _vector(res, name)
        assert r.ops == ops and r.compute_cycles == r.cycles == -(-lane_cycles // 4)
        dram, buf = r.levels
        for t in ins:
            assert (dram.tensors[t].reads, buf.tensors[t].fills, buf.tensors[t].reads) == (words[t],) * 3
        assert (buf.tensors[out].updates, buf.tensors[out].reads, dram.tensors[out].updates) == (words[out],) * 3
        n_in, n_out = sum(words[t] for t in ins), words[out]
        e_ops = sum(n * VEC[a] for a, n in ops.items())
        e_dram = (n_in + n_out) * 100.0
        e_buf = n_in * (3.0 + 2.0) + n_out * (3.0 + 2.0)
        assert r.vector_energy_pj == pytest.approx(e_ops)
        assert r.energy_pj == pytest.approx(e_ops + e_dram + e_buf)
        assert r.bound_by == "the vector unit"
    assert res.cycles == sum(r.cycles for _, r in res.einsums)
    assert res.computes == 2 * 64  # the MACs' only: QK and AV


def test_a_tensor_kept_at_the_units_level_is_not_moved(tmp_path):
    """on_chip: {SN: Buffer}: SN's exps are written into the Buffer and read there by SD and A:
    no DRAM traffic for it, no Buffer fill."""
    res = simulate_cascade_nest(_load(tmp_path, on_chip="  on_chip: {SN: Buffer}\n"))
    sn, sd = _vector(res, "SN"), _vector(res, "SD")
    assert "SN" not in sn.levels[0].tensors and sn.levels[1].tensors["SN"].updates == 32
    assert sn.levels[1].tensors["SN"].reads == 0
    assert "SN" not in sd.levels[0].tensors
    assert (sd.levels[1].tensors["SN"].reads, sd.levels[1].tensors["SN"].fills) == (32, 0)


def test_a_slow_dram_bounds_the_vector_unit(tmp_path):
    """DRAM at a quarter word per cycle: GM's 32 + 4 DRAM words... reads 32 / 0.25 = 128 > 8."""
    r = _vector(simulate_cascade_nest(_load(tmp_path, read_bw=", read_bw: 0.25")), "GM")
    assert (r.compute_cycles, r.cycles, r.bound_by) == (8, 128, "DRAM's bandwidth")


def test_simulate_prints_and_dumps_the_vector_einsums(tmp_path, capsys):
    _load(tmp_path)
    assert main(["simulate", str(tmp_path / "c.yaml")]) == 0
    text = capsys.readouterr().out
    assert "== Einsum SN ==" in text and "SN on VU (1 x 4 lanes): 56 cycles" in text
    assert "on the vector unit: GM, SN, SD, A" in text
    assert main(["simulate", str(tmp_path / "c.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["einsums"]["SN"]["ops"] == {"add": 32, "exp": 32}
    assert out["energy_pj"]["vector"] == pytest.approx(32 * 0.1 + 32 * 1.0 + 32 * 10.0 + 32 * 1.0 + 32 * 5.0)


@pytest.mark.parametrize("subs, where, msg", [
    ({"exp: 10.0, ": ""}, "arch.vector.energy", "SN needs exp on the vector unit VU, which gives no energy for it"),
    ({"  einsums:\n": "  einsums:\n    GM: {unit: VU}\n"}, "mapping.einsums.GM",
     "GM runs on the vector unit VU"),
    ({"level: Buffer, lanes": "level: Attic, lanes"}, "arch.vector.level", "expected the storage level it reads"),
    ({"  vector: {name: VU, level: Buffer, lanes: 4, energy: {max: 0.1, add: 1.0, exp: 10.0, div: 5.0}, "
      "cycles: {exp: 6}}\n": ""}, "mapping.einsums", "an arch with a vector: unit runs what is not a sum of products"),
])
def test_vector_errors_are_located(tmp_path, subs, where, msg):
    from einsum.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        _load(tmp_path, **subs)
    assert msg in str(e.value) and "c.yaml" in str(e.value) and where in str(e.value)


def test_vector_energies_from_the_component_library(tmp_path):
    """An operation's energy may be a library component (pJ), scaled like the MACs' and SRAMs':
    the same figures mapping.components.resolve gives the compute level for that class."""
    import warnings

    from einsum.yamlsrc import Source
    from mapping.components import resolve

    specs = {"max": "{class: comparator, word_bits: 16, node_nm: 16, vdd: 0.8}",
             "add": "{class: fpadd, word_bits: 16, node_nm: 16, vdd: 0.8}",
             "exp": "{class: exp, node_nm: 16, vdd: 0.8}", "div": "{class: div, node_nm: 16, vdd: 0.8}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exp and div state no supply voltage: the library warns
        cn = _load(tmp_path, **{"energy: {max: 0.1, add: 1.0, exp: 10.0, div: 5.0}":
                                "energy: {" + ", ".join(f"{a}: {v}" for a, v in specs.items()) + "}"})
        import yaml
        for a, v in specs.items():
            want = resolve(yaml.safe_load(v), {}, Source("x"), (), "compute")["energy"]["compute"]
            assert cn.arch.vector.energy[a] == pytest.approx(want)
    assert cn.arch.vector.components["exp"] == "exp(node_nm=16, vdd=0.8)"
    assert cn.arch.vector.energy["exp"] == pytest.approx(94.65 * cn.arch.vector.energy["div"] / 36.25)


def test_the_network_to_the_units_carries_each_units_share(tmp_path):
    """Two Buffers (2 units) under a DRAM mesh fed at (0, 0), 1 word per link per cycle: GM's 32
    QK words go 16 to each unit, the far one's 16 over link (0,0)->(1,0): 16 cycles, more than its
    32 max / 8 lanes = 4; 16 word-hops in, GM's 4 words 2 back up, each word-hop 0.5."""
    cn = _load(tmp_path, **{
        "{name: Buffer, capacity_words: 4096,": "{name: Buffer, capacity_words: 4096, mesh: [2, 1],",
        "READBW": "", "compute: {name: MAC,": "compute: {name: MAC, mesh: [2, 1],",
        "energy: {read: 100.0, write: 100.0, update: 100.0}}": "energy: {read: 100.0, write: 100.0, update: 100.0}, "
        "network: {topology: mesh, source: [0, 0], link_words: 1, hop_latency: 1, energy_pj_per_word_hop: 0.5}}"})
    r = _vector(simulate_cascade_nest(cn), "GM")
    (nw,) = r.networks
    assert (r.compute_cycles, r.cycles) == (4, 16)
    assert r.bound_by == "DRAM's network (busiest link (0,0)->(1,0))"
    assert (nw.busiest_words, nw.word_hops, nw.energy_pj) == (16, 16 + 2, pytest.approx(0.5 * 18))
    assert r.levels[1].tensors["QK"].fills == 16  # per Buffer: its half


def test_an_einsum_alone_on_the_vector_unit_needs_no_mapping(tmp_path):
    """A config whose every Einsum runs on the vector unit has nothing to map: no mapping: section."""
    p = tmp_path / "gm.yaml"
    text = CFG.replace("ranks: {M: 4, P: 8, E: 2, F: 2}", "ranks: {M: 4, P: 8}").replace(
        "inputs: {Q: [M, E], K: [P, E], V: [P, F]}", "inputs: {QK: [M, P]}").replace("outputs: [AV]", "outputs: [GM]")
    text = text[:text.index("  expressions:")] + "  expressions:\n    - GM[m] = max(p) QK[m,p]\n" + \
        text[text.index("arch:"):text.index("mapping:")]
    p.write_text(text.replace("READBW", ""))
    res = simulate_cascade_nest(load_config(p, allow_hierarchy=True))
    ((name, r),) = res.einsums
    assert (name, r.ops, r.cycles) == ("GM", {"max": 32}, 8)


def test_every_tile_on_a_cascade_with_vector_einsums(tmp_path, capsys):
    """--every-tile steps the MACs' Einsums' timelines; the vector Einsums (bounds) are unchanged."""
    _load(tmp_path)
    outs = []
    for extra in ([], ["--every-tile"]):
        assert main(["simulate", str(tmp_path / "c.yaml"), "--json"] + extra) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]


def test_the_vector_units_area_is_in_the_arch_area(tmp_path):
    """The MACs' Einsums report the chip's area: with a vector unit, its area too (per unit x the
    instances of its level); an arch that gives none has no total."""
    from sim.nest import simulate_nest

    cn = _load(tmp_path, **{"cycles: {exp: 6}}": "cycles: {exp: 6}, area_um2: 500.0}",
                            "compute: {name: MAC, energy: {compute: 1.0}}":
                            "compute: {name: MAC, energy: {compute: 1.0}, area_um2: 100.0}",
                            "{name: DRAM, energy:": "{name: DRAM, area_um2: 0.0, energy:",
                            "{name: Buffer, capacity_words: 4096,": "{name: Buffer, capacity_words: 4096, area_um2: 2000.0,"})
    r = simulate_nest(cn.configs[0])
    assert (r.vector_area_um2, r.area_um2) == (500.0, 0.0 + 2000.0 + 100.0 + 500.0)
    assert r.as_dict()["area_um2"]["vector"] == 500.0
    r2 = simulate_nest(_load(tmp_path).configs[0])
    assert r2.has_vector and r2.vector_area_um2 is None and r2.area_um2 is None


def test_attention_tiled_on_chip_with_the_softmax_on_the_vector_unit(tmp_path):
    """QK and AV loop M 4 above the Buffer, the scores QK and the weights A stay in the Buffer a
    query row at a time (8 words), the softmax's Einsums run on the unit between: QK and A never
    reach DRAM. Tiling P instead would split GM's max (and SD's sum) over P: refused."""
    from einsum.errors import ConfigError

    subs = {"QK: {nest: {DRAM: {temporal: {M: 4, P: 8}}, Buffer: {temporal: {E: 2}}}}":
            "QK: {nest: {DRAM: {temporal: {M: 4}}, Buffer: {temporal: {P: 8, E: 2}}}}",
            "AV: {nest: {DRAM: {temporal: {M: 4, F: 2}}, Buffer: {temporal: {P: 8}}}}":
            "AV: {nest: {DRAM: {temporal: {M: 4}}, Buffer: {temporal: {F: 2, P: 8}}}}"}
    res = simulate_cascade_nest(_load(tmp_path, on_chip="  on_chip: {QK: Buffer, A: Buffer}\n", **subs))
    for name, r in res.einsums:
        assert "QK" not in r.levels[0].tensors and "A" not in r.levels[0].tensors, name
    assert dict(res.einsums)["QK"].levels[1].tensors["QK"].tile == 8
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, on_chip="  on_chip: {QK: Buffer}\n")  # QK tiled by M and P above the Buffer
    assert "GM (max over P) runs on the vector unit, which would see one tile of P at a time" in str(e.value)


def test_the_tensors_kept_on_chip_must_fit_together(tmp_path):
    """Each Einsum's own tiles fit a 30-word Buffer, but the query row of A (8 words) kept there
    while QK runs does not fit beside QK's Q (2), K (16) and QK (8) tiles: refused, located."""
    from einsum.errors import ConfigError

    subs = {"QK: {nest: {DRAM: {temporal: {M: 4, P: 8}}, Buffer: {temporal: {E: 2}}}}":
            "QK: {nest: {DRAM: {temporal: {M: 4}}, Buffer: {temporal: {P: 8, E: 2}}}}",
            "AV: {nest: {DRAM: {temporal: {M: 4, F: 2}}, Buffer: {temporal: {P: 8}}}}":
            "AV: {nest: {DRAM: {temporal: {M: 4}}, Buffer: {temporal: {F: 2, P: 8}}}}",
            "capacity_words: 4096": "capacity_words: 30"}
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, on_chip="  on_chip: {QK: Buffer, A: Buffer}\n", **subs)
    assert "mapping.on_chip" in str(e.value)
    assert ("while QK runs, Buffer holds its own tiles (26 words) and the other tensors kept there (A: 8 words): "
            "more than its capacity of 30") in str(e.value)


def test_a_vector_unit_per_instance_takes_its_part_of_a_kept_tensor(tmp_path):
    """Two Buffers, one unit each: QK and A kept there split by M over both (spatial X above),
    each unit on its half; split over one of the two, the units could not each take their part:
    refused."""
    from einsum.errors import ConfigError

    two = {"{name: Buffer, capacity_words: 4096,": "{name: Buffer, capacity_words: 4096, mesh: [2, 1],",
           "compute: {name: MAC,": "compute: {name: MAC, mesh: [2, 1],"}
    spread = {"QK: {nest: {DRAM: {temporal: {M: 4, P: 8}}, Buffer: {temporal: {E: 2}}}}":
              "QK: {nest: {DRAM: {temporal: {M: 2}, spatial: {X: {M: 2}}}, Buffer: {temporal: {P: 8, E: 2}}}}",
              "AV: {nest: {DRAM: {temporal: {M: 4, F: 2}}, Buffer: {temporal: {P: 8}}}}":
              "AV: {nest: {DRAM: {temporal: {M: 2}, spatial: {X: {M: 2}}}, Buffer: {temporal: {F: 2, P: 8}}}}"}
    res = simulate_cascade_nest(_load(tmp_path, on_chip="  on_chip: {QK: Buffer, A: Buffer}\n", **two, **spread))
    gm = _vector(res, "GM")
    assert gm.units == 2 and gm.compute_cycles == 32 // (4 * 2)
    assert "QK" not in gm.levels[0].tensors and gm.levels[1].tensors["QK"].reads == 16  # each unit its half
    alone = {k: v.replace("temporal: {M: 2}, spatial: {X: {M: 2}}", "temporal: {M: 4}") for k, v in spread.items()}
    with pytest.raises(ConfigError, match="runs on the vector unit's 2 instances, each on its part, but QK is spread "
                                          "over 1 of them"):
        _load(tmp_path, on_chip="  on_chip: {QK: Buffer, A: Buffer}\n", **two, **alone)
