"""``einarray simulate`` end to end: output keys, overrides, trace, and bad input."""

from __future__ import annotations

import copy
import csv
import json
import re

import pytest

from einarray.cli import main

from sim_helpers import CONFIGS, gemm_arch, write_config

KEYS = {"cycles", "latency_s", "utilization", "traffic", "energy_pj", "edp", "einsums", "groups",
        "compute_cycles", "compute_only_cycles", "sim", "workload", "arch", "instances"}


def base_doc():
    return {"workload": {"cascade": "gemm", "ranks": {"M": 32, "N": 24, "K": 16}},
            "arch": gemm_arch(8, 8),
            "mapping": {"einsums": {"C": {"unit": "array2d", "dataflow": "os"}},
                        "groups": [{"name": "g", "einsums": ["C"], "tiles": {"GB": {"M": 16}},
                                    "loop_order": ["M"]}]}}


def run_json(capsys, args):
    assert main(["simulate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_keys_and_overrides(tmp_path, capsys):
    p = write_config(base_doc(), tmp_path)
    r = run_json(capsys, [str(p)])
    assert KEYS <= set(r)
    assert set(r["utilization"]["array2d"]) == {"busy", "pe_util", "mac_util", "pe_util_compute",
                                                "mac_util_compute", "busy_cycles"}
    assert {"reads", "writes", "bytes", "read_bw", "peak_read_bw", "tensors"} <= set(r["traffic"]["DRAM"])
    assert {"total", "components"} <= set(r["energy_pj"])
    assert r["einsums"]["C"]["actions"]["mac"] == 32 * 24 * 16
    assert r["latency_s"] == pytest.approx(r["cycles"] / 1e9)
    r2 = run_json(capsys, [str(p), "--rank", "K=64"])
    assert r2["einsums"]["C"]["actions"]["mac"] == 32 * 24 * 64
    r3 = run_json(capsys, [str(p), "--set", "arch.array2d.rows=16", "--set", "arch.array2d.cols=16"])
    # 2 M-tiles of 16 rows x 24 cols on 16x16: 1 x 2 folds each, OS with fold overlap
    assert r3["einsums"]["C"]["cycles"] == 2 * (2 * 16 + 16 + 16 - 2)


def test_table_output_and_functional(tmp_path, capsys):
    p = write_config(base_doc(), tmp_path)
    assert main(["simulate", str(p), "--functional"]) == 0
    out = capsys.readouterr().out
    assert "utilization" in out and "functional check: OK" in out


def test_trace(tmp_path, capsys):
    p = write_config(base_doc(), tmp_path)
    t = tmp_path / "trace.csv"
    r = run_json(capsys, [str(p), "--trace", str(t)])
    rows = list(csv.reader(t.open()))
    assert rows[0][:4] == ["group", "kind", "load_start", "load_end"]
    steps = [x for x in rows[1:] if x[1] == "step"]
    assert len(steps) == 2 == r["sim"]["steps"]
    assert float(steps[-1][5]) <= r["cycles"]


def test_library_attention_configs_run(capsys):
    for name in ("fusemax", "flat", "unfused"):
        r = run_json(capsys, [str(CONFIGS / f"{name}.yaml")])
        assert r["cycles"] > 0 and r["utilization"]["array2d"]["pe_util"] <= 1


def _mut(doc, path, value):
    d = doc
    for k in path[:-1]:
        d = d[k]
    if value is KeyError:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    return doc


BAD = [
    ("unknown unit", ("mapping", "einsums", "C", "unit"), "tensor_core", "mapping.einsums.C.unit", "unknown unit"),
    ("unknown level", ("mapping", "groups", 0, "tiles"), {"L2": {"M": 8}}, "mapping.groups[0].tiles.L2",
     "unknown memory level"),
    ("negative size", ("workload", "ranks", "M"), -4, "workload.ranks.M", "positive integer"),
    ("zero bandwidth", ("arch", "memory", 0, "read_bw"), 0, "arch.memory[0].read_bw", "> 0"),
    ("energy missing action", ("arch", "energy", "array2d"), {"add": 0.5}, "arch.energy.array2d",
     "no 'mac' action"),
    ("fits no mapping", ("arch", "memory", 1, "capacity_bytes"), 8, "mapping", "fits no mapping"),
    ("tile too big for buffer", ("arch", "memory", 1, "capacity_bytes"), 1024, "mapping.groups[0].tiles",
     "bytes in GB"),
    ("rank not in Einsum", ("mapping", "groups", 0, "loop_order"), ["Q"], "mapping.groups[0].loop_order[0]",
     "'Q' is not a rank"),
    ("spatial factor too large", ("mapping", "einsums", "C", "spatial"), {"rows": {"m": 64}},
     "mapping.einsums.C.spatial.rows.m", "larger than the array"),
    ("unit lacks op", ("arch", "array2d", "ops"), {"add": 1}, "mapping.einsums.C.unit", "needs op 'mac'"),
    ("unknown section", ("simulation",), {}, "simulation", "unknown section"),
]


@pytest.mark.parametrize("label,path,value,where,what", BAD, ids=[b[0] for b in BAD])
def test_bad_input_one_line(tmp_path, capsys, label, path, value, where, what):
    doc = base_doc()
    if label == "fits no mapping":
        del doc["mapping"]["groups"]
    _mut(doc, path, value)
    p = write_config(doc, tmp_path)
    assert main(["simulate", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    m = re.match(rf"^einarray simulate: error: {re.escape(str(p))}:(\d+) (\S+): (.*)$", err)
    assert m, err
    assert m.group(2) == where, err
    assert what in m.group(3), err


def test_fused_pair_with_incompatible_loop_order(tmp_path, capsys):
    # the 3-pass softmax fused into one group while P is tiled: SN needs all of GM's max over p
    doc = {"workload": {"cascade": "softmax-3pass", "ranks": {"M": 16, "P": 32, "E": 4, "F": 4}},
           "arch": "fusemax",
           "mapping": {"groups": [{"name": "sm", "einsums": ["QK", "GM", "SN", "SD", "A", "AV"],
                                   "tiles": {"GB": {"P": 8}}, "loop_order": ["P"]}]}}
    p = write_config(doc, tmp_path)
    assert main(["simulate", str(p)]) == 2
    err = capsys.readouterr().err
    assert "mapping.groups[0].loop_order: fused pair QK -> GM" not in err  # QK is not reduced over p
    assert re.search(r"mapping\.groups\[0\]\.loop_order: fused pair GM -> SN is incompatible", err), err


def test_stage_order_error(tmp_path, capsys):
    doc = {"workload": {"cascade": "gemm", "ranks": {"M": 8, "N": 8, "K": 8}}, "arch": gemm_arch(4, 4)}
    p = write_config(doc, tmp_path)
    cfg = (CONFIGS / "fusemax.yaml").read_text().replace(
        "        - [RM]\n        - [SLN, SLD, PRM, SPD]", "        - [SLN, SLD, PRM, SPD]\n        - [RM]")
    q = tmp_path / "fm.yaml"
    q.write_text(cfg.replace("cascade: attention-1pass.yaml", f"cascade: {CONFIGS / 'attention-1pass.yaml'}"))
    assert main(["simulate", str(q)]) == 2
    err = capsys.readouterr().err
    assert "mapping.groups[0].stages: SLN reads RM before RM produces it" in err, err


def test_trace_and_functional_refuse_huge_runs(tmp_path, capsys):
    p = write_config(base_doc(), tmp_path)
    assert main(["simulate", str(p), "--rank", "M=100000000", "--trace", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert "tile steps" in err and "\n" == err[-1] and err.count("\n") == 1
    assert main(["simulate", str(CONFIGS / "fusemax.yaml"), "--rank", "M=65536", "--rank", "P=65536",
                 "--set", "mapping.groups.0.hold={}", "--functional"]) == 2
    assert "iteration points" in capsys.readouterr().err


def test_default_unit_fallback_is_one_warning_line(tmp_path, capsys):
    # zcu102-edge-moe's 2-D array has no 'mul', so the scaled QK runs on the 32-lane unit
    p = write_config({"workload": {"cascade": "softmax-3pass"}, "arch": "zcu102-edge-moe"}, tmp_path)
    assert main(["simulate", str(p)]) == 0
    err = capsys.readouterr().err.splitlines()
    warn = [ln for ln in err if "warning" in ln]
    assert warn == [ln for ln in warn if ln.startswith("einarray simulate: warning: QK (a sum of products) runs on "
                                                       "array1d (32 lanes), not on array2d (256 lanes)")]
    assert len(warn) == 1 and "lacks op 'mul'" in warn[0]


def test_fusemax_config_at_16k_drops_the_kv_hold_and_says_so(capsys):
    # BERT at 16K tokens: a head's K and V (16384 x 64 x 2 B = 2 MB each) held in each of
    # the buffer's 4 step slots, plus the step's other tiles: 19.5 MB of 16 MB
    cfg = str(CONFIGS / "fusemax.yaml")
    ranks = ["--rank", "M=16384", "--rank", "P=16384"]
    assert main(["simulate", cfg, *ranks, "--json"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    warn = [ln for ln in out.err.splitlines() if ln]
    assert len(warn) == 1 and warn[0].startswith("einarray simulate: warning: ")
    assert "fusemax.yaml:" in warn[0] and "mapping.groups[0].hold: holding K across the loop over M" in warn[0]
    assert "needs 19480576 bytes in GB, which holds 16777216; falling back to no hold" in warn[0]
    # what it fell back to is exactly the config without the hold (what sim.fusemax_report runs)
    plain = run_json(capsys, [cfg, *ranks, "--set", "mapping.groups.0.hold={}"])
    assert r["cycles"] == plain["cycles"]
    # at 4K tokens the hold fits: no warning
    assert main(["simulate", cfg, "--rank", "M=4096", "--rank", "P=4096", "--json"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_fallback_warning_shows_on_every_command_not_once_per_process(tmp_path, capsys):
    """Python shows a warning once per code location per process; each einarray command shows
    each distinct warning once, even when an earlier command in the process showed it."""
    p = write_config({"workload": {"cascade": "softmax-3pass"}, "arch": "zcu102-edge-moe"}, tmp_path)
    for _ in range(2):
        assert main(["simulate", str(p)]) == 0
        warn = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
        assert len(warn) == 1 and "lacks op 'mul'" in warn[0]
