"""Generic build-and-run of a cocotb test module against Amaranth-generated Verilog.

``run_cocotb(design, toplevel, test_module, simulator, build_dir, env=...)`` writes the
Verilog (``design`` is a ``wiring.Component``, a zero-argument factory returning one, Verilog
text, or a path to a ``.v`` file), builds it with ``simulator`` ("icarus" or "verilator")
into ``build_dir`` (skipped when the same Verilog was already built there), runs
``test_module`` (a module on ``tests/hw``) and raises ``AssertionError`` unless at least one
cocotb test ran and none failed.  Parameters reach the cocotb test through ``env``
(environment variables, e.g. a JSON string of constructor parameters and a seed).

``require_simulator(simulator)`` skips (locally) or fails (``CI=true``) when the simulator
is not installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SIMULATORS = ("icarus", "verilator")
_EXECUTABLE = {"icarus": "iverilog", "verilator": "verilator"}
# small designs, short runs: C++ compile time dominates. --output-split 0: the PyPI wheel's
# build leaves the precompiled-header flag empty, so a design split into several C++ files
# fails to link (missing Vtop__pch.h.fast).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CMPCONST", "-Wno-UNSIGNED", "-O1",
                  "-CFLAGS", "-O0", "--output-split", "0"]

__all__ = ["SIMULATORS", "REPO", "require_simulator", "verilog_of", "run_cocotb"]


def require_simulator(simulator: str) -> None:
    """Skip the test if ``simulator`` is missing -- or fail when running in CI."""
    exe = _EXECUTABLE[simulator]
    if shutil.which(exe) is None:
        msg = f"simulator {simulator!r} ({exe}) not found on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: RTL tests must not be skipped)")
        pytest.skip(msg)


def verilog_of(design: Any, toplevel: str) -> str:
    """Verilog text for ``design`` (component, factory, Verilog text or .v path)."""
    if isinstance(design, Path):
        return design.read_text()
    if isinstance(design, str):
        if design.endswith(".v") and "\n" not in design:
            return Path(design).read_text()
        return design
    if callable(design) and not hasattr(design, "elaborate"):
        design = design()
    from hw.common import to_verilog

    return to_verilog(design, toplevel)


def run_cocotb(
    design: Any,
    toplevel: str,
    test_module: str,
    simulator: str,
    build_dir: os.PathLike | str,
    *,
    env: Mapping[str, str] | None = None,
    testcase: str | None = None,
    build_args: list[str] | None = None,
    seed: int | None = None,
) -> Path:
    """Build (once per Verilog text) and run ``test_module``; returns the results XML path."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r} (one of {SIMULATORS})")
    require_simulator(simulator)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    text = verilog_of(design, toplevel)
    src = build_dir / f"{toplevel}.v"
    stamp = build_dir / ".built"
    digest = hashlib.sha256((simulator + text).encode()).hexdigest()
    fresh = not (stamp.exists() and stamp.read_text() == digest and src.exists())
    if fresh:
        src.write_text(text)
    runner = get_runner(simulator)
    args = list(build_args or [])
    if simulator == "verilator":
        args = VERILATOR_ARGS + args
    runner.build(
        sources=[src],
        hdl_toplevel=toplevel,
        build_dir=build_dir,
        build_args=args,
        timescale=("1ns", "1ps"),
        always=fresh,
        clean=False,
    )
    stamp.write_text(digest)
    run_env = {k: str(v) for k, v in (env or {}).items()}
    # the runner passes this process's sys.path as the simulator's PYTHONPATH
    for p in (str(REPO), str(HERE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    results = build_dir / f"results_{test_module}.xml"
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env=run_env,
            testcase=testcase,
            seed=seed,
            results_xml=str(results),
            timescale=("1ns", "1ps"),
        )
    except SystemExit as e:  # the runner exits on failures under pytest
        raise AssertionError(
            f"cocotb {test_module} on {simulator} failed (exit {e.code}); see {build_dir}"
        ) from None
    n_tests, n_failed = get_results(results)
    assert n_tests > 0, f"no cocotb tests ran from {test_module}"
    assert n_failed == 0, f"{n_failed} of {n_tests} cocotb tests failed ({results})"
    return results


