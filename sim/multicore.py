"""Several cores (``arch.cores``, :mod:`mapping.cores`): the phases in which they split the
instance loop, each simulated as one core at its fair share of the backing store (the
model and why it is exact: :mod:`sim.engine`, "Several cores")."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mapping.spec import Config

from .timebase import TIMELINE_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Sim


def phase_config(sim: "Sim", n: int, instances: int) -> tuple[Config, int]:
    """One core's view of ``n`` cores running ``instances`` each (see "Several cores"):
    its config (the backing store at its fair share, one core) and its network latency."""
    from dataclasses import replace

    from mapping.cores import ONE

    arch, noc = sim.arch, sim.arch.cores.noc
    dram = arch.levels[0]
    rbw, wbw = Fraction(dram.read_bw), Fraction(dram.write_bw)
    lat = 0
    if noc is not None:
        cr, cw = noc.link_cap(n, "read"), noc.link_cap(n, "write")
        rbw = rbw if cr is None else min(rbw, cr)
        wbw = wbw if cw is None else min(wbw, cw)
        lat = max(noc.hops(k) for k in range(n)) * noc.hop_latency
    one = replace(arch, levels=(replace(dram, read_bw=rbw / n, write_bw=wbw / n),) + arch.levels[1:], cores=ONE)
    return replace(sim.cfg, arch=one, instances=instances), lat


def run_cores(sim: "Sim", groups) -> None:
    """Every group in its phases across the cores (see "Several cores")."""
    from .engine import Sim

    arch = sim.arch
    n_cores, noc = arch.cores.count, arch.cores.noc
    q, r = divmod(sim.cfg.instances, n_cores)
    t = Fraction(0)
    tot: dict[tuple, Any] = {}
    phases = []
    for g in groups:
        start = t
        dram = [0, 0]
        for n, inst in ((n_cores, q), (r, 1)):
            if not n or not inst:
                continue
            cfg1, lat = phase_config(sim, n, inst)
            sub = Sim(cfg1, fast=sim.fast, trace=sim._want_trace, latency=lat)
            cyc = Fraction(sub.run_alone(g))
            words = 0
            for k, x in sub.counters.v.items():
                tot[k] = tot.get(k, 0) + (x if k[0] in TIMELINE_KEYS else x * n)
                if k[0] in ("dram_read", "dram_write"):
                    dram[k[0] == "dram_write"] += x * n
                    words += x
            if noc is not None:
                tot[("noc_word_hops", "all")] = (tot.get(("noc_word_hops", "all"), 0)
                                                 + words * sum(noc.hops(k) for k in range(n)))
            if sub.trace is not None:
                sim.trace.extend((row[0], f"{row[1]} (cores 0-{n - 1})",
                                   *(None if x is None else x + t for x in row[2:8]), *row[8:])
                                  for row in sub.trace)
            for tn, ent in sub.indirect.items():
                mine = sim.indirect.setdefault(tn, {"kind": ent["kind"], "groups": {}})
                mine["groups"].update(ent["groups"])
            sim.steps += sub.steps
            sim.steps_skipped += sub.steps_skipped
            phases.append({"group": g.name, "cores": n, "instances_each": inst, "cycles": cyc,
                           "latency": lat, "read_bw_each": cfg1.arch.levels[0].read_bw,
                           "write_bw_each": cfg1.arch.levels[0].write_bw})
            t += cyc
        sim.group_cycles[g.name] = t - start
        sim.group_dram[g.name] = (dram[0], dram[1])
    sim.counters.v = tot
    sim._end = t
    sim.cores = {"count": n_cores, "instances_per_core": [q + (k < r) for k in range(n_cores)],
                  "phases": phases}
    sim._finished = True


__all__ = ["phase_config", "run_cores"]
