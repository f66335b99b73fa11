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


#: names of Lattice ECP5 primitives a block instantiates with dsp="ecp5"
ECP5_PRIMITIVES = ("MULT18X18D", "ALU54B", "DP16KD", "PDPW16KD", "PFUMX", "L6MUX21", "TRELLIS")


def _iverilog(path: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = shutil.which("iverilog")
    if exe is None:
        import os
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("iverilog not found (CI=true: must not skip)")
        pytest.skip("iverilog not installed")
    return subprocess.run([exe, "-g2012", *extra, "-o", "/dev/null", str(path)],
                          capture_output=True, text=True)


def _iverilog_compiles(path: Path) -> None:
    """Icarus compiles and elaborates the file on its own: zero errors, no missing modules."""
    r = _iverilog(path)
    assert r.returncode == 0 and "error" not in r.stderr.lower(), r.stderr[-2000:]


def _iverilog_parses(path: Path) -> None:
    # -i: vendor primitives (e.g. ECP5 MULT18X18D/DP16KD instantiated with dsp=ecp5) are
    # black boxes here; everything else must parse and elaborate
    r = _iverilog(path, "-i")
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


def test_verilog_attention_engine(tmp_path):
    out = tmp_path / "engine.v"
    assert main(["verilog", "attention_engine", "-o", str(out)]) == 0
    desc = json.loads(out.with_suffix(".json").read_text())
    assert desc["top"] == "attention_engine" and set(desc["ports"]) == set("qkvo")
    assert desc["params"]["rows"] == desc["params"]["cols"] == 2
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
    text = out.read_text()
    assert f"module {unit}(" in text
    # portable by default: no vendor primitive, and Icarus compiles it with zero errors
    assert desc["params"]["dsp"] == "generic"
    assert [p for p in ECP5_PRIMITIVES if p in text] == []
    _iverilog_compiles(out)


@pytest.mark.parametrize("unit,prims", [("gelu", ["MULT18X18D"]),
                                        ("softmax", ["MULT18X18D", "DP16KD", "L6MUX21"])])
def test_verilog_explicit_ecp5_primitives_are_printed(tmp_path, capsys, unit, prims):
    out = tmp_path / f"{unit}.v"
    assert main(["verilog", unit, "--param", "dsp=ecp5", "-o", str(out)]) == 0
    msg = capsys.readouterr().out
    assert "parameters from --param: dsp=ecp5" in msg and "Lattice ECP5 primitives" in msg
    text = out.read_text()
    assert all(p in text for p in prims)
    _iverilog_parses(out)


def test_verilog_default_message_says_portable(tmp_path, capsys):
    assert main(["verilog", "gelu", "-o", str(tmp_path / "g.v")]) == 0
    assert "block defaults; portable Verilog (dsp=generic)" in capsys.readouterr().out


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


def test_synth_ecp5_default_path_two_seeds_json_and_table(capsys):
    # a real (tiny) synthesis with place-and-route for two seeds on ECP5
    wd = REPO / "build" / "test_hw_cmds" / "cu1x1-ecp5"
    args = ["synth", "compute_unit", "--param", "rows=1", "--param", "cols=1",
            "--param", "max_k=4", "--param", "gelu=false", "--target", "ecp5", "--seeds", "2",
            "--workdir", str(wd)]
    assert main(args + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["target"] == "ecp5" and res["target_defaults"] == {"dsp": "ecp5"}
    assert res["params"]["dsp"] == "ecp5" and res["cells"]["MULT18X18D"] == 1
    net = json.loads((wd / "netlist.json").read_text())
    mults = [c for m in net["modules"].values() for c in m["cells"].values()
             if c["type"] == "MULT18X18D"]
    assert mults[0]["parameters"]["REG_OUTPUT_CLK"] == "CLK0"  # the registered instance
    # the compute unit's stated clock target is the default constraint
    assert res["freq_target_mhz"] == 150.0 and res["seeds"] == [1, 2]
    f = res["fmax_seeds_mhz"]
    assert res["fmax_min_mhz"] == min(f) <= res["fmax_mhz"] <= res["fmax_max_mhz"] == max(f)
    assert res["met"] is (res["fmax_mhz"] >= 150.0)
    assert res["luts"] > 0 and res["ffs"] > 0 and res["dsps"] == 1
    print_synth_table(res)  # the table printed without --json
    out = capsys.readouterr().out
    assert "Fmax min (MHz)" in out and "Fmax median (MHz)" in out and "Fmax max (MHz)" in out
    assert "target met" in out
    assert f"{res['fmax_mhz']:.1f}" in out and "ecp5 defaults" in out and "dsp=ecp5" in out


def _result(**kw):
    res = {"unit": "gelu", "target": "ecp5", "device": "LFE5U-25F-6CABGA256", "luts": 10,
           "ffs": 5, "dsps": 2, "brams": 0, "params": {"dsp": "generic"}, "target_defaults": {},
           "freq_target_mhz": 200.0, "seeds": [1], "fmax_seeds_mhz": [143.0],
           "fmax_min_mhz": 143.0, "fmax_mhz": 143.0, "fmax_max_mhz": 143.0, "met": False,
           "seeds_met": 0, "pnr_error": None, "workdir": "w"}
    res.update(kw)
    return res


def test_synth_table_shows_overrides_target_and_met(capsys):
    print_synth_table(_result())
    out = capsys.readouterr().out
    assert "parameters given" in out and "dsp=generic" in out and "ecp5 defaults" in out
    assert "clock target (MHz)" in out and "200" in out and "143.0" in out
    assert "target met" in out and "no" in out
    print_synth_table(_result(freq_target_mhz=None, seeds=None, fmax_mhz=None, met=None,
                              target="xilinx", params={}, target_defaults={}))
    out = capsys.readouterr().out
    assert "no place-and-route" in out and "none (block defaults)" in out


def test_synth_table_as_csv_has_raw_values(capsys):
    import csv
    import io

    print_synth_table(_result(seeds=[1, 2, 3], fmax_seeds_mhz=[140.0, 143.0, 150.5], fmax_min_mhz=140.0,
                              fmax_max_mhz=150.5, seeds_met=0), fmt="csv")
    rows = dict(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows["metric"] == "value"
    assert (rows["luts"], rows["dsps"], rows["fmax_min_mhz"], rows["fmax_mhz"], rows["fmax_max_mhz"]) == (
        "10", "2", "140.0", "143.0", "150.5")
    assert rows["met"] == "False" and rows["workdir"] == "w"


def test_synth_bad_seed_count(capsys):
    assert main(["synth", "gelu", "--target", "ecp5", "--seeds", "0"]) == 2
    assert "--seeds must be in 1..100" in capsys.readouterr().err


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


def test_verilog_never_replaces_a_users_file(tmp_path, capsys):
    """An OUT.v (or OUT.json) einarray did not write is refused and left as it was; one it
    wrote is refreshed; --force replaces anything."""
    mine = tmp_path / "gelu.v"
    mine.write_text("module mine; endmodule\n")
    assert main(["verilog", "gelu", "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"{mine}: exists and was not written by einarray verilog; not replaced" in err
    assert mine.read_text() == "module mine; endmodule\n" and not mine.with_suffix(".json").exists()
    notes = tmp_path / "g2.json"
    notes.write_text('{"my": "notes"}')
    assert main(["verilog", "gelu", "-o", str(tmp_path / "g2.v")]) == 2
    assert notes.read_text() == '{"my": "notes"}' and not (tmp_path / "g2.v").exists()
    capsys.readouterr()
    assert main(["verilog", "gelu", "-o", str(tmp_path / "g3.v")]) == 0
    assert main(["verilog", "gelu", "-o", str(tmp_path / "g3.v")]) == 0  # ours: refreshed
    assert main(["verilog", "gelu", "-o", str(mine), "--force"]) == 0
    assert mine.read_text().startswith("/* Generated by Amaranth")


def test_synth_refuses_a_users_workdir(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("x")
    assert main(["synth", "gelu", "--target", "ice40", "--no-pnr", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not an einarray output directory" in err and str(tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]
