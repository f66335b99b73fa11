"""Counts, cycles and energy of an Einsum on a hierarchy arch's vector unit
(:class:`mapping.vector.VectorJob`; the unit is :class:`mapping.hierarchy.Vector`).

The model. The vector unit at level V (one per instance of V, ``lanes`` element operations per
cycle each, the work split evenly over the instances) streams the Einsum: every tensor it reads
once, whole, and its output once, whole.

* **Counts** (per instance of V, over its instances; the level table of :mod:`sim.nest`). An
  input that lives at V: the unit reads its words there. An input whose home is a level h outside
  V: h reads it (per instance of h), V is filled with it and the unit reads it from V. The output
  at V: the unit's updates there; with its home h outside V: V takes the updates, reads them out,
  and h takes them as updates. Levels between h and V are bypassed.
* **Cycles**: ``ceil(lane-cycles / (lanes x instances of V))``, an operation of kind a taking
  ``cycles[a]`` lane-cycles (default 1; FuseMax's 1-D array takes 6 for an exp), or more if a
  level cannot keep up:
  per instance, its reads over ``read_bw``, its fills and updates over ``write_bw``, its ports
  and banks (:func:`sim.nest.level_bound`), or the busiest link of a ``network:`` the
  tensors cross: one on the level just outside V carries to each unit its even share of every
  tensor as a unicast along :mod:`sim.network`'s routes (and back up for the output); its
  word-hops are costed like the MACs' networks. Streaming with every transfer overlapped: a
  bound, as Timeloop counts, not a stepped timeline. A network further out is not costed (a
  warning says so).
* **Energy**: per operation kind, ``count x the unit's energy``; per level and tensor,
  ``(ceil(r/B) E_read + ceil(f/B) E_write + ceil(u/B) E_update) x instances``; every level's
  leakage over the cycles, as :mod:`sim.nest` charges it; the networks' word-hops.

``tests/sim/test_nest_vector.py`` holds these to hand counts of a softmax cascade.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from einsum.errors import EinarrayWarning
from mapping.vector import VectorJob

from .nest import LevelStats, level_bound, level_stats
from .network import NetworkStats, TensorTraffic, _loads, busiest_link


@dataclass(frozen=True)
class VectorResult:
    workload: str
    arch: str
    unit: str
    lanes: int
    units: int  # instances of the unit's level
    ops: dict[str, int]
    compute_cycles: int  # operations / (lanes x units)
    cycles: int
    vector_energy_pj: float
    levels: tuple[LevelStats, ...]
    energy_pj: float
    energy_unit: str = "pJ"
    clock_hz: float = 1e9
    networks: tuple = ()
    bypassed_networks: tuple[str, ...] = field(default_factory=tuple)
    computes: int = 0  # MACs: none
    mac_energy_pj: float = 0.0

    @property
    def bound_by(self) -> str:
        if self.cycles <= self.compute_cycles:
            return "the vector unit"
        parts = [f"{lv.name}'s {lv.limit}" for lv in self.levels if lv.cycles == self.cycles]
        parts += [f"{nw.level}'s network (busiest link {nw.busiest})" for nw in self.networks if nw.cycles == self.cycles]
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        def num(x: Fraction) -> int | float:
            return int(x) if x.denominator == 1 else float(x)

        return {"workload": self.workload, "arch": self.arch, "unit": self.unit, "lanes": self.lanes,
                "units": self.units, "ops": dict(self.ops), "compute_cycles": self.compute_cycles,
                "cycles": self.cycles, "bound_by": self.bound_by, "energy_unit": self.energy_unit,
                "energy_pj": {"total": self.energy_pj, "vector": self.vector_energy_pj,
                              "levels": {lv.name: lv.energy_pj for lv in self.levels},
                              "networks": {nw.level: nw.energy_pj for nw in self.networks}},
                "networks": {nw.level: {"busiest_link": nw.busiest, "busiest_words": nw.busiest_words,
                                        "cycles": nw.cycles, "energy_pj": nw.energy_pj, "word_hops": nw.word_hops}
                             for nw in self.networks},
                "levels": {lv.name: {"instances": lv.instances, "utilized": lv.utilized, "leak_pj": lv.leak_pj,
                                     "cycles": lv.cycles, "limit": lv.limit, "energy_pj": lv.energy_pj,
                                     "tensors": {t: {"reads": num(s.reads), "fills": num(s.fills),
                                                     "updates": num(s.updates), "energy_pj": s.energy_pj}
                                                 for t, s in lv.tensors.items()}}
                           for lv in self.levels}}


def simulate_vector(job: VectorJob, workload: str = "") -> VectorResult:
    """The counts, cycles and energy of ``job`` (the model is this module's docstring)."""
    arch = job.arch
    vec = arch.vector
    V = vec.level
    units = arch.levels[V].instances
    acc: dict[int, dict[str, list[int]]] = {}  # level -> tensor -> [reads, fills, updates], all instances

    def add(i: int, t: str, k: int, words: int) -> None:
        acc.setdefault(i, {}).setdefault(t, [0, 0, 0])[k] += words

    crossed, nets = [], {}  # network level -> [down link loads, up link loads, per-tensor traffic]
    for vt in job.tensors:
        w = vt.words
        if vt.is_output:
            add(V, vt.name, 2, w)
            if vt.home < V:
                add(V, vt.name, 0, w)
                add(vt.home, vt.name, 2, w)
        else:
            add(V, vt.name, 0, w)
            if vt.home < V:
                add(vt.home, vt.name, 0, w)
                add(V, vt.name, 1, w)
        for j in range(vt.home, V):
            if arch.levels[j].network is None:
                continue
            if j + 1 != V:  # the unit sits deeper than the network's children: not modelled
                crossed.append(arch.levels[j].name)
                continue
            down = _shares(arch, j, vt.words)
            e = nets.setdefault(j, [Counter(), Counter(), {}])
            (e[1] if vt.is_output else e[0]).update(down)
            hops = sum(down.values())
            e[2][vt.name] = TensorTraffic(0 if vt.is_output else vt.words, vt.words if vt.is_output else 0,
                                          0 if vt.is_output else hops, hops if vt.is_output else 0,
                                          hops * arch.levels[j].instances * arch.levels[j].network.energy_pj_per_word_hop)
    crossed = tuple(dict.fromkeys(crossed))
    if crossed:
        warnings.warn(f"{job.einsum} on the vector unit {vec.name}: the network(s) of {', '.join(crossed)} between "
                      f"its tensors' homes and {arch.levels[V].name} are not costed", EinarrayWarning, stacklevel=2)
    lane_cycles = sum(n * vec.cycles.get(a, 1) for a, n in job.ops.items())
    compute = -(-lane_cycles // (vec.lanes * units))
    level_cycles, per_level = {}, {}
    for i, tens in acc.items():
        lv = arch.levels[i]
        n = lv.instances
        per = {t: (0, Fraction(0), Fraction(r, n), Fraction(f, n), Fraction(u, n)) for t, (r, f, u) in tens.items()}
        level_cycles[i], per_level[i] = level_bound(lv, per), per
    networks = []
    for j, (down, up, tens) in sorted(nets.items()):
        lvj, net = arch.levels[j], arch.levels[j].network
        busiest, words = busiest_link(net, down, up)
        networks.append(NetworkStats(lvj.name, net.topology, arch.fanout(j), net.source, lvj.instances, tens,
                                     busiest, words, float(net.link_words), math.ceil(words / net.link_words), 0,
                                     sum(t.energy_pj for t in tens.values())))
    cycles = max([compute] + [c for c, _ in level_cycles.values()] + [nw.cycles for nw in networks])
    levels = [level_stats(lv, per_level.get(i, {}), lv.instances, cycles, level_cycles.get(i, (0, "bandwidth")),
                          job.tensors[-1].name) for i, lv in enumerate(arch.levels)]
    ve = sum(n * vec.energy[a] for a, n in job.ops.items())
    total = ve + sum(lv.energy_pj for lv in levels) + sum(nw.energy_pj for nw in networks)
    return VectorResult(workload or job.einsum, arch.name, vec.name, vec.lanes, units, dict(job.ops), compute,
                        cycles, ve, tuple(levels), total, arch.energy_unit, arch.clock_hz, tuple(networks), crossed)


def _shares(arch, j: int, words: int) -> Counter:
    """Link loads on level j's network when each of its children (the unit's instances) takes an
    even share of ``words`` (``ceil(words / children)``, the last the remainder): each share a
    unicast along :mod:`sim.network`'s routes."""
    fx, fy = arch.fanout(j)
    n = fx * fy
    per = -(-words // n)
    S, off = {}, 0
    for y in range(fy):
        for x in range(fx):
            k = max(0, min(per, words - off))
            S[(x, y)] = ((1 << k) - 1) << off
            off += k
    return _loads(S, arch.levels[j].network, (fx, fy))


def vector_text(res: VectorResult) -> str:
    """The vector Einsum's lines for ``einarray simulate``."""
    u = res.energy_unit
    ops = ", ".join(f"{a} {n:,}" for a, n in res.ops.items())
    why = "bound by the vector unit" if res.bound_by == "the vector unit" else f"bound by {res.bound_by}"
    out = [f"{res.workload} on {res.unit} ({res.units} x {res.lanes} lanes): {res.cycles:,} cycles ({why}; "
           f"operations {res.compute_cycles:,}), {ops}; energy {res.energy_pj:,.2f} {u} (operations "
           f"{res.vector_energy_pj:,.2f})"]
    rows = [("level", "tensor", "inst", "reads", "fills", "updates", f"energy {u}")]
    for lv in res.levels:
        for t, s in lv.tensors.items():
            rows.append((lv.name, t, str(lv.utilized), f"{float(s.reads):,.6g}", f"{float(s.fills):,.6g}",
                         f"{float(s.updates):,.6g}", f"{s.energy_pj:,.2f}"))
    w = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(w[k]) if k < 2 else c.rjust(w[k]) for k, c in enumerate(r)))
        if j == 0:
            out.append("  ".join("-" * x for x in w))
    for nw in res.networks:
        out.append(f"network {nw.level} -> the units ({nw.topology}; each unit's share a unicast): busiest link "
                   f"{nw.busiest} {nw.busiest_words:,} words at {nw.link_words:g}/cycle = {nw.cycles:,} cycles; "
                   f"{nw.word_hops:,} word-hops, energy {nw.energy_pj:,.2f} {u}")
    if res.bypassed_networks:
        out.append(f"not costed: the network(s) of {', '.join(res.bypassed_networks)} on the path to the unit")
    return "\n".join(out)


__all__ = ["VectorResult", "simulate_vector", "vector_text"]
