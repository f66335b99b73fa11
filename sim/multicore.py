"""Several cores (``arch.cores``, :mod:`mapping.cores`): the phases in which they split the
instance loop, or a single instance cut along one rank (:func:`split_config`), each
simulated as one core at its fair share of the backing store (the model and why it is
exact: :mod:`sim.engine`, "Several cores")."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mapping.spec import Config

from .timebase import TIMELINE_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Sim


def phase_config(arch: Any, cfg: Config, n: int, instances: int) -> tuple[Config, int]:
    """One core's view of ``n`` cores of ``arch`` running ``instances`` of ``cfg`` each (see
    "Several cores"): its config (the backing store at its fair share, one core) and its
    network latency."""
    from dataclasses import replace

    from mapping.cores import ONE, shared_bandwidth

    rbw, wbw, lat = shared_bandwidth(arch, n)
    dram = replace(arch.levels[0], read_bw=rbw, write_bw=wbw)
    one = replace(arch, levels=(dram,) + arch.levels[1:], cores=ONE)
    return replace(cfg, arch=one, instances=instances), lat


def split_config(cfg: Config, n: int, r: str) -> tuple[Config, Config | None] | None:
    """``cfg`` with its one instance cut along rank ``r`` for ``n`` cores: the config of a
    part of ``size // n`` (every core takes one) and, when ``n`` does not divide the size, of a
    part of one element (``size % n`` cores take one each, after the others: two symmetric
    phases), each with the cascade reloaded at the part's size and the mapping's tiles of the
    rank clipped to it; None (warned) when a part does not load. The cascade must be
    :func:`reloadable` and its mapping one the loader accepts (:func:`run_cores` checks both)."""
    import warnings

    from einsum.errors import ConfigError, EinarrayWarning
    from einsum.load import load_cascade

    c = cfg.cascade
    q, rest = divmod(c.ranks[r].size, n)
    parts = []
    for size in (q, 1) if rest else (q,):
        ranks = {k: (size if k == r else v.size) for k, v in c.ranks.items() if v.kind == "base"}
        try:
            parts.append(_remapped(cfg, load_cascade(c.source, ranks=ranks, params=dict(c.params)), r, size))
        except (ConfigError, OSError) as exc:
            warnings.warn(f"{c.name}: cutting rank {r} across {n} cores failed ({exc}): one core runs it",
                          EinarrayWarning, stacklevel=2)
            return None
    return parts[0], parts[1] if rest else None


def reloadable(c: Any) -> bool:
    """Whether cascade ``c`` names a file (or a library cascade) it can be reloaded from."""
    from einsum.errors import ConfigError
    from einsum.load import resolve

    if not c.source:
        return False
    try:
        resolve(c.source)
    except (ConfigError, OSError):
        return False
    return True


def _remapped(cfg: Config, c2: Any, r: str, size: int) -> Config:
    """``cfg`` on cascade ``c2`` (``cfg``'s at ``size`` elements of rank ``r``): its mapping
    dumped, its tiles of ``r`` clipped to ``size``, and loaded again, with the loader's checks
    (a ConfigError if they fail)."""
    from dataclasses import replace
    from types import MappingProxyType

    from einsum.analysis import op_counts
    from einsum.yamlsrc import Source
    from mapping.dump import mapping_to_data
    from mapping.loader import mapping_from_data

    data = mapping_to_data(cfg.mapping, cfg.cascade, cfg.arch)
    for g in data.get("groups", []):
        for tiles in (g.get("tiles") or {}).values():
            if r in tiles:
                tiles[r] = min(tiles[r], size)
    counts = op_counts(c2)
    m2 = mapping_from_data(data, Source("<a rank split across cores>"), ("mapping",), c2, cfg.arch, counts)
    return replace(cfg, cascade=c2, mapping=m2, counts=MappingProxyType(counts))


def _cuttable(cfg: Config, n: int) -> list[str]:
    """The ranks the one instance of ``cfg`` may be cut along for ``n`` cores
    (:func:`mapping.cores.split_ranks`), or none: when its cascade cannot be reloaded at a
    part's size (warned, once), or its mapping is a draft the loader would refuse whole (the
    default derivation simulates such candidates, a whole layer's tiles in one buffer, say)."""
    import warnings

    from einsum.errors import ConfigError, EinarrayWarning
    from mapping.cores import split_ranks

    c = cfg.cascade
    ranks = split_ranks(c, n)
    if not ranks:
        return []
    if not reloadable(c):
        warnings.warn(f"{c.name}: its rank {ranks[0]} could be cut across {n} cores, but the cascade has no "
                      "file to reload at the part's size: one core runs it", EinarrayWarning, stacklevel=3)
        return []
    try:
        _remapped(cfg, c, ranks[0], c.ranks[ranks[0]].size)
    except ConfigError:
        return []
    return ranks


def run_cores(sim: "Sim", groups) -> None:
    """Every group in its phases across the cores (see "Several cores"). One independent
    instance is cut (:func:`split_config`) along the rank where that is fastest, if faster than
    on one core (splitting makes every core read the operands it does not cut: a
    memory-bound GEMM can lose); ``partition`` says which ran."""
    from mapping.cores import phases

    n_cores, cfg = sim.arch.cores.count, sim.cfg
    plan = tuple((c, i, cfg) for c, i in phases(cfg.instances, cfg.parallel, n_cores))
    best = _plan(sim, groups, None, plan)
    one_instance = (cfg.instances if cfg.parallel is None else cfg.parallel) == 1
    # one independent instance: all cores on its parts (as many in sequence as there are
    # instances), along each rank that may be cut; the fastest, if it beats one core
    for rank in _cuttable(cfg, n_cores) if one_instance else ():
        split = split_config(cfg, n_cores, rank)
        if split is None:
            continue  # this rank's parts do not load (warned): try the next
        whole, single = split
        rest = cfg.cascade.ranks[rank].size % n_cores
        cut_plan = ((n_cores, cfg.instances, whole),) + (((rest, cfg.instances, single),) if rest else ())
        cut = _plan(sim, groups, rank, cut_plan, shared_inputs(cfg, rank) if sim.arch.cores.multicast else ())
        if cut["t"] < best["t"]:
            best, plan = cut, cut_plan
    for k in ("group_cycles", "group_dram", "indirect"):
        getattr(sim, k).update(best[k])
    if sim.trace is not None:
        sim.trace.extend(best["trace"])
    sim.steps += best["steps"]
    sim.steps_skipped += best["skipped"]
    sim.counters.v = best["tot"]
    sim._end = best["t"]
    rank = best["rank"]
    if rank is None:
        per_core = [sum(i for c, i, _ in plan if k < c) for k in range(n_cores)]
        how = "instances"
    else:  # every core works on every instance's parts
        per_core = [cfg.instances] * n_cores
        size = sim.cfg.cascade.ranks[rank].size
        how = f"rank {rank} ({size} = {n_cores} x {size // n_cores}" + (
            f" + {size % n_cores} x 1, a second phase on {size % n_cores} of the cores)" if size % n_cores else ")")
    sim.cores = {"count": n_cores, "instances_per_core": per_core, "phases": best["phases"], "partition": how,
                 "multicast": list(best["shared"])}
    sim._finished = True


def shared_inputs(cfg: Config, rank: str) -> tuple[str, ...]:
    """The inputs of ``cfg``'s cascade that every part of a cut along ``rank`` reads whole (they
    lack the rank), and not through a gather: identical words at the same step on every core."""
    from mapping.footprint import indirect_tensors

    c = cfg.cascade
    gathered, _ = indirect_tensors(c, tuple(e.name for e in c.einsums))
    return tuple(t for t in c.inputs if rank not in c.tensors[t].ranks and t not in gathered)


def _plan(sim: "Sim", groups, rank: str | None, phases_of, shared: tuple[str, ...] = ()) -> dict[str, Any]:
    """The groups run in phases ``phases_of`` ((cores, instances each, config), ...); the
    ``shared`` inputs are multicast (read once for the phase's cores)."""
    from .engine import Sim

    noc = sim.arch.cores.noc
    out: dict[str, Any] = {"t": Fraction(0), "tot": {}, "phases": [], "group_cycles": {}, "group_dram": {},
                           "indirect": {}, "trace": [], "steps": 0, "skipped": 0, "rank": rank,
                           "shared": tuple(shared)}
    tot = out["tot"]
    for g in groups:
        start = out["t"]
        dram = [0, 0]
        for n, inst, base in phases_of:
            cfg1, lat = phase_config(sim.arch, base, n, inst)
            sub = Sim(cfg1, fast=sim.fast, trace=sim._want_trace, latency=lat, shared=(n, frozenset(shared)))
            g1 = g if rank is None else next(x for x in cfg1.mapping.groups if x.name == g.name)
            cyc = Fraction(sub.run_alone(g1))
            words = 0
            for k, x in sub.counters.v.items():
                once = k[0] == "dram_read" and k[1] in shared  # multicast: one read for the n cores
                tot[k] = tot.get(k, 0) + (x if k[0] in TIMELINE_KEYS or once else x * n)
                if k[0] in ("dram_read", "dram_write"):
                    dram[k[0] == "dram_write"] += x if once else x * n
                    words += x
            if noc is not None:
                tot[("noc_word_hops", "all")] = (tot.get(("noc_word_hops", "all"), 0)
                                                 + words * sum(noc.hops(k) for k in range(n)))
            if sub.trace is not None:
                t0 = out["t"]
                out["trace"].extend((row[0], f"{row[1]} (cores 0-{n - 1})",
                                     *(None if x is None else x + t0 for x in row[2:8]), *row[8:])
                                    for row in sub.trace)
            for tn, ent in sub.indirect.items():
                mine = out["indirect"].setdefault(tn, {"kind": ent["kind"], "groups": {}})
                mine["groups"].update(ent["groups"])
            out["steps"] += sub.steps
            out["skipped"] += sub.steps_skipped
            out["phases"].append({"group": g.name, "cores": n, "instances_each": inst, "cycles": cyc,
                                  "latency": lat, "read_bw_each": cfg1.arch.levels[0].read_bw,
                                  "write_bw_each": cfg1.arch.levels[0].write_bw,
                                  **({"part": {rank: base.cascade.ranks[rank].size}} if rank else {})})
            out["t"] += cyc
        out["group_cycles"][g.name] = out["t"] - start
        out["group_dram"][g.name] = (dram[0], dram[1])
    return out


__all__ = ["phase_config", "reloadable", "run_cores", "shared_inputs", "split_config"]
