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
from hw.synth import (CLOCK_TARGET_MHZ, ECP5_PARTS, TARGETS, ecp5_part, resolve_params,
                      synthesize, target_params)

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
