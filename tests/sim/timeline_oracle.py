"""The enumerating oracle of :mod:`sim.nest_timeline`: every step, explicit point sets, absolute times.

Per step (temporal loop values, outermost first), each level whose tiles change gets its
transfer: per tensor it keeps below its backing store, every instance's tile as a point set, its
delta by Timeloop's reset-on-stride-change rule, and for the output the displaced words written
back and the new words that instance has held before (tracked as the set of every output word
it ever held) read back. A parent's words are the union over the instances it fans out to. The
schedule is the model's definition with absolute times and nothing dropped: a transfer starts at
the latest of its level's previous transfer's end, the end of residency r - 1 (single buffered)
or r - 2 (double buffered), and every parent's latest transfer end; a step starts when the
previous one ended and every level's latest transfer is done (the wait charged back along the
chain of transfers that ended last), and takes the cycles its reads and
update need (its output read only where that MAC instance wrote the word before). No closed
form, no memo, no clamping: only for small nests.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

from mapping.nest_mapping import NestConfig
from sim.nest import build_loops
from sim.nest_timeline import Timeline
from tests.sim.network_oracle import _tree


def _cdiv(words: int, bw) -> int:
    return 0 if bw is None or not words else math.ceil(words / bw)


def oracle_timeline(cfg: NestConfig) -> tuple[Timeline, Counter]:
    """The timeline, and the words each (level, tensor) took in over the run (per instance)."""
    loops = build_loops(cfg)
    lv, n = cfg.arch.levels, len(cfg.levels)
    T = [j for j, lp in enumerate(loops) if not lp.spatial]
    S = [j for j, lp in enumerate(loops) if lp.spatial]

    def points(op, vals: dict[int, int], inner_of: int) -> set:
        """``op``'s coordinates over the loops of levels >= inner_of, the other loops at ``vals``."""
        free = [j for j, lp in enumerate(loops) if lp.level >= inner_of]
        pts = set()
        for fv in itertools.product(*[range(loops[j].factor) for j in free]):
            v = dict(vals)
            v.update(zip(free, fv))
            pts.add(tuple(k + sum(c * loops[j].stride * v[j] for r, c in terms for j in range(len(loops))
                                  if loops[j].rank == r) for terms, k in zip(op.terms, op.consts)))
        return pts

    moves = {c: [] for c in range(n)}
    for op in cfg.operands:
        root = cfg.root(op.name)
        chain = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep and i >= root]
        for par, c in zip(chain, chain[1:]):
            moves[c].append((op, par))
    inner = {op.name: [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep][-1] for op in cfg.operands}

    def instances(below: int, above: int):
        """Spatial-loop value tuples of the loops at levels in [above, below) (the rest at 0)."""
        js = [j for j in S if above <= loops[j].level < below]
        for vs in itertools.product(*[range(loops[j].factor) for j in js]):
            yield dict(zip(js, vs))

    def net_loads(j: int, sets: dict) -> tuple[Counter, int]:
        """Per-link words and depth on network j: ``sets`` maps an instance below j (its spatial
        loop values) to the words it needs; each child position needs its subtree's, and each
        word is carried once per link of its explicit tree (tests/sim/network_oracle.py)."""
        net = lv[j].network
        fx = [k for k in S if loops[k].level == j and loops[k].spatial == "X"]
        fy = [k for k in S if loops[k].level == j and loops[k].spatial == "Y"]
        at: dict = {}
        for sv, words in sets.items():
            sv = dict(sv)
            if any(v and loops[k].level < j for k, v in sv.items()):
                continue  # another instance of j
            x = y = 0
            for k in fx:
                x = x * loops[k].factor + sv.get(k, 0)
            for k in fy:
                y = y * loops[k].factor + sv.get(k, 0)
            at.setdefault((x, y), set()).update(words)
        loads = Counter()
        for e in set().union(*at.values()) if at else ():
            for link in _tree(net, {xy for xy, w in at.items() if e in w}, cfg.arch.fanout(j)):
                loads[link] += 1
        used = [xy for xy, w in at.items() if w]
        if net.topology == "bus":
            return loads, 1 if used else 0
        # the deepest destination: the longest of the explicit paths to the routers used
        return loads, max((len(_tree(net, {xy}, cfg.arch.fanout(j))) for xy in used), default=0)

    def level_time(L: int, r: dict, w: dict, amortized: bool = False) -> int:
        """Level L's bandwidths, ports and banks for these words (per tensor), blocks whole per
        transfer or, for a MAC step (``amortized``), fractional."""
        lvl = lv[L]
        t = max(_cdiv(sum(r.values()), lvl.read_bw), _cdiv(sum(w.values()), lvl.write_bw))
        B = lvl.block_size
        blocks = {}
        for name in set(r) | set(w):
            a, b = r.get(name, 0), w.get(name, 0)
            blocks[name] = Fraction(a + b, B) if amortized else math.ceil(a / B) + math.ceil(b / B)
        if lvl.ports is not None:
            t = max(t, math.ceil(Fraction(sum(blocks.values())) / lvl.ports))
        if lvl.banks is not None:
            bk = lvl.banks
            if bk.assign is None:
                worst = Fraction(sum(blocks.values()), bk.count)
                worst = worst if amortized else math.ceil(worst)
            else:
                each = [Fraction(a, bk.assign[cfg.arch_name(name)]) for name, a in blocks.items()]
                worst = max([e if amortized else math.ceil(e) for e in each], default=0)
            t = max(t, math.ceil(worst * B / bk.bandwidth))
        return t

    def net_cycles(j: int, down: Counter, up: Counter) -> int:
        net = lv[j].network
        if net.topology == "bus":
            return _cdiv(down["bus"] + up["bus"], net.link_words)
        return _cdiv(max(list(down.values()) + list(up.values()) + [0]), net.link_words)

    state: dict = {}  # (c, tensor, instance) -> [previous tile, its translation key, stride]
    held: dict = {}  # (c, instance) -> every output word held
    mac_held: dict = {}  # compute instance -> output words written
    F = [0] * n  # latest transfer end per level
    info = {}  # level -> (its latest transfer's start, the parent whose transfer set it)
    res_start = [0] * n  # start (event time) of each level's current residency
    words_in = Counter()
    now = 0
    stalls = Counter()
    compute = 0
    steps = 0
    tvals_prev = None
    for tv in itertools.product(*[range(loops[j].factor) for j in T]):
        steps += 1
        tvals = dict(zip(T, tv))
        if tvals_prev is None:
            p_level = -1
        else:
            p = next(j for j in T if tvals[j] != tvals_prev[j])
            p_level = loops[p].level
        for c in range(p_level + 1, n):
            if not moves[c]:
                res_start[c] = now
                continue
            io: dict = {}  # level -> (words read, words written) per tensor
            nets: dict = {}  # network level -> [down loads, up loads, depth]
            for op, par in moves[c]:
                per_parent: dict = {}
                new_sets, back_sets = {}, {}
                for sv in instances(c, 0):
                    inst = tuple(sorted(sv.items()))
                    vals = dict(tvals)
                    vals.update(sv)
                    tile = points(op, vals, c)
                    key = (c, op.name, inst)
                    st = state.get(key)
                    prev = None
                    if st is None:
                        delta, first = tile, True
                        state[key] = st = [tile, None, None]
                    else:
                        prev, _, stride = st
                        # the translation is the difference of any point's position: use min points
                        t = tuple(a - b for a, b in zip(min(tile), min(prev)))
                        if stride is None or t == stride:
                            delta = tile - prev
                            st[2] = t
                        else:
                            delta = tile
                            st[2] = None
                        st[0] = tile
                        first = False
                    pkey = tuple(sorted((j, v) for j, v in sv.items() if loops[j].level < par))
                    agg = per_parent.setdefault(pkey, {"in": set(), "back": set(), "n_in": 0, "n_back": 0})
                    if op.is_output:
                        h = held.setdefault((c, inst), set())
                        again = delta & h  # new words this instance wrote before: read back
                        h |= tile
                        if not first:
                            displaced = prev - tile if st[2] is not None else prev
                            agg["back"] |= displaced
                            agg["n_back"] = len(displaced)
                            back_sets[inst] = displaced
                        agg["in"] |= again
                        agg["n_in"] = len(again)
                        new_sets[inst] = again
                    else:
                        agg["in"] |= delta
                        agg["n_in"] = len(delta)
                        new_sets[inst] = delta
                for j in range(par, c):
                    if lv[j].network is None:
                        continue
                    e = nets.setdefault(j, [Counter(), Counter(), 0])
                    for k, sets in ((0, new_sets), (1, back_sets)):
                        loads, dep = net_loads(j, sets)
                        e[k].update(loads)
                        e[2] = max(e[2], dep)
                # per instance words (every instance alike), unions per parent instance
                a = next(iter(per_parent.values()))
                words_in[(c, op.name)] += a["n_in"]
                for lvl, k, words in ((c, 1, a["n_in"]), (c, 0, a["n_back"]), (par, 0, len(a["in"])),
                                      (par, 1, len(a["back"]))):
                    side = io.setdefault(lvl, ({}, {}))[k]
                    side[op.name] = side.get(op.name, 0) + words
            x = max([net_cycles(j, a, b) + lv[j].network.hop_latency * d for j, (a, b, d) in nets.items() if a or b]
                    + [level_time(L, r, w) for L, (r, w) in io.items()])
            # single: residency r - 1 ends now; double: r - 2 ended when r - 1 started
            slot = res_start[c] if lv[c].double_buffered else now
            start, cause = max(F[c], slot), None
            for par in sorted({par for _, par in moves[c]}):
                if F[par] > start:
                    start, cause = F[par], par
            F[c] = start + x
            info[c] = (start, cause)
            res_start[c] = now
        # the step
        go = max([now] + F)
        if go > now:  # charged along the chain of transfers that ended last
            c, hi = max(range(n), key=lambda c: (F[c], -c)), go
            while True:
                start, cause = info[c]
                stalls[c] += hi - max(start, now)
                if cause is None or start <= now:
                    break
                c, hi = cause, start
        # the MACs' reads and update: per innermost level, the union over the MACs it feeds
        reads: dict = {}  # level -> words read per tensor this step
        step_nets: dict = {}
        for op in cfg.operands:
            s = inner[op.name]
            pts = {}
            need, again = {}, {}
            for sv in instances(n, 0):
                vals = dict(tvals)
                vals.update(sv)
                pt = next(iter(points(op, vals, n)))
                need[tuple(sorted(sv.items()))] = {pt}
                if op.is_output and pt in mac_held.get(tuple(sorted(sv.items())), ()):
                    again[tuple(sorted(sv.items()))] = {pt}
                pkey = tuple(sorted((j, v) for j, v in sv.items() if loops[j].level < s))
                pts.setdefault(pkey, [set(), set()])
                if op.is_output:
                    inst = tuple(sorted(sv.items()))
                    h = mac_held.setdefault(inst, set())
                    if pt in h:
                        pts[pkey][1].add(pt)
                    h.add(pt)
                pts[pkey][0].add(pt)
            for j in range(s, n):
                if lv[j].network is None:
                    continue
                e = step_nets.setdefault(j, [Counter(), Counter()])
                if op.is_output:
                    e[1].update(net_loads(j, need)[0])
                    e[0].update(net_loads(j, again)[0])
                else:
                    e[0].update(net_loads(j, need)[0])
            a = next(iter(pts.values()))
            if op.is_output:
                reads.setdefault(s, {})[op.name] = len(a[1])  # the read-modify-write's reads
                upd, out_level, out_name = len(a[0]), s, op.name
            else:
                reads.setdefault(s, {})[op.name] = len(a[0])
        c0 = max([1] + [level_time(L, r, {out_name: upd} if L == out_level else {}, True)
                        for L, r in reads.items()] + [level_time(out_level, {}, {out_name: upd}, True)]
                 + [net_cycles(j, a, b) for j, (a, b) in step_nets.items()])
        now = go + c0
        compute += c0
        tvals_prev = tvals
    drain = 0
    for c in range(n - 1, -1, -1):
        for op, par in moves[c]:
            if op.is_output:
                vals = {j: 0 for j in range(len(loops))}
                w = len(points(op, vals, c))
                X = set()
                for sv in instances(c, par):
                    v = dict(vals)
                    v.update(sv)
                    X |= points(op, v, c)
                tiles = {}
                for sv in instances(c, 0):
                    v = dict(vals)
                    v.update(sv)
                    tiles[tuple(sorted(sv.items()))] = points(op, v, c)
                ups = []
                for j in range(par, c):
                    if lv[j].network is not None:
                        loads, dep = net_loads(j, tiles)
                        ups.append(net_cycles(j, Counter(), loads) + lv[j].network.hop_latency * dep)
                drain += max([level_time(c, {op.name: w}, {}), level_time(par, {}, {op.name: len(X)})] + ups)
    st = {lv[c].name: v for c, v in sorted(stalls.items())}
    return Timeline(compute + sum(st.values()) + drain, steps, (0, 0), compute, st, drain), words_in
