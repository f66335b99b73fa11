"""Turn a finished :class:`~sim.engine.Sim` into the stable result dictionary.

Keys (``einarray simulate --json``)::

    cycles, latency_s, compute_cycles, compute_only_cycles, clock_hz, instances
        compute_cycles       sum over steps of the step's compute time, including stalls
                             on the on-chip buffer's bandwidth
        compute_only_cycles  the same without any memory stall: sum over steps of
                             (sum over stages of max over units of the units' work), i.e.
                             what the run would take with infinite DRAM and buffer
                             bandwidth (SCALE-Sim's "compute cycles")
    utilization: {UNIT: {busy, pe_util, mac_util, pe_util_compute, mac_util_compute,
                         busy_cycles}}
        busy      fraction of cycles the unit works on something
        pe_util   PE-cycles used / (PEs x cycles) (an element-wise op of c cycles uses
                  c PE-cycles per element; a fold using part of the array counts only
                  the PEs it uses) -- FuseMax's "utilization"; ``cycles`` includes
                  every memory stall
        mac_util  MACs / (peak MACs per cycle x cycles)
        pe_util_compute, mac_util_compute   the same over compute_only_cycles: how well
                  the mapping uses the array while it computes (SCALE-Sim's utilization,
                  MACs / (R x C x compute cycles)); >= the figures above
    traffic: {LEVEL: {reads, writes, read_bytes, write_bytes, bytes, fills, drains,
                      read_bw, write_bw, peak_read_bw, peak_write_bw,
                      tensors: {T: {reads, writes, bytes}}}}
        words; fills = words written into the level from the level above (DRAM side),
        drains = words read out of the level towards it; bandwidths in words per cycle
    cycles_by_cause: {UNIT: cycles, buffer_stall: cycles, dram_stall: cycles}
        whole cycles that sum to ``cycles`` exactly: a step's stage lasts as long as its
        slowest unit, and that unit gets the stage's time; buffer_stall is the time steps
        wait for on-chip bandwidth, dram_stall everything else (compute waiting for the
        backing store, the last write-back). Each exact part is rounded to whole cycles by
        largest remainder (each within one cycle of its exact value)
    energy_pj: {total, compute, memory, leakage, components: {COMPONENT: {ACTION: pJ}},
                tensors: {T: {role, levels: {LEVEL: pJ}}}}
        tensors splits the memory energy by tensor (role input, output or intermediate);
        at the innermost level it includes the compute units' operand reads and result
        writes (``compute_reads``/``compute_writes``); it sums to ``memory``
    edp: energy (pJ) x latency (s)
    einsums: {NAME: {unit, group, cycles, pe_cycles, points, actions, energy_pj,
                     buffer_reads, buffer_writes}}
        points = dense iteration points stepped (x instances); actions = the cascade's
        op counts (which skip points outside a 'where' filter) x instances
    groups: {NAME: {cycles, einsums, dram_reads, dram_writes, dram_bytes}}
        a group's backing-store words (and bytes) moved while it ran; they sum to the
        first level's reads, writes and bytes
    sim: {steps, steps_skipped, fast}
    indirect: {T: {kind, groups: {GROUP: "per row" | "held on chip"}, rows, access_words,
                   dram_reads, dram_writes}}
        tensors accessed through index tensors (einsum.indexing): the source of a gather
        (kind gather) or the target of a scatter (kind scatter) that crosses the backing
        store. "per row": every step moves its gathered (scattered) rows, each in whole
        accesses of ``access_words`` words (the backing store's ``access_bits``), a
        scatter's rows read and written (read-modify-write), no reuse between rows or
        steps; "held on chip": the group's ``hold:`` keeps it in the buffer, so it moves
        once like any held tensor. rows counts the rows moved per row (x instances)

Energy is the sum over actions of count x the arch's table (compute per unit, reads and
writes per level per word) plus leakage per cycle; a per-Einsum energy covers its
compute, buffer and register-file accesses (backing-store traffic is per tensor).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from einsum.ragged import space_points
from mapping.spec import Config

from .engine import Sim


def _f(x: Any) -> float:
    return float(x)


def _i(x: Any) -> int:
    x = Fraction(x)
    if x.denominator != 1:
        raise AssertionError(f"non-integer count {x}")
    return int(x)


def simulate(cfg: Config, *, fast: bool = True, trace: bool = False) -> dict:
    sim = Sim(cfg, fast=fast, trace=trace).run()
    res = collect(cfg, sim)
    if trace:
        res["_trace"] = sim.trace
    return res


def collect(cfg: Config, sim: Sim) -> dict:
    arch, c = cfg.arch, cfg.cascade
    v = sim.counters.v
    end = sim.end_time
    cycles = -((-end.numerator) // end.denominator)
    group_of = {n: g.name for g in cfg.mapping.groups for n in g.einsums}

    # actions per Einsum (exact: points visited / points of the Einsum x op counts)
    actions: dict[str, dict[str, int]] = {}
    for e in c.einsums:
        oc = cfg.counts[e.name]
        em = cfg.mapping.einsums[e.name]
        pts = v.get(("points", e.name), 0)
        if em.free or not oc.points:
            actions[e.name] = {}
            continue
        dense = space_points(c, e.iter_indices)  # a ragged chunk's padding is no point
        actions[e.name] = {a: _i(Fraction(n) * pts / dense) for a, n in oc.counts.items() if n}

    comp: dict[str, dict[str, float]] = {}
    compute_e = 0.0
    per_einsum_e: dict[str, float] = {}
    for e in c.einsums:
        u = cfg.mapping.einsums[e.name].unit
        tab = arch.energy.get(u, {})
        ee = 0.0
        for a, n in actions[e.name].items():
            pj = n * tab[a]
            comp.setdefault(u, {})
            comp[u][a] = comp[u].get(a, 0.0) + pj
            ee += pj
        compute_e += ee
        per_einsum_e[e.name] = ee

    # traffic per level
    lv = arch.levels
    tensors = sorted(c.tensors)
    dram_r = {t: v.get(("dram_read", t), 0) for t in tensors}
    dram_w = {t: v.get(("dram_write", t), 0) for t in tensors}
    buf_r = {t: v.get(("buf_read", t), 0) for t in tensors}
    buf_w = {t: v.get(("buf_write", t), 0) for t in tensors}
    levels: dict[str, dict[str, Any]] = {}

    def level_entry(level, per_t: dict[str, tuple[int, int]], fills: int, drains: int) -> dict:
        reads = sum(r for r, _ in per_t.values())
        writes = sum(w for _, w in per_t.values())
        wb = level.word_bits / 8
        return {"reads": int(reads), "writes": int(writes), "read_bytes": reads * wb,
                "write_bytes": writes * wb, "bytes": (reads + writes) * wb,
                "fills": int(fills), "drains": int(drains),
                "read_bw": reads / cycles if cycles else 0.0, "write_bw": writes / cycles if cycles else 0.0,
                "peak_read_bw": _f(level.read_bw), "peak_write_bw": _f(level.write_bw),
                "tensors": {t: {"reads": int(r), "writes": int(w), "bytes": (r + w) * wb}
                            for t, (r, w) in per_t.items() if r or w}}

    levels[lv[0].name] = level_entry(lv[0], {t: (dram_r[t], dram_w[t]) for t in tensors}, 0, 0)
    levels[lv[1].name] = level_entry(
        lv[1], {t: (buf_r[t] + dram_w[t], buf_w[t] + dram_r[t]) for t in tensors},
        sum(dram_r.values()), sum(dram_w.values()))
    rf_read = sum(x for k, x in v.items() if k[0] == "rf_read")
    rf_write = sum(x for k, x in v.items() if k[0] == "rf_write")
    for i, level in enumerate(lv[2:], start=2):
        innermost = i == len(lv) - 1
        per = {t: (buf_w[t], buf_r[t]) for t in tensors}  # results go up, operands come down
        ent = level_entry(level, per, sum(buf_r.values()), sum(buf_w.values()))
        if innermost:
            ent["reads"] += int(rf_read)
            ent["writes"] += int(rf_write)
            ent["compute_reads"], ent["compute_writes"] = int(rf_read), int(rf_write)
            wb = level.word_bits / 8
            ent["read_bytes"], ent["write_bytes"] = ent["reads"] * wb, ent["writes"] * wb
            ent["bytes"] = (ent["reads"] + ent["writes"]) * wb
            ent["read_bw"] = ent["reads"] / cycles if cycles else 0.0
            ent["write_bw"] = ent["writes"] / cycles if cycles else 0.0
        levels[level.name] = ent

    mem_e = 0.0
    for level in lv:
        tab = arch.energy.get(level.name)
        if not tab:
            continue
        ent = levels[level.name]
        r, w = ent["reads"] * tab["read"], ent["writes"] * tab["write"]
        comp[level.name] = {"read": r, "write": w}
        mem_e += r + w
    tensor_e = _tensor_energy(cfg, levels, v)
    ncores = arch.cores.count
    leak = arch.leakage_pj_per_cycle * cycles * ncores  # every core leaks all the time
    noc = arch.cores.noc
    noc_e = v.get(("noc_word_hops", "all"), 0) * noc.energy_per_word_hop if noc is not None else 0.0
    if noc is not None:
        comp["noc"] = {"transfer": noc_e}
    total = compute_e + mem_e + leak + noc_e
    latency = cycles / arch.clock_hz

    compute_cycles = sum(Fraction(x) for k, x in v.items() if k[0] == "compute")
    compute_only = compute_cycles - sum(Fraction(x) for k, x in v.items() if k[0] == "buf_stall")
    util: dict[str, dict[str, float]] = {}
    for u, unit in arch.units.items():
        busy = v.get(("busy", u), 0)
        pe = v.get(("pe_cycles", u), 0)
        macs = sum(actions[e.name].get("mac", 0) for e in c.einsums if cfg.mapping.einsums[e.name].unit == u)
        # with several cores: over every core's lanes (busy and PE-cycles are summed over cores)
        lanes = unit.lanes * ncores
        peak = lanes * unit.macs_per_pe
        util[u] = {"busy": _f(Fraction(busy) / (ncores * cycles)) if cycles else 0.0,
                   "pe_util": _f(Fraction(pe) / (lanes * cycles)) if cycles else 0.0,
                   "mac_util": _f(Fraction(macs, peak * cycles)) if cycles else 0.0,
                   "pe_util_compute": _f(Fraction(pe) / (lanes * compute_only)) if compute_only else 0.0,
                   "mac_util_compute": _f(Fraction(macs) / (peak * compute_only)) if compute_only else 0.0,
                   "busy_cycles": _f(busy)}

    # per-Einsum breakdown
    einsums: dict[str, dict[str, Any]] = {}
    buf_tab = arch.energy.get(lv[1].name, {"read": 0.0, "write": 0.0})
    rf_tab = arch.energy.get(lv[-1].name, {"read": 0.0, "write": 0.0}) if len(lv) > 2 else None
    for e in c.einsums:
        u = cfg.mapping.einsums[e.name].unit
        br = v.get(("einsum_buf_read", e.name), 0)
        bw = v.get(("einsum_buf_write", e.name), 0)
        pts = v.get(("points", e.name), 0)
        ee = per_einsum_e[e.name] + br * buf_tab["read"] + bw * buf_tab["write"]
        if rf_tab is not None and not cfg.mapping.einsums[e.name].free:
            ee += pts * len(e.reads) * rf_tab["read"] + pts * rf_tab["write"]
        einsums[e.name] = {"unit": u, "group": group_of[e.name],
                           "cycles": _f(v.get(("einsum_cycles", e.name), 0)),
                           "pe_cycles": _f(v.get(("einsum_pe", e.name), 0)),
                           "points": int(pts), "actions": actions[e.name], "energy_pj": ee,
                           "buffer_reads": int(br), "buffer_writes": int(bw)}
    groups: dict[str, dict[str, Any]] = {}
    for g in cfg.mapping.groups:
        gr, gw = (_i(x) for x in sim.group_dram[g.name])
        groups[g.name] = {"cycles": _f(sim.group_cycles[g.name]), "einsums": list(g.einsums),
                          "dram_reads": gr, "dram_writes": gw, "dram_bytes": (gr + gw) * lv[0].word_bits / 8}
    out = {
        "workload": c.name, "arch": arch.name, "instances": cfg.instances, "clock_hz": arch.clock_hz,
        "cycles": int(cycles), "cycles_exact": _f(end), "latency_s": latency,
        "compute_cycles": _f(compute_cycles), "compute_only_cycles": _f(compute_only),
        "utilization": util, "traffic": levels,
        "cycles_by_cause": _cycles_by_cause(arch, v, end, cycles),
        "energy_pj": {"total": total, "compute": compute_e, "memory": mem_e, "leakage": leak,
                      "components": comp, "tensors": tensor_e},
        "edp": total * latency,
        "area_um2": arch.total_area_um2,
        "einsums": einsums, "groups": groups,
        "sim": {"steps": sim.steps, "steps_skipped": sim.steps_skipped, "fast": sim.fast},
        "indirect": {t: {"kind": ent["kind"], "groups": dict(ent["groups"]),
                         "rows": _i(v.get(("indirect_rows", t), 0)), "access_words": lv[0].access_words,
                         "dram_reads": _i(dram_r.get(t, 0)), "dram_writes": _i(dram_w.get(t, 0))}
                     for t, ent in sorted(sim.indirect.items())},
    }
    if ncores > 1:
        out["energy_pj"]["noc"] = noc_e
        out["cores"] = _cores_section(arch, sim, v)
    return out


def _cores_section(arch, sim: Sim, v: dict) -> dict[str, Any]:
    """What several cores did (sim.engine, "Several cores"): instances per core, each phase's
    cores, share of the backing store and network latency, and the network's word-hops."""
    noc = arch.cores.noc
    sec: dict[str, Any] = {
        "count": arch.cores.count, "partition": sim.cores["partition"],
        "multicast": sim.cores.get("multicast", []),
        "instances_per_core": sim.cores["instances_per_core"],
        "phases": [{"group": p["group"], "cores": p["cores"], "instances_each": p["instances_each"],
                    "cycles": _f(p["cycles"]), "latency_cycles": p["latency"],
                    "read_bw_each": _f(p["read_bw_each"]), "write_bw_each": _f(p["write_bw_each"]),
                    **({"part": p["part"]} if "part" in p else {})}
                   for p in sim.cores["phases"]],
    }
    if noc is not None:
        sec["noc"] = {"topology": noc.topology, "dims": list(noc.dims), "controller": list(noc.controller),
                      "hops": [noc.hops(k) for k in range(arch.cores.count)],
                      "word_hops": _i(v.get(("noc_word_hops", "all"), 0)),
                      "link_bw": _f(noc.link_bw), "energy_per_word_hop": noc.energy_per_word_hop}
    return sec


