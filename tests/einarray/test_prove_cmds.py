# amaranth: UnusedElaboratable=no
"""``einarray prove``: one line per property, exit status 1 when one fails, work directories
by the rules of :mod:`einsum.outdir`."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from amaranth import Module
from amaranth.hdl import signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

import hw.formal
from einarray.cli import main
from einarray.commands.prove_cmds import KIND
from einsum.outdir import claim


class _DropsValid(wiring.Component):
    """A stream register that clears o.valid every cycle after it was set, ready or not."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(signed(4))), "o": Out(stream.Signature(signed(4)))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [self.o.valid.eq(self.i.valid & ~self.o.valid), self.o.payload.eq(self.i.payload)]
        return m


def test_prove_compute_unit_keeps_workdir(tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["prove", "compute-unit", "--workdir", str(work)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [re.sub(r"\s+\[[0-9.]+ s\]$", "", ln).split(None, 1) for ln in lines[:3]] == [
        ["compute-unit.valid-hold", "proved by k-induction at depth 2"],
        ["compute-unit.payload-hold", "proved by k-induction at depth 2"],
        ["compute-unit.scoreboard", "bounded to depth 24 (BMC from reset)"],
    ]
    assert lines[3] == "3 of 3 properties hold"
    assert (work / "compute_unit_scoreboard.sby").is_file()
    assert (work / "compute_unit_scoreboard" / "status").read_text().split()[0] == "PASS"
    assert claim(work, kind=KIND, files=[]) == work  # an earlier prove work dir is used again


def test_prove_refuses_a_users_directory(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["prove", "gelu", "--workdir", str(mine)]) == 2
    assert "einarray prove: error:" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_prove_failure_exits_1(tmp_path, capsys, monkeypatch):
    """A block that drops valid is reported FAILED, exit status 1, and the printed
    counterexample exists after the command (its temporary directory is kept)."""
    p = next(p for p in hw.formal.PROPERTIES if p.key == "gelu.valid-hold")
    broken = dataclasses.replace(p, unit="stage", make=_DropsValid, depth=4)
    monkeypatch.setattr(hw.formal, "properties", lambda unit: [broken])
    assert main(["prove", "gelu"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("stage.valid-hold") and "FAILED, counterexample " in out[0]
    trace = Path(out[0].split("FAILED, counterexample ")[1].split("  [")[0])
    assert trace.name == "trace.vcd" and trace.is_file()
    assert out[1] == "0 of 1 properties hold; not holding: stage.valid-hold"
    root = trace.parents[2]
    assert root.name.startswith("einarray-prove-")
    shutil.rmtree(root)
