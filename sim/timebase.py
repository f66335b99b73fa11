"""Exact time in integers, and the engine's additive counters.

Exact integer time
------------------
Times are exact rationals (a word costs ``1 / bandwidth`` cycles, a stage on the 2-D array's
edges ``words / (R + C)``), but the timeline never holds a :class:`~fractions.Fraction`: it
counts *ticks* of ``1 / D`` cycle, with ``D`` a common multiple of every denominator the run
meets (:class:`TimeBase`), so the per-step recurrence and the counters are integer additions
and maxima, which are exact and several times faster than Fraction arithmetic. ``D`` starts
as the least common multiple of the backing store's bandwidth numerators (a word is then a
whole number of ticks); a step cost with a denominator that does not divide ``D`` restarts
the run with ``D := lcm(D, denominator)`` (:class:`_Rescale`), so no value is ever rounded.
Results leave the engine as Fractions again (``Sim.end_time``, ``Sim.group_cycles``, the
counters of :data:`TIME_KEYS`), equal to what rational arithmetic gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping

#: Counters of one core's timeline (with several cores: the critical core's, not summed).
TIMELINE_KEYS = frozenset({"stage_time", "buf_stall", "compute"})
#: Counters whose values are cycles (kept in ticks while the engine runs, :class:`TimeBase`).
TIME_KEYS = frozenset({"einsum_cycles", "busy", "pe_cycles", "einsum_pe", "stage_time", "buf_stall", "compute"})


class _Rescale(Exception):
    """A value with denominator ``den`` does not fit the time base: rerun with a finer one."""

    def __init__(self, den: int):
        super().__init__(den)
        self.den = den


class TimeBase:
    """Ticks of ``1 / D`` cycle (see the module docstring)."""

    def __init__(self, d: int):
        self.d = d

    def ticks(self, x: Any) -> int:
        """``x`` cycles (an int or a Fraction) in ticks, exactly, or :class:`_Rescale`."""
        if isinstance(x, int):
            return x * self.d
        q, r = divmod(self.d, x.denominator)
        if r:
            raise _Rescale(x.denominator)
        return x.numerator * q

    def cycles(self, t: int) -> Fraction | int:
        """Ticks back to cycles (an int when whole)."""
        q, r = divmod(t, self.d)
        return Fraction(t, self.d) if r else q


#: the time base a (arch, cascade, shapes) last needed, so that a search's many runs of one
#: layer restart at most once (a hint only: any D is exact)
_D_HINT: dict[tuple, int] = {}



@dataclass
class Counters:
    """Additive per-run quantities (all exact integers or Fractions)."""

    v: dict[tuple, Any] = field(default_factory=dict)

    def add(self, key: tuple, x: Any) -> None:
        if x:
            self.v[key] = self.v.get(key, 0) + x

    def snapshot(self) -> dict[tuple, Any]:
        return dict(self.v)

    def diff(self, before: Mapping[tuple, Any]) -> dict[tuple, Any]:
        return {k: x - before.get(k, 0) for k, x in self.v.items() if x != before.get(k, 0)}

    def add_scaled(self, d: Mapping[tuple, Any], k: int) -> None:
        for key, x in d.items():
            self.v[key] = self.v.get(key, 0) + x * k


__all__ = ["TIMELINE_KEYS", "TIME_KEYS", "TimeBase", "Counters"]
