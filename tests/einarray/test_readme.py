"""README's two leading commands: the first sets a machine up (as root without sudo, or as
a user through sudo) and runs the main job; the second is the test command CI runs.

The first command runs here, under sh and bash, with a PATH holding only fake ``id``,
``apt-get``, ``python3`` (and ``sudo`` for the user) that record their arguments; the
``.venv/bin`` tools it calls are fakes too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAIN_JOB = ".venv/bin/einarray run examples/vit-base-fusemax.yaml"


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks[:2]]


def _ci_commands() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _fake(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _run_first(tmp_path: Path, shell: str, uid: int, with_sudo: bool) -> tuple[int, list[str]]:
    fakebin, cwd, log = tmp_path / "bin", tmp_path / "clone", tmp_path / "calls.log"
    for d in (fakebin, cwd / ".venv" / "bin"):
        d.mkdir(parents=True)
    log.touch()
    def rec(tool: str) -> str:  # shell builtins only: nothing else is on PATH
        return f'echo "{tool} $*" >> "{log}"\n'

    _fake(fakebin / "id", f'[ "$1" = -u ] && echo {uid}\n')
    for tool in ("apt-get", "python3"):
        _fake(fakebin / tool, rec(tool))
    if with_sudo:
        _fake(fakebin / "sudo", rec("sudo") + 'exec "$@"\n')
    for tool in ("pip", "einarray"):
        _fake(cwd / ".venv" / "bin" / tool, rec(tool))
    res = subprocess.run([shell, "-c", _readme_commands()[0]], cwd=cwd, env={"PATH": str(fakebin)},
                         capture_output=True, text=True)
    assert res.stderr == "", res.stderr
    return res.returncode, log.read_text().splitlines()


def test_readme_starts_with_the_two_commands():
    first, second = _readme_commands()
    assert "\n" not in first and "\n" not in second
    assert first.endswith("&& " + MAIN_JOB)
    assert (REPO / MAIN_JOB.split()[-1]).is_file()


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_first_command_as_root_without_sudo(tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    rc, calls = _run_first(tmp_path, shutil.which(shell), uid=0, with_sudo=False)
    assert rc == 0
    assert not any(c.startswith("sudo") for c in calls)
    apt = [c for c in calls if c.startswith("apt-get")]
    assert apt[0] == "apt-get update" and apt[1].startswith("apt-get install -y ")
    assert "iverilog" in apt[1].split()
    assert calls[-3:] == ["python3 -m venv .venv", "pip install -e .[dev]",
                          "einarray run examples/vit-base-fusemax.yaml"]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_first_command_as_user_goes_through_sudo(tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    rc, calls = _run_first(tmp_path, shutil.which(shell), uid=1000, with_sudo=True)
    assert rc == 0
    apt = [i for i, c in enumerate(calls) if c.startswith("apt-get")]
    assert len(apt) == 2
    for i in apt:  # every apt-get call runs under sudo, nothing else does
        assert calls[i - 1] == "sudo " + calls[i]
    assert sum(c.startswith("sudo") for c in calls) == 2
    assert calls[-1] == "einarray run examples/vit-base-fusemax.yaml"


def test_second_command_is_what_ci_runs():
    _first, second = _readme_commands()
    ci = _ci_commands()
    assert ci[-1] == second == ".venv/bin/python -m pytest -q"
