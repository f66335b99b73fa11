"""``einarray verilog`` / ``einarray synth``: outputs, JSON descriptions, user errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from einarray.cli import main
from einarray.commands.hw_cmds import parse_hw_params, print_synth_table
from einsum.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _iverilog_parses(path: Path) -> None:
    exe = shutil.which("iverilog")
    if exe is None:
        import os
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("iverilog not found (CI=true: must not skip)")
        pytest.skip("iverilog not installed")
    # -i: vendor primitives (e.g. ECP5 MULT18X18D/DP16KD instantiated by a block for
    # synthesis) are black boxes here; everything else must parse and elaborate
    r = subprocess.run([exe, "-g2012", "-i", "-o", "/dev/null", str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_verilog_compute_unit(tmp_path, capsys):
    out = tmp_path / "cu.v"
    assert main(["verilog", "compute_unit", "--param", "rows=2", "--param", "cols=3",
                 "--param", "gelu=false", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text()
    assert "module compute_unit(" in text
    desc = json.loads(out.with_suffix(".json").read_text())
    assert desc["top"] == "compute_unit" and desc["clock"] == "clk" and desc["reset"] == "rst"
    assert desc["ports"]["i"]["payload"] == "i__payload" and desc["ports"]["i"]["lanes"] == 2
    assert desc["ports"]["o"]["lanes"] == 3 and desc["ports"]["o"]["signed"] is True
    assert desc["params"]["rows"] == 2 and desc["params"]["gelu"] is False
    assert "k_m1" in desc["commands"]["fields"] and desc["commands"]["opcodes"]["qkt"] == 1
    _iverilog_parses(out)


@pytest.mark.parametrize("unit", ["gelu", "softmax", "compute_unit"])
def test_verilog_every_unit_default_params(tmp_path, unit):
    out = tmp_path / f"{unit}.v"
    assert main(["verilog", unit, "-o", str(out)]) == 0
    desc = json.loads(out.with_suffix(".json").read_text())
    assert desc["top"] == unit
    assert {"i", "o"} <= set(desc["ports"])
    for port in ("i", "o"):
        p = desc["ports"][port]
        assert p["payload"] == f"{port}__payload" and p["width"] >= 2
        assert "frac_bits" in p and p["signed"] is True
    assert "latency" in desc and "params" in desc
    assert f"module {unit}(" in out.read_text()
    _iverilog_parses(out)


@pytest.mark.parametrize("argv,msg", [
    (["verilog", "compute_unit", "--param", "depth=3"], "unknown parameter"),
    (["verilog", "compute_unit", "--param", "rows=0"], "rows"),
    (["verilog", "compute_unit", "--param", "rows"], "NAME=VALUE"),
    (["verilog", "compute_unit", "--param", "rows=abc"], "must be an integer"),
    (["verilog", "compute_unit", "--param", "rows=2", "--param", "rows=3"], "twice"),
    (["verilog", "compute_unit", "--param", "max_k=12"], "power of two"),
    (["verilog", "compute_unit", "--param", "dsp=xilinx"], "dsp must be"),
    (["verilog", "gelu", "--param", "width=99"], "width"),
])
def test_verilog_user_errors(tmp_path, capsys, argv, msg):
    out = tmp_path / "x.v"
    assert main(argv + ["-o", str(out)]) == 2
    # one error line (other lines could only be Python warnings from earlier tests' objects)
    errs = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("einarray ")]
    assert len(errs) == 1 and errs[0].startswith("einarray verilog: error:") and msg in errs[0]
    assert not out.exists()


def test_verilog_bad_output_paths(tmp_path, capsys):
    assert main(["verilog", "gelu", "-o", str(tmp_path / "nodir" / "g.v")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["verilog", "gelu", "-o", str(tmp_path / "g.sv")]) == 2
    assert "must end in .v" in capsys.readouterr().err


def test_unknown_unit_and_target_are_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["verilog", "fft", "-o", "x.v"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["synth", "gelu", "--target", "gowin"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_synth_errors_before_running_tools(capsys):
    assert main(["synth", "compute_unit", "--target", "ecp5", "--param", "nope=1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["synth", "compute_unit", "--target", "ecp5", "--freq", "0"]) == 2
    assert "MHz" in capsys.readouterr().err


def test_synth_json_and_table(capsys):
    # a real (small) synthesis, xilinx: synthesis only, so fmax_mhz is null
    wd = REPO / "build" / "test_hw_cmds" / "cu1x1-xilinx"
    args = ["synth", "compute_unit", "--param", "rows=1", "--param", "cols=1",
            "--param", "max_k=4", "--param", "gelu=false", "--target", "xilinx",
            "--workdir", str(wd)]
    assert main(args + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("target", "luts", "ffs", "dsps", "brams", "fmax_mhz"):
        assert key in res
    assert res["target"] == "xilinx" and res["fmax_mhz"] is None
    assert res["dsps"] == 1 and res["luts"] > 0 and res["ffs"] > 0
    print_synth_table(res)  # the table printed without --json
    out = capsys.readouterr().out
    assert "LUTs" in out and "no place-and-route" in out and str(res["luts"]) in out


def test_parse_hw_params():
    assert parse_hw_params(["rows=2", "gelu=false", "x=0x10", "f=1.5", "g=true", "dsp=ecp5"]) == {
        "rows": 2, "gelu": False, "x": 16, "f": 1.5, "g": True, "dsp": "ecp5"}
    with pytest.raises(ConfigError, match="a word"):
        parse_hw_params(["dsp=a b"])
    with pytest.raises(ConfigError):
        parse_hw_params(["=3"])
    with pytest.raises(ConfigError):
        parse_hw_params(["a=inf"])
    with pytest.raises(ConfigError):
        parse_hw_params(["1a=3"])
