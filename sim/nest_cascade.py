"""A cascade of several Einsums on a memory hierarchy (:class:`mapping.nest_mapping.CascadeNest`):
each sum of products counted by :mod:`sim.nest` under its own mapping, each Einsum of the vector
unit by :mod:`sim.nest_vector`, the Einsums run one after another.

The model: sequential. An Einsum starts when the one before it has finished (a tensor it
reads may be the one just written), so the cycles are the sum of the Einsums' cycles, and the
energy, the MACs and every level's and network's energy are sums too. A tensor written by one
Einsum and read by a later one goes through the outermost level: the producer's counts write
it there (every output reaches the outermost level) and the consumer's read it from there,
exactly as two configs of one Einsum each would count them. Fused (``mapping.on_chip: {H:
GlobalBuffer}``): the intermediate lives in that level instead, whole (no loop above the
level indexes it) or a tile at a time (the loops above the level tile only its ranks, alike in
every Einsum that touches it, :func:`mapping.fusion.check_tiles`: the cascade then runs
tile by tile, each Einsum on a tile before the next, and the counts are the same sums), so in
both Einsums that level is its backing store: the producer's updates stay there and the
consumer finds it there (no fill), and no level above, nor a network above, ever holds it.
Cycles add up Einsum by Einsum (tile by tile alike). Pipelining the Einsums (the array archs'
stages, :mod:`sim.engine`) is not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapping.nest_mapping import CascadeNest

from .nest import NestResult, simulate_nest
from .nest_text import table_text
from .nest_vector import VectorResult, simulate_vector, vector_text


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
                              "vector": sum(r.vector_energy_pj for _, r in self.einsums if isinstance(r, VectorResult)),
                              "levels": levels,
                              "networks": sum(nw.energy_pj for _, r in self.einsums for nw in r.networks)},
                "einsums": {n: r.as_dict() for n, r in self.einsums}}


def simulate_cascade_nest(cn: CascadeNest, every_step: bool = False) -> CascadeNestResult:
    """Every Einsum of ``cn`` by :func:`sim.nest.simulate_nest`, in order (the module docstring);
    ``every_step`` steps each one's timeline one step at a time."""
    runs = [(cfg.einsum.position, cfg.einsum.name, simulate_nest(cfg, every_step=every_step)) for cfg in cn.configs]
    runs += [(job.position, job.einsum, simulate_vector(job, f"{cn.cascade.name}.{job.einsum}")) for job in cn.vector]
    res = tuple((n, r) for _, n, r in sorted(runs, key=lambda x: x[0]))
    return CascadeNestResult(cn.cascade.name, cn.arch.name, res, cn.arch.energy_unit, dict(cn.on_chip))


def cascade_text(res: CascadeNestResult, nests: dict[str, str] | None = None) -> str:
    """Each Einsum's table (:func:`sim.nest_text.table_text`, after its loop nest from ``nests``
    if given; a vector Einsum's :func:`sim.nest_vector.vector_text`) under a header per Einsum,
    then the cascade's totals."""
    u = res.energy_unit
    out = []
    for name, r in res.einsums:
        t = vector_text(r) if isinstance(r, VectorResult) else \
            (f"{nests[name]}\n" if nests and name in nests else "") + table_text(r)
        out += [f"== Einsum {name} ==", t, ""]
    parts = ", ".join(f"{n} {r.cycles:,}" for n, r in res.einsums)
    how = ("each intermediate through the outermost level" if not res.on_chip else
           "kept on chip: " + ", ".join(f"{t} in {lv}" for t, lv in res.on_chip.items())
           + "; any other intermediate through the outermost level")
    vec = [n for n, r in res.einsums if isinstance(r, VectorResult)]
    on_vec = f"; on the vector unit: {', '.join(vec)}" if vec else ""
    per_mac = f" ({res.energy_pj / res.computes:.4f} {u}/MAC)" if res.computes else ""
    n = len(res.einsums)
    out.append(f"{res.workload} on {res.arch}: {n} Einsum{'s' * (n != 1)} one after another ({how}{on_vec}): "
               f"{res.cycles:,} cycles ({parts}), {res.computes:,} MACs, "
               f"energy {res.energy_pj:,.2f} {u}{per_mac}")
    return "\n".join(out)
