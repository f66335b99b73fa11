"""hw.synth: one REAL synthesis + place-and-route (ECP5), plus argument errors.

The first YoWASP call on a fresh machine compiles the WebAssembly tools (about two
minutes); later calls use the cache in ~/.cache/YoWASP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from einsum.errors import ConfigError
from hw.synth import TARGETS, synthesize

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "test_synth"


def test_real_ecp5_synthesis_and_pnr_of_a_2x2_compute_unit():
    params = {"rows": 2, "cols": 2, "max_k": 16, "gelu": False}
    r = synthesize("compute_unit", params, "ecp5", WORK / "cu2x2-ecp5", freq_mhz=150)
    for key in ("target", "luts", "ffs", "dsps", "brams", "fmax_mhz"):
        assert key in r
    assert r["target"] == "ecp5" and r["pnr_error"] is None
    assert r["dsps"] == 4                     # one MULT18X18D per MAC (16 x 16 bits)
    assert r["cells"]["MULT18X18D"] == 4
    assert 200 < r["luts"] < 5000 and 300 < r["ffs"] < 5000
    # per-MAC duplicated operand registers survive synthesis (kept on purpose)
    assert r["ffs"] >= 4 * (16 + 16) + 4 * 40
    assert r["fmax_mhz"] is not None and 50 < r["fmax_mhz"] < 600
    assert r["pnr_utilization"]["MULT18X18D"]["used"] == 4
    assert (WORK / "cu2x2-ecp5" / "report.json").exists()


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
    assert TARGETS == ("ecp5", "ice40", "xilinx")
