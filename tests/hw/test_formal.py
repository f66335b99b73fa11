# amaranth: UnusedElaboratable=no
"""Every stream-contract property of :mod:`hw.formal` passes SymbiYosys (``yowasp-sby`` with
Yices), and the checker refutes blocks that break the contract (a stream stage that drops
``valid``, one whose payload changes while stalled, one that loses an element): proof that
a passing property is not vacuous."""

from __future__ import annotations

import dataclasses

import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.formal import PROPERTIES, UNITS, prove, properties

# every unit's stream contract: (valid-hold, payload-hold by k-induction) + a BMC scoreboard
EXPECTED = {
    "gelu": {"valid-hold": "proved", "payload-hold": "proved", "scoreboard": "bounded"},
    "softmax": {"valid-hold": "proved", "payload-hold": "proved", "scoreboard": "bounded"},
    "compute-unit": {"valid-hold": "proved", "payload-hold": "proved", "scoreboard": "bounded"},
    "attention-engine": {"valid-hold": "proved", "payload-hold": "proved", "tile-rows": "bounded"},
}


def test_property_table():
    assert set(UNITS) == set(EXPECTED)
    assert {u: {p.name: {"prove": "proved", "bmc": "bounded"}[p.mode] for p in properties(u)}
            for u in UNITS} == EXPECTED
    assert len(properties("all")) == len(PROPERTIES) == 12


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.key)
def test_property_holds(prop, tmp_path):
    r = prove(prop, tmp_path)
    assert r.status == EXPECTED[prop.unit][prop.name], r.line() + "\n" + r.log.read_text()[-3000:]
    assert r.ok


class _Stage(wiring.Component):
    """A one-register stream stage, correct or with one deliberate bug: ``"drop"`` clears
    ``o.valid`` every other cycle whatever ``o.ready`` is, ``"mutate"`` increments the held
    payload while stalled, ``"lose"`` overwrites a stalled word with a new input."""

    def __init__(self, bug: str | None = None):
        self.bug = bug
        super().__init__({"i": In(stream.Signature(signed(4))), "o": Out(stream.Signature(signed(4)))})

    def elaborate(self, platform):
        m = Module()
        take = ~self.o.valid | self.o.ready
        if self.bug == "lose":
            take = 1
        m.d.comb += self.i.ready.eq(take)
        with m.If(take):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        if self.bug == "drop":
            tick = Signal()
            m.d.sync += tick.eq(~tick)
            with m.If(tick):
                m.d.sync += self.o.valid.eq(0)
        if self.bug == "mutate":
            with m.If(~take):
                m.d.sync += self.o.payload.eq(self.o.payload + 1)
        return m


def _on_stage(name: str, bug: str | None):
    """The GELU property ``name`` on a :class:`_Stage` (a 1-cycle stream stage)."""
    p = next(p for p in PROPERTIES if p.key == f"gelu.{name}")
    return dataclasses.replace(p, unit="stage", make=lambda: _Stage(bug), depth=8)


def _stage_rows(m, dut, ports):
    """The row scoreboard of softmax and the engine on the stage (every word is a one-element
    row; after 3 quiet cycles every input has left)."""
    from hw.formal.harness import Stream, _rows

    i, o = ports["i"], ports["o"]
    _rows(m, Stream(i.payload, i.valid, i.ready, 1), Stream(o.payload, o.valid, o.ready, 1),
          2, ~(i.valid & i.ready) & o.ready, 3)


@pytest.mark.parametrize("name,bug", [("valid-hold", "drop"), ("payload-hold", "mutate")])
def test_broken_stage_fails(name, bug, tmp_path):
    assert prove(_on_stage(name, None), tmp_path / "ok").status == "proved"
    r = prove(_on_stage(name, bug), tmp_path / "bad")
    assert r.status == "FAILED" and not r.ok
    assert r.trace is not None and r.trace.name == "trace.vcd" and r.trace.exists()
    assert "FAILED, counterexample" in r.line()


def test_lost_element_fails(tmp_path):
    p = next(p for p in PROPERTIES if p.key == "softmax.scoreboard")
    good = dataclasses.replace(p, unit="stage", check=_stage_rows, make=lambda: _Stage(None),
                               depth=10)
    assert prove(good, tmp_path / "ok").status == "bounded"
    bad = dataclasses.replace(good, make=lambda: _Stage("lose"))
    r = prove(bad, tmp_path / "bad")
    assert r.status == "FAILED" and r.trace is not None and r.trace.exists()
