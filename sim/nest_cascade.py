"""A cascade of several sum-of-products Einsums on a memory hierarchy
(:class:`mapping.nest_mapping.CascadeNest`): each Einsum counted by :mod:`sim.nest` under its own
mapping, the Einsums run one after another.

The model: sequential. An Einsum starts when the one before it has finished (a tensor it
reads may be the one just written), so the cycles are the sum of the Einsums' cycles, and the
energy, the MACs and every level's and network's energy are sums too. A tensor written by one
Einsum and read by a later one goes through the outermost level: the producer's counts write
it there (every output reaches the outermost level) and the consumer's read it from there,
exactly as two configs of one Einsum each would count them. Fused (``mapping.on_chip: {H:
GlobalBuffer}``): the intermediate lives in that level instead, whole (no loop above the
level indexes it), so in both Einsums that level is its backing store: the producer's
updates stay there and the consumer finds it there (no fill), and no level above, nor a
network above, ever holds it. Pipelining the Einsums (the array archs' stages,
:mod:`sim.engine`) is not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapping.nest_mapping import CascadeNest

from .nest import NestResult, simulate_nest


@dataclass(frozen=True)
class CascadeNestResult:
    workload: str
    arch: str
    einsums: tuple[tuple[str, NestResult], ...]  # in the cascade's order
    energy_unit: str = "pJ"
    on_chip: dict = field(default_factory=dict)  # intermediate -> the on-chip level it stays in (fused)

    @property
    def cycles(self) -> int:
        return sum(r.cycles for _, r in self.einsums)

    @property
    def computes(self) -> int:
        return sum(r.computes for _, r in self.einsums)

    @property
    def energy_pj(self) -> float:
        return sum(r.energy_pj for _, r in self.einsums)

    def as_dict(self) -> dict[str, Any]:
        levels: dict[str, float] = {}
        for _, r in self.einsums:
            for lv in r.levels:
                levels[lv.name] = levels.get(lv.name, 0.0) + lv.energy_pj
        return {"workload": self.workload, "arch": self.arch, "energy_unit": self.energy_unit,
                "on_chip": dict(self.on_chip),
                "cycles": self.cycles, "computes": self.computes,
                "energy_pj": {"total": self.energy_pj, "compute": sum(r.mac_energy_pj for _, r in self.einsums),
                              "levels": levels,
                              "networks": sum(nw.energy_pj for _, r in self.einsums for nw in r.networks)},
                "einsums": {n: r.as_dict() for n, r in self.einsums}}


def simulate_cascade_nest(cn: CascadeNest, every_step: bool = False) -> CascadeNestResult:
    """Every Einsum of ``cn`` by :func:`sim.nest.simulate_nest`, in order (the module docstring);
    ``every_step`` steps each one's timeline one step at a time."""
    res = tuple((cfg.einsum.name, simulate_nest(cfg, every_step=every_step)) for cfg in cn.configs)
    return CascadeNestResult(cn.cascade.name, cn.arch.name, res, cn.arch.energy_unit, dict(cn.on_chip))


def cascade_text(res: CascadeNestResult, tables: list[str]) -> str:
    """The per-Einsum tables (``tables``, as :func:`sim.nest_text.table_text` prints them) under
    a header per Einsum, then the cascade's totals."""
    u = res.energy_unit
    out = []
    for (name, _), t in zip(res.einsums, tables):
        out += [f"== Einsum {name} ==", t, ""]
    parts = ", ".join(f"{n} {r.cycles:,}" for n, r in res.einsums)
    how = ("each intermediate through the outermost level" if not res.on_chip else
           "kept on chip: " + ", ".join(f"{t} in {lv}" for t, lv in res.on_chip.items())
           + "; any other intermediate through the outermost level")
    out.append(f"{res.workload} on {res.arch}: {len(res.einsums)} Einsums one after another ({how}): "
               f"{res.cycles:,} cycles ({parts}), {res.computes:,} MACs, "
               f"energy {res.energy_pj:,.2f} {u} ({res.energy_pj / res.computes:.4f} {u}/MAC)")
    return "\n".join(out)
