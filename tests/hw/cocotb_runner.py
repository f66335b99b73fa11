"""Generic build-and-run of a cocotb test module against Amaranth-generated Verilog.

``run_cocotb(design, toplevel, test_module, simulator, test_dir, env=...)`` writes the
Verilog (``design`` is a ``wiring.Component``, a zero-argument factory returning one, Verilog
text, or a path to a ``.v`` file), builds it with ``simulator`` ("icarus" or "verilator"),
runs ``test_module`` (a module on ``tests/hw``) in ``test_dir`` and raises
``AssertionError`` unless at least one cocotb test ran and none failed.  Parameters reach
the cocotb test through ``env`` (environment variables, e.g. a JSON string of constructor
parameters and a seed).

Builds are cached: each lives in ``build/cocotb/<toplevel>-<simulator>-<key>`` where the
key hashes the Verilog text, the simulator and its version, cocotb's version and every
build flag, so a design is built once per checkout (a fresh clone, as in CI, builds each
distinct Verilog once per run and every test with the same Verilog reuses it); a file lock
per build directory lets concurrent pytest processes share it.  Verilator's runtime
library objects, the same for every design, are compiled once into ``build/cocotb/_objs``
(``tests/hw/objcache.py``).  ``rm -rf build/cocotb`` drops the cache.

``require_simulator(simulator)`` skips (locally) or fails (``CI=true``) when the simulator
is not installed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD_ROOT = REPO / "build" / "cocotb"
SIMULATORS = ("icarus", "verilator")
_EXECUTABLE = {"icarus": "iverilog", "verilator": "verilator"}
_VERSION_ARG = {"icarus": "-V", "verilator": "--version"}
_TIMESCALE = ("1ns", "1ps")
# small designs, short runs: C++ compile time dominates. --output-split 0: the PyPI wheel's
# build leaves the precompiled-header flag empty, so a design split into several C++ files
# fails to link (missing Vtop__pch.h.fast).
# --no-public-flat-rw undoes the runner's --public-flat-rw (every signal of every instance
# readable and writable through VPI: about 3x the C++ to compile for the softmax block); a
# Verilator control file makes the toplevel's signals public instead, all the tests touch.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CMPCONST", "-Wno-UNSIGNED", "-O1",
                  "-CFLAGS", "-O0", "--output-split", "0", "--no-public-flat-rw"]

_PUBLIC_VLT = '`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n'

__all__ = ["SIMULATORS", "REPO", "BUILD_ROOT", "require_simulator", "verilog_of", "build_key",
           "run_cocotb"]


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


@lru_cache(maxsize=None)
def _tool_version(simulator: str) -> str:
    exe = shutil.which(_EXECUTABLE[simulator])
    res = subprocess.run([exe, _VERSION_ARG[simulator]], capture_output=True, text=True)
    return (res.stdout + res.stderr).strip().splitlines()[0] if res.stdout + res.stderr else ""


def build_key(text: str, toplevel: str, simulator: str, args: list[str]) -> str:
    """The cache key of one build: Verilog text, toplevel, simulator and its version,
    cocotb's version and the build flags."""
    import cocotb

    blob = json.dumps({"verilog": text, "toplevel": toplevel, "simulator": simulator,
                       "version": _tool_version(simulator), "cocotb": cocotb.__version__,
                       "args": args, "timescale": _TIMESCALE,
                       "control": _PUBLIC_VLT if simulator == "verilator" else None})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a build directory shared by concurrent pytest runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build(runner, text: str, toplevel: str, simulator: str, args: list[str],
           build_root: Path) -> Path:
    """The build directory of ``text``, building it unless the cache has it."""
    key = build_key(text, toplevel, simulator, args)
    build_dir = build_root / f"{toplevel}-{simulator}-{key}"
    stamp = build_dir / ".built"
    with _locked(build_dir):
        if stamp.exists() and stamp.read_text() == key:
            return build_dir
        if build_dir.exists():  # an interrupted or failed build: start over
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        src = build_dir / f"{toplevel}.v"
        src.write_text(text)
        sources = [src]
        if simulator == "verilator":
            vlt = build_dir / f"{toplevel}_public.vlt"
            vlt.write_text(_PUBLIC_VLT.format(toplevel=toplevel))
            sources.append(vlt)
        objcache = " ".join(shlex.quote(str(p)) for p in (sys.executable, HERE / "objcache.py"))
        try:
            with _environ(OBJCACHE=objcache, OBJCACHE_DIR=str(build_root / "_objs")):
                runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                             build_args=args, timescale=_TIMESCALE, always=True)
        except SystemExit as e:  # the runner exits when a build command fails
            raise AssertionError(f"{simulator} build of {toplevel} failed (exit {e.code}); "
                                 f"see {build_dir}") from None
        stamp.write_text(key)
    return build_dir


def run_cocotb(
    design: Any,
    toplevel: str,
    test_module: str,
    simulator: str,
    test_dir: os.PathLike | str,
    *,
    env: Mapping[str, str] | None = None,
    testcase: str | None = None,
    build_args: list[str] | None = None,
    seed: int | None = None,
    build_root: os.PathLike | str = BUILD_ROOT,
) -> Path:
    """Build ``design`` (once per distinct build, see the module docstring) and run
    ``test_module`` in ``test_dir``; returns the results XML path."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r} (one of {SIMULATORS})")
    require_simulator(simulator)
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    text = verilog_of(design, toplevel)
    args = list(build_args or [])
    if simulator == "verilator":
        args = VERILATOR_ARGS + args
    runner = get_runner(simulator)
    build_dir = _build(runner, text, toplevel, simulator, args, Path(build_root).resolve())
    run_env = {k: str(v) for k, v in (env or {}).items()}
    # the runner passes this process's sys.path as the simulator's PYTHONPATH
    for p in (str(REPO), str(HERE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    results = test_dir / f"results_{test_module}.xml"
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=test_dir,
            extra_env=run_env,
            testcase=testcase,
            seed=seed,
            results_xml=str(results),
            timescale=_TIMESCALE,
        )
    except SystemExit as e:  # the runner exits on failures under pytest
        raise AssertionError(
            f"cocotb {test_module} on {simulator} failed (exit {e.code}); see {test_dir}"
        ) from None
    n_tests, n_failed = get_results(results)
    assert n_tests > 0, f"no cocotb tests ran from {test_module}"
    assert n_failed == 0, f"{n_failed} of {n_tests} cocotb tests failed ({results})"
    return results
