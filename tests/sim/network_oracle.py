"""The enumerating oracle of :mod:`sim.network`: every tile, delta and multicast tree built
element by element (exact iteration, ``counting: {extrapolate: false}`` nests only).

Per tensor and network level j: each child instance's tiles in time order with Timeloop's
stride rule give its deltas (the compute level: its point at every MAC); per (instance of j,
time step) each element's destination set is the j-children whose subtree's deltas hold it, and
its tree is built as a set of directed links from XY paths (a mesh) or one transfer (a bus).
Independent of sim.network's per-link unions of bitmasks: here each element's tree is explicit.
"""

from __future__ import annotations

import math
from itertools import product

from mapping.nest_mapping import NestConfig
from sim.nest import build_loops


def _xy_path(src: tuple[int, int], dst: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    (x, y), (dx, dy) = src, dst
    out = []
    while x != dx:
        nx = x + (1 if dx > x else -1)
        out.append(((x, y), (nx, y)))
        x = nx
    while y != dy:
        ny = y + (1 if dy > y else -1)
        out.append(((x, y), (x, ny)))
        y = ny
    return out


def _ring_path(src: tuple[int, int], dst: tuple[int, int], fan: tuple[int, int]) -> list:
    """The links from ``src`` to ``dst`` on a ring of the routers row by row, the shorter way
    round (clockwise on a tie), walked hop by hop."""
    fx, fy = fan
    N = fx * fy
    s, t = src[0] + fx * src[1], dst[0] + fx * dst[1]
    step = 1 if (t - s) % N <= (s - t) % N else -1
    out, p = [], s
    while p != t:
        q = (p + step) % N
        out.append(((p % fx, p // fx), (q % fx, q // fx)))
        p = q
    return out


def _tree(net, dests: set[tuple[int, int]], fan: tuple[int, int] | None = None) -> set:
    if net.topology == "bus":
        return {"bus"}
    if net.topology == "ring":
        return {link for d in dests for link in _ring_path(net.source, d, fan)}
    return {link for d in dests for link in _xy_path(net.source, d)}


def oracle_network(cfg: NestConfig) -> dict[str, dict[str, tuple[int, int, int, int]]]:
    """Per network level and tensor: (words_out, words_in, hops_out, hops_in) per instance."""
    assert not cfg.extrapolate
    loops, n = build_loops(cfg), len(cfg.levels)
    out = {}
    for j, lv in enumerate(cfg.arch.levels):
        net = lv.network
        if net is None:
            continue
        res = {}
        for op in cfg.operands:
            keepers = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep]
            c = min([i for i in keepers if i > j] + [n])
            outer = [lp for lp in loops if lp.level < c]
            inner = [lp for lp in loops if lp.level >= c]
            coef = [dict(t) for t in op.terms]

            def coords(pairs):
                pairs = list(pairs)
                return tuple(sum(cf.get(lp.rank, 0) * lp.stride * v for lp, v in pairs) for cf in coef)

            mold = {coords(zip(inner, vals)) for vals in product(*[range(lp.factor) for lp in inner])}
            deltas: dict[tuple, dict[tuple, set]] = {}  # child instance -> time -> delta
            state: dict[tuple, list] = {}
            for vals in product(*[range(lp.factor) for lp in outer]):
                inst = tuple(v for lp, v in zip(outer, vals) if lp.spatial)
                time = tuple(v for lp, v in zip(outer, vals) if not lp.spatial)
                trans = coords(zip(outer, vals))
                S = {tuple(a + b for a, b in zip(m, trans)) for m in mold}
                if c == n:
                    delta = S
                else:
                    st = state.get(inst)
                    if st is None:
                        delta = S
                        state[inst] = [S, trans, None]
                    else:
                        prev, ptrans, stride = st
                        t = tuple(a - b for a, b in zip(trans, ptrans))
                        if stride is None or t == stride:
                            delta, st[2] = S - prev, t
                        else:
                            delta, st[2] = S, None
                        st[0], st[1] = S, trans
                deltas.setdefault(inst, {})[time] = delta
            sp_outer = [lp for lp in outer if lp.spatial]
            fx = [k for k, lp in enumerate(sp_outer) if lp.level == j and lp.spatial == "X"]
            fy = [k for k, lp in enumerate(sp_outer) if lp.level == j and lp.spatial == "Y"]
            above = [k for k, lp in enumerate(sp_outer) if lp.level < j]

            def pos(inst):
                x = y = 0
                for k in fx:
                    x = x * sp_outer[k].factor + inst[k]
                for k in fy:
                    y = y * sp_outer[k].factor + inst[k]
                return x, y

            groups: dict[tuple, dict[tuple, dict]] = {}  # j-instance -> time -> element -> dests
            for inst, seq in deltas.items():
                key = tuple(inst[k] for k in above)
                for time, delta in seq.items():
                    g = groups.setdefault(key, {}).setdefault(time, {})
                    for e in delta:
                        g.setdefault(e, set()).add(pos(inst))
            words = hops = refill_words = refill_hops = 0
            for key, steps in groups.items():
                crossed: dict[tuple, set] = {}
                for time in sorted(steps):
                    for e, dests in steps[time].items():
                        tr = _tree(net, dests, cfg.arch.fanout(j))
                        words += 1
                        hops += len(tr)
                        if op.is_output and e in crossed:
                            refill_words += 1
                        seen = crossed.setdefault(e, set())
                        refill_hops += len(tr & seen) if op.is_output else 0
                        seen |= tr
            inst_j = math.prod(lp.factor for lp in loops if lp.spatial and lp.level < j)
            assert len(groups) == inst_j
            if op.is_output:
                res[op.name] = (refill_words // inst_j, words // inst_j, refill_hops // inst_j, hops // inst_j)
            else:
                res[op.name] = (words // inst_j, 0, hops // inst_j, 0)
        out[lv.name] = res
    return out
