"""``einarray search`` on a memory-hierarchy config (einarray/commands/nest_search_cmds.py): the
printed mapping, pasted into the config, loads and simulates to the reported score; the
``search:`` section and the flags set objective, budget and what varies; bad settings are
located one-line errors. The search itself is tested in tests/mapping/test_nest_search.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from einarray.cli import main
from mapping.config import load_config
from sim.nest import simulate_nest

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "timeloop"


def _config(tmp_path: Path, name: str, search: str = "") -> Path:
    """Exercise ``name`` with absolute includes (and a ``search:`` section), in tmp_path."""
    text = (EX / f"{name}.yaml").read_text()
    text = text.replace("einsum: problems/", f"einsum: {EX}/problems/").replace("arch: arch/", f"arch: {EX}/arch/")
    p = tmp_path / f"{name}.yaml"
    p.write_text(text + search)
    return p


def _run_json(capsys, *argv: str) -> dict:
    assert main(["search", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_printed_mapping_loads_back_to_its_score(tmp_path, capsys):
    """Exercise 01's whole space (144 legal mappings) by energy: its own mapping is optimal, so
    the search keeps it; the mapping printed, pasted into the config, loads and simulates to
    the score, and the given score is the config's own energy."""
    cfg = _config(tmp_path, "01-conv1d-2level-os")
    out = _run_json(capsys, str(cfg), "--objective", "energy")
    assert out["exhaustive"] and out["space"] == 144 and out["evaluated"] == 144
    own = simulate_nest(load_config(cfg, allow_hierarchy=True)).energy_pj
    assert out["score"] == out["given_score"] == own
    doc = yaml.safe_load(cfg.read_text())
    doc["mapping"] = yaml.safe_load(out["mapping_yaml"])["mapping"]
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert simulate_nest(load_config(pasted, allow_hierarchy=True)).energy_pj == out["score"]
    assert out["result"]["energy_pj"]["total"] == out["score"]


def test_the_search_section_sets_objective_budget_and_what_varies(tmp_path, capsys):
    """Exercise 04-kp with only the loop orders varying: the global buffer's C, K, R in 3! = 6
    orders (the register file has one loop), exhaustive within a budget of 6, by latency
    (every order takes the same 1,536 cycles, so the config's own order is kept); the flags
    override the section."""
    cfg = _config(tmp_path, "04-conv1d+oc+ic-3levelspatial-kp",
                  "search: {objective: latency, budget: 6, seed: 1, vary: [orders]}\n")
    out = _run_json(capsys, str(cfg))
    assert (out["objective"], out["vary"], out["exhaustive"], out["space"]) == ("latency", ["orders"], True, 6)
    assert out["score"] == out["given_score"] == out["result"]["cycles"]
    assert out["mapping"]["nest"]["GlobalBuffer"]["temporal"] == {"C": 32, "K": 2, "R": 3}  # the config's
    out = _run_json(capsys, str(cfg), "--objective", "energy", "--budget", "5")
    assert out["objective"] == "energy" and not out["exhaustive"] and out["evaluated"] <= 5
    assert out["score"] <= out["given_score"]


@pytest.mark.parametrize("section,where,what", [
    ("search: {objective: speed}", "search.objective", "expected one of energy, latency, edp"),
    ("search: {budget: 0}", "search.budget", "positive integer"),
    ("search: {seed: -1}", "search.seed", "non-negative integer"),
    ("search: {vary: [tiles]}", "search.vary", "factors, spatial, orders, keep"),
    ("search: {constraints: {}}", "search.constraints", "unknown key"),
])
def test_bad_search_settings_are_located(tmp_path, capsys, section, where, what):
    cfg = _config(tmp_path, "01-conv1d-2level-os", section + "\n")
    assert main(["search", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(rf"einarray search: error: {re.escape(str(cfg))}:\d+ {re.escape(where)}: ",
                                      err[0]), err
    assert what in err[0]


@pytest.mark.parametrize("argv,msg", [
    (["--output", "OUT"], "--output applies to array configs"),
    (["--partition", "P=auto"], "--partition applies to array configs"),
    (["--objective", "speed"], "--objective 'speed': expected one of energy, latency, edp"),
])
def test_array_only_and_bad_flags_are_one_line_errors(tmp_path, capsys, argv, msg):
    cfg = _config(tmp_path, "01-conv1d-2level-os")
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    assert main(["search", str(cfg), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err
    assert not (tmp_path / "out").exists()
