"""The CLI's start-up: one command imports only its own module, and the simulate path
leaves plotting, RTL, Dask, networkx and NumPy unimported (checked on ``sys.modules`` in
a fresh interpreter, so a loaded machine cannot fail it; not a timing test:
benchmarks/bench_startup.py times it)."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from einarray.cli import build_parser, main
from einarray.commands import COMMAND_MODULES, COMMANDS

HEAVY = ("matplotlib", "amaranth", "dask", "distributed", "scipy", "pandas", "PIL", "cocotb")
# ~0.1 s of imports each (bench_startup.py's import_ms): a GEMM's simulation needs neither
# (a cascade's graph algorithms fit in a few lines; NumPy is for evaluating a cascade)
GRAPH_AND_ARRAYS = ("networkx", "numpy")
# modules a simulate of a GEMM may add to a bare interpreter's: ~160 with the CLI, the
# config loader, the simulator, YAML and rich's tables; networkx alone is ~290, NumPy ~85
MAX_MODULES = 250
GEMM = "workload: {cascade: gemm, ranks: {M: 64, N: 64, K: 64}}\narch: systolic-16x16\n"


def imported_after(code: str, *names: str) -> list[str]:
    """The modules of ``names`` (or their submodules) imported after running ``code`` in a new
    interpreter."""
    probe = (f"{code}\nimport sys, json\n"
             f"print(json.dumps(sorted(m for m in sys.modules if any(m == n or m.startswith(n + '.') "
             f"for n in {list(names)!r}))))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_no_library():
    assert imported_after("import einarray.cli", "numpy", "networkx", "yaml", "rich", "mapping", "sim",
                          "einarray.commands.cascade_cmds") == []


@pytest.mark.parametrize("args", [["simulate", "{cfg}"], ["simulate", "{cfg}", "--json"]])
def test_simulate_imports_nothing_heavy(tmp_path, args):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(GEMM)
    argv = [a.format(cfg=cfg) for a in args]
    code = ("import contextlib, io\nfrom einarray.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main({argv!r}) == 0")
    assert imported_after(code, *HEAVY) == []


@pytest.mark.parametrize("args", [["simulate", "{cfg}"], ["simulate", "{cfg}", "--json"]])
def test_simulate_of_a_gemm_imports_no_graph_or_array_library(tmp_path, args):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(GEMM)
    argv = [a.format(cfg=cfg) for a in args]
    code = ("import contextlib, io, sys\nbare = len(sys.modules)\nfrom einarray.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main({argv!r}) == 0\n"
            "print(len(sys.modules) - bare)")
    probe = (f"{code}\nimport json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & "
             f"{set(GRAPH_AND_ARRAYS)!r})))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    added, found = p.stdout.strip().splitlines()[-2:]
    assert json.loads(found) == []
    assert int(added) <= MAX_MODULES


def test_simulate_of_a_gemm_does_not_load_the_search(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(GEMM)  # one Einsum computes: nothing to fuse, no default-mapping search
    code = ("import contextlib, io\nfrom einarray.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['simulate', {str(cfg)!r}]) == 0")
    assert imported_after(code, "einarray.search", "einarray.analytic") == []


def test_simulate_of_a_gemm_does_not_load_the_hierarchy_model(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(GEMM)  # a compute-array arch: the Timeloop-style hierarchy code is not needed
    code = ("import contextlib, io\nfrom einarray.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['simulate', {str(cfg)!r}]) == 0")
    assert imported_after(code, "mapping.hierarchy", "mapping.nest_mapping", "sim.nest") == []


def test_simulate_as_json_draws_no_table():
    code = ("import contextlib, io, tempfile, pathlib\nfrom einarray.cli import main\n"
            "d = pathlib.Path(tempfile.mkdtemp()); (d / 'g.yaml').write_text(" + repr(GEMM) + ")\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['simulate', str(d / 'g.yaml'), "
            "'--json']) == 0")
    assert imported_after(code, "rich") == []


def test_simulate_imports_only_its_command_module(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(GEMM)
    code = ("import contextlib, io\nfrom einarray.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    main(['simulate', {str(cfg)!r}, '--json'])")
    assert imported_after(code, *COMMAND_MODULES) == ["einarray.commands.sim_cmds"]


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_the_command_map_names_what_each_module_registers(module):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    assert sorted(sub.choices) == sorted(c for c, m in COMMANDS.items() if m == module)


def test_every_command_is_in_the_map():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_one_command_parser_has_that_command(command):
    sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
    assert command in sub.choices


def test_help_and_unknown_commands_list_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)
    with pytest.raises(SystemExit) as exc:
        main(["simulat"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'simulat'" in err and "simulate" in err and "cascades" in err



def test_version_imports_no_command_module(capsys):
    code = ("import contextlib, io\nfrom einarray.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['--version'])")
    assert imported_after(code, *COMMAND_MODULES) == []
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("einarray ")
