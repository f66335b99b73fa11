"""The simulator's side of the mapping search: the search (:mod:`einarray.search`) imports
nothing from :mod:`sim`, and its callers pass it :data:`SIMULATOR`, an
:class:`~einarray.search.model.Evaluator` whose

* ``group`` is :func:`simulate_group`: one candidate group run alone by the simulator's group
  loop and result collection (:func:`sim.results.collect`);
* ``full`` is :func:`sim.results.simulate`: the mappings found, simulated in full;
* ``rank`` is :func:`einarray.analytic.rank_candidates`: a single-Einsum segment's choices
  ranked by the closed-form model.
"""

from __future__ import annotations

from fractions import Fraction
from types import MappingProxyType
from typing import Mapping

from mapping.spec import Config, EinsumMap, Group, MappingSpec
from sim.engine import Sim
from sim.results import collect, simulate

from .analytic import rank_candidates
from .search.model import Evaluator


def simulate_group(cfg: Config, emaps: Mapping[str, EinsumMap], group: Group) -> tuple[Fraction, float]:
    """(cycles as an exact fraction, energy in pJ without leakage) of one group run alone."""
    c = cfg.cascade
    rest = tuple(n for n in (e.name for e in c.einsums) if n not in group.einsums)
    groups = (group,) + ((Group("_rest", rest, (), tuple((n,) for n in rest), MappingProxyType({}),
                                group.buffer),) if rest else ())
    sub = Config(c, cfg.arch, MappingSpec(MappingProxyType(dict(emaps)), groups), cfg.instances, cfg.counts,
                 parallel=cfg.parallel)
    sim = Sim(sub, fast=True)
    end = Fraction(sim.run_alone(group))
    v = sim.counters.v
    sim.group_dram[group.name] = (sum(x for k, x in v.items() if k[0] == "dram_read"),
                                  sum(x for k, x in v.items() if k[0] == "dram_write"))
    if rest:
        sim.group_cycles["_rest"] = Fraction(0)
        sim.group_dram["_rest"] = (0, 0)
    if end == 0:
        return Fraction(0), 0.0
    res = collect(sub, sim)
    return end, res["energy_pj"]["total"] - res["energy_pj"]["leakage"]


#: what the app's searches cost candidates with
SIMULATOR = Evaluator(group=simulate_group, full=simulate, rank=rank_candidates)

__all__ = ["SIMULATOR", "simulate_group"]
