"""The text of a memory-hierarchy result (:mod:`sim.nest`): the mapping as a Timeloop
``map.txt``-style loop nest per level (:func:`map_text`) and the per-level table with the
summary line, networks and areas (:func:`table_text`)."""

from __future__ import annotations

from fractions import Fraction

from mapping.nest_mapping import NestConfig

from .nest import NestResult, build_loops, nest_counts


def map_text(cfg: NestConfig) -> str:
    """The mapping as Timeloop prints it in ``timeloop-model.map.txt``: per level its kept
    tensors with their tile sizes, then its loops (factor-1 loops omitted), indented."""
    loops = build_loops(cfg)
    raw = nest_counts(cfg, loops)
    lines: list[str] = []
    depth = 0
    n = len(cfg.levels)
    for i, lm in enumerate(cfg.levels):
        lvl = [lp for lp in loops if lp.level == i]
        tiles = " ".join(f"{o.name}:{k} ({k})" for o in cfg.operands if o.name in lm.keep
                         for k in [raw[(i, o.name)][0]])
        head = f"{lm.level} [ {tiles} ]" if tiles else f"{lm.level} [ ]"
        lines.append(head + " ")
        if not lvl and i < n - 1:
            continue
        lines.append("-" * len(head))
        for lp in lvl:
            sp = f" (Spatial-{lp.spatial})" if lp.spatial else ""
            lines.append("|" + " " + "  " * depth + f"for {lp.rank} in [0:{lp.factor}){sp}")
            depth += 1
        if i < n - 1:
            lines.append("")
    lines.append("|" + " " + "  " * depth + "<< Compute >>")
    if cfg.tensors:  # not in Timeloop's map.txt: the names the arch's keeps know the tensors by
        lines.append("tensors: " + ", ".join(f"{t} as {a}" for t, a in cfg.tensors.items()))
    if cfg.pad:
        lines.append("padded: " + ", ".join(f"{r} {n} -> {cfg.ranks[r]}" for r, n in cfg.pad.items()))
    return "\n".join(lines)


def table_text(res: NestResult) -> str:
    """The per-level table (Timeloop-like: per instance counts, energy over all instances)."""
    def f(x: Fraction) -> str:
        return f"{int(x):,}" if x.denominator == 1 else f"{float(x):,.2f}"

    u = res.energy_unit
    rows = [("level", "tensor", "inst", "tile", "reads", "fills", "updates", f"energy {u}")]
    for lv in res.levels:
        for t, s in lv.tensors.items():
            rows.append((lv.name, t, str(lv.utilized), str(s.tile), f(s.reads), f(s.fills), f(s.updates),
                         f"{s.energy_pj:,.2f}"))
        rows.append((lv.name, "(leak)", str(lv.instances), "", "", "", "", f"{lv.leak_pj:,.2f}"))
    rows.append(("compute", "MAC", str(res.macs_utilized), "", f"{res.computes:,}", "", "",
                 f"{res.mac_energy_pj:,.2f}"))
    w = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    why = "compute-bound" if res.bound_by == "compute" else f"bound by {res.bound_by}"
    if res.network_latency:
        why += f", + {res.network_latency:,} cycles network latency"
    out = [f"{res.workload} on {res.arch}: {res.cycles:,} cycles ({why}; compute {res.compute_cycles:,}), "
           f"{res.computes:,} MACs on {res.macs_utilized} of {res.mac_instances} MACs (utilization "
           f"{res.utilization:.2%}, {res.gflops:.2f} GFLOPs), energy {res.energy_pj:,.2f} {u} "
           f"({res.energy_pj / res.computes:.4f} {u}/MAC), EDP "
           + (f"{res.edp_j_cycle:.3g} J*cycle" if u == "pJ" else f"{res.energy_pj * res.cycles:.3g} {u}*cycle")]
    if res.padding:
        pads = ", ".join(f"{r} {a} -> {b}" for r, (a, b) in res.padding.items())
        out[0] += (f"; padded ({pads}): {res.useful_computes:,} of the MACs are the Einsum's "
                   f"({res.useful_computes / res.computes:.2%}), useful utilization {res.useful_utilization:.2%}")
    tl = res.timeline
    if tl is not None and tl.cycles != res.compute_cycles:
        lo, hi = tl.step_cycles
        per = f"{lo} cycle{'s' * (lo != 1)}" if lo == hi else \
            f"{lo} cycle{'s' * (lo != 1)} before the output's first write, {hi} after"
        parts = [f"{tl.compute:,} MAC steps ({tl.steps:,} steps at {per})"]
        parts += [f"{v:,} waiting for {k}" for k, v in tl.stalls.items()]
        parts += [f"{tl.drain:,} drain"] if tl.drain else []
        buf = ", ".join(f"{k} {v}" for k, v in tl.buffering.items())
        out.append(f"timeline: {tl.cycles:,} cycles = " + " + ".join(parts) + f"; buffering: {buf} "
                   f"(double_buffered); Timeloop's bound: {res.bound_cycles:,} cycles")
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(w[k]) if k < 2 else c.rjust(w[k]) for k, c in enumerate(r)))
        if j == 0:
            out.append("  ".join("-" * x for x in w))
    for nw in res.networks:
        src = f", source {nw.source}" if nw.source is not None else ""
        tens = "; ".join(f"{t} {s.words_out:,} down / {s.words_in:,} up, {s.word_hops:,} word-hops, "
                         f"{s.energy_pj:,.2f} {u}" for t, s in nw.tensors.items() if s.word_hops or s.words_out)
        out.append(f"network {nw.level} -> children ({nw.topology} {nw.fanout[0]}x{nw.fanout[1]}{src}; per "
                   f"instance, x{nw.utilized}): {tens or 'no traffic'}; busiest link {nw.busiest} "
                   f"{nw.busiest_words:,} words at {nw.link_words:g}/cycle = {nw.cycles:,} cycles; latency "
                   f"{nw.latency:,} cycles; energy {nw.energy_pj:,.2f} {u}")
    parts = [(lv.name, lv.area_um2, lv.component) for lv in res.levels] + [("compute", res.mac_area_um2,
                                                                           res.mac_component)]
    if res.has_vector:
        parts.append(("vector", res.vector_area_um2, None))
    if any(a is not None for _, a, _ in parts):
        areas = ", ".join(f"{n} {'?' if a is None else f'{a / 1e6:,.4g} mm^2'}" + (f" ({c})" if c else "")
                          for n, a, c in parts)
        total = res.area_um2
        tops_mm2 = "" if total is None else \
            f", {res.ops['total'] / res.cycles * res.clock_hz / 1e12 / (total / 1e6):.4g} TOPS/mm^2"
        out.append(f"area (all instances): {areas}; total {'unknown' if total is None else f'{total / 1e6:,.4g} mm^2'}"
                   f"{tops_mm2}" + ("" if res.tops_per_w is None or u != "pJ" else f"; {res.tops_per_w:.4g} TOPS/W"))
    return "\n".join(out)


__all__ = ["map_text", "table_text"]
