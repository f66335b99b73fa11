"""sim.nest_cascade: a cascade of several sum-of-products Einsums on a memory hierarchy, each
under its own nest (``mapping.einsums``), run one after another. Each Einsum's counts are
exactly those of a config holding that Einsum alone with the same nest; the totals are sums;
the loader's errors are located; ``einarray search`` searches each Einsum and prints a
mapping that loads back to what it found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from einarray.cli import main
from einsum.errors import ConfigError
from mapping.config import load_config
from mapping.nest_mapping import CascadeNest
from sim.nest import simulate_nest
from sim.nest_cascade import simulate_cascade_nest

ROOT = Path(__file__).resolve().parents[2]
ARCH = str(ROOT / "examples" / "timeloop" / "arch" / "3level.yaml")
RANKS = {"M": 64, "K": 128, "R": 16, "N": 96}
H_NEST = {"MainMemory": {"temporal": {"M": 2, "K": 2}},
          "GlobalBuffer": {"temporal": {"K": 4, "R": 8, "M": 4}, "keep": ["X", "H"]},
          "RegisterFile": {"temporal": {"M": 8, "R": 2, "K": 16}, "keep": ["A", "H"]}}
Y_NEST = {"MainMemory": {"temporal": {"N": 4}}, "GlobalBuffer": {"temporal": {"N": 4, "R": 4, "M": 32}, "keep": ["H", "Y"]},
          "RegisterFile": {"temporal": {"M": 2, "N": 6, "R": 4}}}


def _einsum(path: Path, name: str, inputs: dict, outputs: list, exprs: list) -> Path:
    path.write_text(yaml.safe_dump({"einsum": {"version": 1, "name": name, "ranks": RANKS, "inputs": inputs,
                                               "outputs": outputs, "expressions": exprs}}, sort_keys=False))
    return path


@pytest.fixture
def files(tmp_path):
    low = _einsum(tmp_path / "lowrank.yaml", "lowrank", {"X": ["M", "K"], "A": ["K", "R"], "B": ["R", "N"]}, ["Y"],
                  ["H[m, r] = X[m, k] * A[k, r]", "Y[m, n] = H[m, r] * B[r, n]"])
    h = _einsum(tmp_path / "h.yaml", "h", {"X": ["M", "K"], "A": ["K", "R"]}, ["H"], ["H[m, r] = X[m, k] * A[k, r]"])
    y = _einsum(tmp_path / "y.yaml", "y", {"H": ["M", "R"], "B": ["R", "N"]}, ["Y"], ["Y[m, n] = H[m, r] * B[r, n]"])
    return tmp_path, low, h, y


def _cfg(tmp_path: Path, einsum: Path, mapping: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump({"einsum": str(einsum), "arch": ARCH, "mapping": mapping}, sort_keys=False))
    return p


def test_each_einsum_counts_as_it_would_alone(files):
    tmp, low, h, y = files
    cn = load_config(_cfg(tmp, low, {"version": 1, "einsums": {"H": {"nest": H_NEST}, "Y": {"nest": Y_NEST}}}),
                     allow_hierarchy=True)
    assert isinstance(cn, CascadeNest) and [c.einsum.name for c in cn.configs] == ["H", "Y"]
    res = simulate_cascade_nest(cn)
    alone = [simulate_nest(load_config(_cfg(tmp, f, {"version": 1, "nest": n}, f"{f.stem}-cfg.yaml"),
                                       allow_hierarchy=True)) for f, n in ((h, H_NEST), (y, Y_NEST))]
    for (name, r), a in zip(res.einsums, alone):
        assert [lv.tensors for lv in r.levels] == [lv.tensors for lv in a.levels], name
        assert (r.cycles, r.energy_pj, r.computes) == (a.cycles, a.energy_pj, a.computes)
        assert r.workload == f"lowrank.{name}"
    assert res.cycles == alone[0].cycles + alone[1].cycles
    assert res.computes == 64 * 128 * 16 + 64 * 16 * 96
    assert res.energy_pj == pytest.approx(alone[0].energy_pj + alone[1].energy_pj, rel=1e-15)
    # the intermediate H: written to the outermost level whole by H, read from it by Y
    mm_h = dict(res.einsums)["H"].levels[0].tensors["H"]
    mm_y = dict(res.einsums)["Y"].levels[0].tensors["H"]
    assert mm_h.updates == 64 * 16 and mm_y.reads >= 64 * 16
    d = res.as_dict()
    assert d["cycles"] == res.cycles and set(d["einsums"]) == {"H", "Y"}
    assert d["energy_pj"]["total"] == pytest.approx(sum(v for v in d["energy_pj"]["levels"].values())
                                                    + d["energy_pj"]["compute"] + d["energy_pj"]["networks"])


@pytest.mark.parametrize("mapping,where,msg", [
    ({"version": 1, "nest": H_NEST}, "mapping.nest", "cascade 'lowrank' has 2 Einsums (H, Y): map each under einsums"),
    ({"version": 1, "einsums": {"H": {"nest": H_NEST}}}, "mapping.einsums", "no mapping for Einsum(s) Y"),
    ({"version": 1, "einsums": {"H": {"nest": H_NEST}, "Y": {"nest": Y_NEST}, "Z": {}}}, "mapping.einsums.Z",
     "unknown key 'Z'"),
    ({"version": 1, "einsums": {"H": {"nest": H_NEST}, "Y": {"nest": {**Y_NEST, "MainMemory": {}}}}},
     "mapping.einsums.Y.nest", "the factors of rank N multiply to 24, not its size 96"),
])
def test_located_errors(files, mapping, where, msg):
    tmp, low, _, _ = files
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(tmp, low, mapping), allow_hierarchy=True)
    assert e.value.line is not None and where in str(e.value) and msg in str(e.value), str(e.value)


def test_one_einsum_keeps_nest(files):
    tmp, _, h, _ = files
    with pytest.raises(ConfigError, match=r"mapping.einsums: a cascade of one Einsum maps it with 'nest:'"):
        load_config(_cfg(tmp, h, {"version": 1, "einsums": {"H": {"nest": H_NEST}}}), allow_hierarchy=True)


def test_simulate_and_search_commands(files, capsys):
    tmp, low, _, _ = files
    p = _cfg(tmp, low, {"version": 1, "einsums": {"H": {"nest": H_NEST}, "Y": {"nest": Y_NEST}}})
    assert main(["simulate", str(p), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["cycles"] == 131072 + 98304 and set(d["einsums"]) == {"H", "Y"}
    assert main(["simulate", str(p), "--show-mapping"]) == 0
    out = capsys.readouterr().out
    assert "== Einsum H ==" in out and "2 Einsums one after another" in out and "<< Compute >>" in out
    assert main(["search", str(p), "--budget", "40", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert set(s["einsums"]) == {"H", "Y"} and all(e["score"] <= e["given_score"] for e in s["einsums"].values())
    assert main(["search", str(p), "--budget", "40", "--format", "csv"]) == 0  # a block per Einsum
    cap = capsys.readouterr()
    assert cap.out.count("per level and tensor") == 2 and "mapping:" in cap.err
    # the printed mapping loads back to the searched cascade
    back = tmp / "found.yaml"
    back.write_text(f"einsum: {low}\narch: {ARCH}\n" + s["mapping_yaml"])
    again = simulate_cascade_nest(load_config(back, allow_hierarchy=True))
    assert again.as_dict() == s["result"]


# H stays in the GlobalBuffer between the Einsums: its ranks' loops (M, R) at that level or inside
H_FUSED = {"MainMemory": {"temporal": {"K": 2}},
           "GlobalBuffer": {"temporal": {"K": 4, "R": 8, "M": 8}, "keep": ["X", "H"]},
           "RegisterFile": {"temporal": {"M": 8, "R": 2, "K": 16}, "keep": ["A", "H"]}}


def test_on_chip_keeps_an_intermediate_out_of_the_outermost_level(files):
    """Fused: the counts are the unfused ones but for H, which the MainMemory never sees (no
    write by H, no read by Y) and which the consumer finds in the GlobalBuffer (no fill)."""
    tmp, low, _, _ = files
    unf = {"version": 1, "einsums": {"H": {"nest": H_FUSED}, "Y": {"nest": Y_NEST}}}
    a = simulate_cascade_nest(load_config(_cfg(tmp, low, unf, "u.yaml"), allow_hierarchy=True))
    cn = load_config(_cfg(tmp, low, {**unf, "on_chip": {"H": "GlobalBuffer"}}, "f.yaml"), allow_hierarchy=True)
    assert dict(cn.on_chip) == {"H": "GlobalBuffer"} and [c.root("H") for c in cn.configs] == [1, 1]
    b = simulate_cascade_nest(cn)
    saved = 0.0
    for (name, ra), (_, rb) in zip(a.einsums, b.einsums):
        for la, lb in zip(ra.levels, rb.levels):
            for t, sa in la.tensors.items():
                if t != "H":
                    assert lb.tensors[t] == sa, (name, la.name, t)
                elif la.name == "MainMemory":
                    assert t not in lb.tensors
                    saved += sa.energy_pj
                elif name == "Y" and la.name == "GlobalBuffer":  # found there, not filled
                    sb = lb.tensors[t]
                    assert (sb.fills, sb.reads) == (0, sa.reads) and sa.fills == 64 * 16
                    saved += sa.energy_pj - sb.energy_pj
                else:
                    assert lb.tensors[t] == sa, (name, la.name, t)
    # the unfused cascade wrote H (1,024 words) once and read it back once
    h_mm = [dict(a.einsums)[n].levels[0].tensors["H"] for n in ("H", "Y")]
    assert (h_mm[0].updates, h_mm[1].reads) == (64 * 16, 64 * 16)
    assert b.cycles == a.cycles and b.energy_pj == pytest.approx(a.energy_pj - saved, rel=1e-12)


@pytest.mark.parametrize("over,where,msg", [
    ({"on_chip": {"Y": "GlobalBuffer"}}, "mapping.on_chip.Y", "'Y' is not an intermediate of the cascade"),
    ({"on_chip": {"H": "MainMemory"}}, "mapping.on_chip.H", "expected an on-chip level (GlobalBuffer, RegisterFile)"),
    ({"on_chip": {"H": "GlobalBuffer"}, "einsums": {"H": {"nest": H_NEST}, "Y": {"nest": Y_NEST}}},
     "mapping.einsums.H.nest.MainMemory", "H stays in GlobalBuffer tile by tile (the loops above GlobalBuffer tile "
     "it), so they may only tile H's ranks (M, R), but MainMemory's loop over K (2) in Einsum H would revisit its tiles"),
    ({"on_chip": {"H": "GlobalBuffer"}, "einsums": {"H": {"nest": H_FUSED}, "Y": {"nest": "Y_TILED"}}},
     "mapping.einsums.Y.nest", "every Einsum that writes or reads it must tile it alike above GlobalBuffer: H has "
     "loops none, Y has M 2"),
])
def test_on_chip_errors_are_located(files, over, where, msg):
    tmp, low, _, _ = files
    if over.get("einsums", {}).get("Y", {}).get("nest") == "Y_TILED":  # defined below
        over = {**over, "einsums": {**over["einsums"], "Y": {"nest": Y_TILED}}}
    m = {"version": 1, "einsums": {"H": {"nest": H_FUSED}, "Y": {"nest": Y_NEST}}, **over}
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(tmp, low, m), allow_hierarchy=True)
    assert e.value.line is not None and where in str(e.value) and msg in str(e.value), str(e.value)


def _two_buffers(tmp, low, h_nest, y_nest):
    arch = yaml.safe_load((ROOT / "examples" / "timeloop" / "arch" / "3level.yaml").read_text())["arch"]
    arch["hierarchy"][1]["mesh"] = [2, 1]
    arch["hierarchy"][2]["mesh"] = [2, 1]
    arch["compute"]["mesh"] = [2, 1]
    p = tmp / "two.yaml"
    p.write_text(yaml.safe_dump({"einsum": str(low), "arch": arch, "mapping": {
        "version": 1, "einsums": {"H": {"nest": h_nest}, "Y": {"nest": y_nest}},
        "on_chip": {"H": "GlobalBuffer"}}}, sort_keys=False))
    return p


def test_on_chip_over_several_instances_is_partitioned_alike(files):
    """Two GlobalBuffers: H kept in them split by M over the two (spatial X above them, alike in
    both Einsums), each holding its half: H never reaches MainMemory, and each Einsum counts as
    the point-set oracle says. Whole H with the Einsum spread over the two by another rank (each
    would hold a partial sum) is refused."""
    from sim.nest import nest_counts
    from tests.sim.nest_oracle import oracle_counts

    tmp, low, _, _ = files
    h = {**H_TILED, "MainMemory": {"spatial": {"X": {"M": 2}}}}
    y = {**Y_TILED, "MainMemory": {"spatial": {"X": {"M": 2}}}}
    cn = load_config(_two_buffers(tmp, low, h, y), allow_hierarchy=True)
    for cfg in cn.configs:
        assert nest_counts(cfg) == oracle_counts(cfg), cfg.einsum.name
    res = simulate_cascade_nest(cn)
    for _, r in res.einsums:
        assert "H" not in r.levels[0].tensors and r.levels[1].utilized == 2
    h_whole = {**H_FUSED, "MainMemory": {"temporal": {"K": 2}}}
    y_spread = {**Y_NEST, "MainMemory": {"temporal": {"N": 2}, "spatial": {"X": {"N": 2}}}}
    with pytest.raises(ConfigError, match=r"H stays whole in GlobalBuffer, but Y spreads over its instances by N 2"):
        load_config(_two_buffers(tmp, low, h_whole, y_spread), allow_hierarchy=True)


def test_search_keeps_a_fused_intermediate_on_chip(files, capsys):
    """The search never moves H out of its level nor loops over its ranks above it; the
    mapping it prints (with on_chip) loads back to what it found."""
    tmp, low, _, _ = files
    p = _cfg(tmp, low, {"version": 1, "einsums": {"H": {"nest": H_FUSED}, "Y": {"nest": Y_NEST}},
                        "on_chip": {"H": "GlobalBuffer"}})
    assert main(["search", str(p), "--budget", "80", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["mapping"]["on_chip"] == {"H": "GlobalBuffer"} and "on_chip: {H: GlobalBuffer}" in s["mapping_yaml"]
    back = tmp / "found.yaml"
    back.write_text(f"einsum: {low}\narch: {ARCH}\n" + s["mapping_yaml"])
    cn = load_config(back, allow_hierarchy=True)
    again = simulate_cascade_nest(cn)
    assert again.as_dict() == s["result"] and again.on_chip == {"H": "GlobalBuffer"}
    for c in cn.configs:
        assert "H" not in c.levels[0].keep and "H" in c.levels[1].keep
        assert not [r for r, f in c.levels[0].temporal if r in ("M", "R") and f > 1]


def test_the_fused_lowrank_example_saves_exactly_h_through_dram(tmp_path):
    """examples/eyeriss/lowrank.yaml against the same nests without on_chip: the difference is
    H's DRAM write (by H) and read (by Y), 32,768 words each at the DRAM's 200 MAC-equivalents
    a word, and Y's fill of H in the global buffer (32,768 words at its 6)."""
    ex = ROOT / "examples" / "eyeriss" / "lowrank.yaml"
    fused = simulate_cascade_nest(load_config(ex, allow_hierarchy=True))
    doc = yaml.safe_load(ex.read_text())
    doc["workload"]["cascade"] = str(ex.parent / doc["workload"]["cascade"])
    del doc["mapping"]["on_chip"]
    (tmp_path / "u.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    unf = simulate_cascade_nest(load_config(tmp_path / "u.yaml", allow_hierarchy=True))
    words = 512 * 64
    assert (fused.cycles, fused.energy_pj) == (524288, 382156800.0)
    assert unf.energy_pj - fused.energy_pj == 2 * words * 200 + words * 6
    assert fused.on_chip == {"H": "GlobalBuffer"} and unf.energy_pj == 395460608.0


H_TILED = {"MainMemory": {"temporal": {"M": 2}},
           "GlobalBuffer": {"temporal": {"K": 8, "R": 8, "M": 4}, "keep": ["X", "H"]},
           "RegisterFile": {"temporal": {"M": 8, "R": 2, "K": 16}, "keep": ["A", "H"]}}
Y_TILED = {"MainMemory": {"temporal": {"M": 2}},
           "GlobalBuffer": {"temporal": {"N": 16, "R": 4, "M": 16}, "keep": ["H", "Y"]},
           "RegisterFile": {"temporal": {"M": 2, "N": 6, "R": 4}}}


def test_an_intermediate_tiled_on_chip(files):
    """H kept in the GlobalBuffer tile by tile: both Einsums loop M 2 above it, so half of H (32 x
    16 = 512 words) lives there at a time. Each Einsum counts as sim.nest's point-set oracle says
    with H's chain starting at the GlobalBuffer; H never reaches MainMemory; against the same nests
    unfused, exactly H's MainMemory traffic (1,024 words written, 1,024 read) and the consumer's
    fills of it are saved."""
    from sim.nest import nest_counts
    from tests.sim.nest_oracle import oracle_counts

    tmp, low, _, _ = files
    m = {"version": 1, "einsums": {"H": {"nest": H_TILED}, "Y": {"nest": Y_TILED}}}
    fused = load_config(_cfg(tmp, low, {**m, "on_chip": {"H": "GlobalBuffer"}}), allow_hierarchy=True)
    plain = load_config(_cfg(tmp, low, m), allow_hierarchy=True)
    for cfg in fused.configs:
        assert nest_counts(cfg) == oracle_counts(cfg), cfg.einsum.name
    a, b = simulate_cascade_nest(plain), simulate_cascade_nest(fused)
    for name in ("H", "Y"):
        rb = dict(b.einsums)[name]
        assert "H" not in rb.levels[0].tensors
        assert rb.levels[1].tensors["H"].tile == 32 * 16
    h_mm = [dict(a.einsums)[n].levels[0].tensors["H"] for n in ("H", "Y")]
    assert (h_mm[0].updates, h_mm[1].reads) == (64 * 16, 64 * 16)
    y_gb = dict(b.einsums)["Y"].levels[1].tensors["H"]
    assert y_gb.fills == 0 and dict(a.einsums)["Y"].levels[1].tensors["H"].fills == 64 * 16
    assert b.energy_pj < a.energy_pj


def test_search_keeps_a_tiled_intermediates_tiling(files, capsys):
    """With H kept on chip a half at a time (both Einsums loop M 2 above the GlobalBuffer), the
    search varies everything but those loops: the mapping it prints loads back, every Einsum
    still tiling H by M 2 above the GlobalBuffer."""
    tmp, low, _, _ = files
    p = _cfg(tmp, low, {"version": 1, "einsums": {"H": {"nest": H_TILED}, "Y": {"nest": Y_TILED}},
                        "on_chip": {"H": "GlobalBuffer"}})
    assert main(["search", str(p), "--budget", "80", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    back = tmp / "found.yaml"
    back.write_text(f"einsum: {low}\narch: {ARCH}\n" + s["mapping_yaml"])
    cn = load_config(back, allow_hierarchy=True)
    assert simulate_cascade_nest(cn).as_dict() == s["result"]
    for c in cn.configs:
        assert [(r, f) for r, f in c.levels[0].temporal if r in ("M", "R") and f > 1] == [("M", 2)]