def _cycles_by_cause(arch, v: dict, end: Fraction, cycles: int) -> dict[str, int]:
    """``cycles`` split into each unit's compute, buffer and DRAM stalls (whole cycles)."""
    parts = {u: Fraction(v.get(("stage_time", u), 0)) for u in arch.units}
    parts["buffer_stall"] = sum((Fraction(x) for k, x in v.items() if k[0] == "buf_stall"), Fraction(0))
    compute = sum((Fraction(x) for k, x in v.items() if k[0] == "compute"), Fraction(0))
    parts["dram_stall"] = end - compute + (cycles - end)  # the end rounded up to a whole cycle
    if sum(parts.values()) != cycles or min(parts.values()) < 0:
        raise AssertionError(f"cycle split {parts} does not add up to {cycles}")
    return apportion(parts, cycles)


def apportion(parts: dict[str, Fraction], total: int) -> dict[str, int]:
    """Whole numbers summing to ``total`` (the exact sum of ``parts``), each the floor of
    its part or one more (largest remainder first, then the order of ``parts``)."""
    out = {k: math.floor(x) for k, x in parts.items()}
    order = sorted(parts, key=lambda k: -(parts[k] - out[k]))
    for k in order[:total - sum(out.values())]:
        out[k] += 1
    return out


def _tensor_energy(cfg: Config, levels: dict[str, dict[str, Any]], v: dict) -> dict[str, dict[str, Any]]:
    """Memory energy per tensor and level; the innermost level's compute accesses go to the
    tensors the Einsums read (one word per operand per point) and write (one per point)."""
    arch, c = cfg.arch, cfg.cascade
    lv = arch.levels
    rf: dict[str, list[int]] = {}
    if len(lv) > 2:
        for e in c.einsums:
            pts = v.get(("points", e.name), 0)
            if not pts or cfg.mapping.einsums[e.name].free:
                continue
            for t in e.reads:
                rf.setdefault(t, [0, 0])[0] += pts
            rf.setdefault(e.output, [0, 0])[1] += pts
    out: dict[str, dict[str, Any]] = {}
    role = {t: "input" for t in c.inputs} | {t: "output" for t in c.outputs}
    for i, level in enumerate(lv):
        tab = arch.energy.get(level.name)
        if not tab:
            continue
        per = {t: [d["reads"], d["writes"]] for t, d in levels[level.name]["tensors"].items()}
        if i == len(lv) - 1:
            for t, (r, w) in rf.items():
                per.setdefault(t, [0, 0])
                per[t][0] += r
                per[t][1] += w
        for t, (r, w) in sorted(per.items()):
            if r or w:
                d = out.setdefault(t, {"role": role.get(t, "intermediate"), "levels": {}})
                d["levels"][level.name] = r * tab["read"] + w * tab["write"]
    return out
