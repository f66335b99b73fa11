"""The network between a storage level and its spatial children: words, word-hops, energy, the
busiest link's cycle bound and the latency (a level's ``network:``, :class:`mapping.hierarchy.Network`).

The counts it starts from are :mod:`sim.nest`'s (Timeloop's): per tensor t, parent keeper p and
child keeper c (the next inner level keeping t, or the compute level), the parent serves, per
child step, the union over its children of their deltas (a multicast is one read, a spatial
reduction one update). The network of level j (p <= j < c: t may bypass j, its words still cross
j's network) connects one instance of j to its fan-out ``(fx, fy)`` of children, each child
position standing for its whole subtree (the spatial loops of the levels between j and c).

* **Positions.** A child's ``x`` is the mixed-radix number of j's ``spatial.X`` loop indices, the
  first (outermost) loop most significant; ``y`` likewise from ``spatial.Y``. The utilized
  children fill ``[0, prod X) x [0, prod Y)``; the rest of the mesh receives nothing.
* **What crosses.** At each child step (kinds and weights from :func:`sim.nest.level_events`; at
  the compute level one point per MAC), child position x needs ``S_x``: its subtree's deltas, the
  union over the spatial loops between j and c of ``delta + offset``. An element of the step is
  one word for every link of the tree that reaches the positions needing it.
* **Mesh, XY routing, multicast tree.** The parent injects at router ``source = (sx, sy)``; a
  word goes along row sy to the destination's column, then along that column (dimension-order XY
  routing). A multicast's tree is the union of its destinations' XY paths, each link carrying
  the word once, so its hops are ``max(sx, max dx) - min(sx, min dx)`` along row sy plus, per
  destination column, ``max(sy, max dy) - min(sy, min dy)``; a unicast (one destination) pays its
  own path ``|dx - sx| + |dy - sy|``; a destination at the source router takes 0 hops. Counted per
  link: the link from column a to a + 1 >= sx + 1 on row sy carries ``|union of S_x over columns
  > a|`` words per step (mirror image to the left), the link from row b to b + 1 >= sy + 1 in
  column x carries ``|union of S_(x, y) over y > b|`` (mirror image below). A spatial reduction
  of partial sums (the output's updates, going up) runs the same tree backwards on the reverse
  links (YX toward the source), each link carrying one combined partial sum per element: the
  same per-link unions, of the children's update deltas. The output's refills going down (the
  parent's Timeloop reads, U - P) use the forward links: per link, the updates that cross it
  minus the distinct elements that ever cross it (an element's first crossing, zero-initialised,
  is no refill); a refill's depth is taken as the updates' (the deepest child sending them).
  When the parent is j itself these give exactly its Timeloop counts at the source: the union
  over all children summed over the steps is sim.nest's U (reads of an input; updates of the
  output) and the output's refills are U - P, its reads (``tests/sim/test_network.py``; a tensor
  that bypasses j is counted per instance of j, so several j under one parent each count it).
* **Ring.** The children's routers in one cycle, router (x, y) at position ``x + fx y`` (row by
  row), the parent injecting at ``source``: a word reaches each destination the shorter way round
  (clockwise, increasing position, on a tie), a multicast's tree being the union of those paths,
  so the k-th link clockwise from the source carries the union of what the clockwise destinations
  k or more hops away need (likewise counter-clockwise); reductions run it backwards.
* **Bus.** One medium reaching every child in one hop: each word of the union crosses it once
  (a broadcast is one transfer); the output's updates and refills share it with the inputs.
* **Energy** = word-hops (down + up, per network instance) x utilized instances of j x
  ``energy_pj_per_word_hop`` (or ``wire: {estimate, hop_mm}``: the component library's
  :func:`mapping.components.wire_energy_pj` of one word of j's ``word_bits`` over ``hop_mm``).
* **Cycles.** Links are full duplex and directed: the bound is the busiest directed link's words
  over the run divided by ``link_words`` (traffic spread evenly over the run, as sim.nest's
  level bandwidth bounds are; a bus carries both directions, its bound is all its words over
  ``link_words``). It stands beside the per-level bandwidth bounds. The latency, paid once
  (the pipeline's fill and drain), is ``hop_latency x (deepest down destination + deepest up
  source)`` in hops from the source (a bus: 1 each way used).
"""

from __future__ import annotations

from functools import lru_cache

import math
from collections import Counter
from dataclasses import dataclass
from itertools import product

from mapping.nest_mapping import NestConfig
from sim.nest import Loop, _Space, _shift, _sweep, level_events

Link = tuple[tuple[int, int], tuple[int, int]]  # (from, to) routers, pointing away from the source
BUS: Link = ((-1, -1), (-1, -1))


@dataclass(frozen=True)
class TensorTraffic:
    """One tensor on one network instance over the run."""

    words_out: int  # distinct words per step sent down, summed (sim.nest's reads of the parent;
    #                 the output's refills U - P)
    words_in: int  # the same going up (the output's updates U, reduced)
    hops_out: int  # word-hops down
    hops_in: int  # word-hops up
    energy_pj: float  # over the utilized instances

    @property
    def word_hops(self) -> int:
        return self.hops_out + self.hops_in


@dataclass(frozen=True)
class NetworkStats:
    level: str
    topology: str
    fanout: tuple[int, int]
    source: tuple[int, int] | None
    utilized: int  # network instances in use (the level's utilized instances)
    tensors: dict[str, TensorTraffic]
    busiest: str  # the busiest directed link ("(0,0)->(1,0)", "(1,0)->(0,0)", "bus")
    busiest_words: int  # its words over the run (per instance)
    link_words: float
    cycles: int  # ceil(busiest_words / link_words)
    latency: int  # cycles, paid once
    energy_pj: float

    @property
    def word_hops(self) -> int:
        return sum(t.word_hops for t in self.tensors.values())


@lru_cache(maxsize=4096)
def _repunit(mu: int, n: int) -> int:
    """``sum(2**(mu * i) for i in range(n))``, by doubling."""
    if n == 1:
        return 1
    h = _repunit(mu, n // 2)
    r = h | (h << (mu * (n // 2)))
    return r | (1 << (mu * (n - 1))) if n % 2 else r


class _Flat:
    """A tensor's points in one region as one bitmask: component k's bit positions (relative to
    the region's lowest) times ``mult[k]``, the product of the widths before it, so a product of
    component sets is an outer product and a translation inside the region is a shift."""

    def __init__(self, sp: _Space, region: list[int]):
        self.sp = sp
        self.lo = [(m & -m).bit_length() - 1 for m in region]
        self.mult, w = [], 1
        for m, lo in zip(region, self.lo):
            self.mult.append(w)
            w *= m.bit_length() - lo

    def of(self, sets: list[int]) -> int:
        acc = 1
        for k, m in enumerate(sets):
            m >>= self.lo[k]
            if k == 0:
                acc = m
                continue
            # acc (below bit mult[k]) copied to every position p of m, at mult[k] * p. A run of
            # n set bits from p is one product: acc times the repunit sum_i 2**(mult i), i < n,
            # whose copies cannot overlap or carry (acc < 2**mult)
            mu, new = self.mult[k], 0
            while m:
                p = (m & -m).bit_length() - 1
                n = (~(m >> p) & ((m >> p) + 1)).bit_length() - 1  # the run's length
                new |= (acc << (mu * p)) if n == 1 else (acc * _repunit(mu, n)) << (mu * p)
                m &= ~(((1 << n) - 1) << p)
            acc = new
        return acc

    def shift(self, vec: tuple[int, ...]) -> int:
        return sum(mu * self.sp.enc(k, vec) for k, mu in enumerate(self.mult))

    def swept(self, m: int, loops: list[Loop]) -> int:
        for lp in loops:
            m = _sweep(m, self.shift(self.sp.disp[lp]), lp.factor)
        return m


def _positions(fx_loops: list[Loop], fy_loops: list[Loop], sp: _Space) -> list[tuple[tuple[int, int], tuple]]:
    """Each utilized child's router (x, y) and its offset in the tensor's coordinates."""
    nd = len(sp.weight)
    out = []
    for ix in product(*[range(lp.factor) for lp in fx_loops]):
        for iy in product(*[range(lp.factor) for lp in fy_loops]):
            x = 0
            for lp, v in zip(fx_loops, ix):
                x = x * lp.factor + v
            y = 0
            for lp, v in zip(fy_loops, iy):
                y = y * lp.factor + v
            off = tuple(sum(v * sp.disp[lp][d] for lp, v in zip(fx_loops + fy_loops, ix + iy)) for d in range(nd))
            out.append(((x, y), off))
    return out


def mesh_link_loads(S: dict[tuple[int, int], int], fan: tuple[int, int], src: tuple[int, int]) -> Counter:
    """Words per link (pointing away from ``src``) of one step's multicast trees: ``S`` maps a
    router to the bitmask of the words it needs (the module docstring's per-link unions)."""
    fx, fy = fan
    sx, sy = src
    loads: Counter = Counter()
    col = [0] * fx
    for (x, _), m in S.items():
        col[x] |= m
    acc = 0
    for x in range(fx - 1, sx, -1):
        acc |= col[x]
        loads[((x - 1, sy), (x, sy))] = acc.bit_count()
    acc = 0
    for x in range(sx):
        acc |= col[x]
        loads[((x + 1, sy), (x, sy))] = acc.bit_count()
    for x in range(fx):
        acc = 0
        for y in range(fy - 1, sy, -1):
            acc |= S.get((x, y), 0)
            loads[((x, y - 1), (x, y))] = acc.bit_count()
        acc = 0
        for y in range(sy):
            acc |= S.get((x, y), 0)
            loads[((x, y + 1), (x, y))] = acc.bit_count()
    return Counter({k: v for k, v in loads.items() if v})


def _ring_way(p: int, s: int, N: int) -> tuple[int, int]:
    """A ring position's route from ``s``: (direction +1 clockwise or -1, hops), the shorter way
    (clockwise on a tie)."""
    cw = (p - s) % N
    return (1, cw) if cw <= N - cw else (-1, N - cw)


def ring_link_loads(S: dict[tuple[int, int], int], fan: tuple[int, int], src: tuple[int, int]) -> Counter:
    """Words per link (pointing away from ``src``) of one step's multicast trees on a ring: router
    (x, y) is position ``x + fx y``, a word reaches each destination the shorter way round, so the
    k-th link clockwise from the source carries the union of what the clockwise destinations k or
    more hops away need (likewise counter-clockwise)."""
    fx, fy = fan
    N = fx * fy
    s = src[0] + fx * src[1]
    far: dict[tuple[int, int], int] = {}  # (direction, hops) -> union of what destinations that far need
    for (x, y), m in S.items():
        if m:
            way = _ring_way(x + fx * y, s, N)
            far[way] = far.get(way, 0) | m
    loads: Counter = Counter()
    for d in (1, -1):
        acc = 0
        for k in range(N, 0, -1):
            acc |= far.get((d, k), 0)
            if acc:
                a, b = (s + d * (k - 1)) % N, (s + d * k) % N
                loads[((a % fx, a // fx), (b % fx, b // fx))] = acc.bit_count()
    return loads


def _loads(S: dict[tuple[int, int], int], net, fan: tuple[int, int]) -> Counter:
    if net.topology == "bus":
        u = 0
        for m in S.values():
            u |= m
        return Counter({BUS: u.bit_count()}) if u else Counter()
    if net.topology == "ring":
        return ring_link_loads(S, fan, net.source)
    return mesh_link_loads(S, fan, net.source)


def _depth(S: dict[tuple[int, int], int], net, fan: tuple[int, int] = (0, 0)) -> int:
    if net.topology == "bus":
        return 1 if any(S.values()) else 0
    sx, sy = net.source
    if net.topology == "ring":
        fx, fy = fan
        return max((_ring_way(x + fx * y, sx + fx * sy, fx * fy)[1] for (x, y), m in S.items() if m), default=0)
    return max((abs(x - sx) + abs(y - sy) for (x, y), m in S.items() if m), default=0)


class ChildSets:
    """What each child position of level j's network needs of a tile M of a tensor whose next
    keeper inside j is level c (each position standing for its subtree: the spatial loops
    between j and c), as the bitmasks :func:`mesh_link_loads` takes."""

    def __init__(self, sp: _Space, loops: tuple[Loop, ...], j: int, c: int, M: list[int]):
        fxl = [lp for lp in loops if lp.level == j and lp.spatial == "X"]
        fyl = [lp for lp in loops if lp.level == j and lp.spatial == "Y"]
        self.G = [lp for lp in loops if lp.spatial and j < lp.level < c]
        self.enc = _Flat(sp, sp.sets(fxl + fyl + self.G, M))
        self.pos = [(xy, self.enc.shift(off)) for xy, off in _positions(fxl, fyl, sp)]
        self.whole = self.enc.of(M)

    def without(self, keep: list[int] | None = None) -> dict[tuple[int, int], int]:
        """Per router, the words of M not in ``keep`` (per component; None: all of M) its subtree needs."""
        part = self.whole if keep is None else self.whole & ~self.enc.of(keep)
        base = self.enc.swept(part, self.G)
        return {xy: _shift(base, s) for xy, s in self.pos}


def busiest_link(net, down: Counter, up: Counter) -> tuple[str, int]:
    """The busiest directed link and its words, of ``down`` (links pointing away from the source)
    and ``up`` (the same links, reversed); a bus carries both."""
    if net.topology == "bus":
        return "bus", down[BUS] + up[BUS]
    cand = [(v, _name(k)) for k, v in down.items()] + [(v, _name(k[::-1])) for k, v in up.items()]
    words, busiest = max(cand, key=lambda c: (c[0], c[1]), default=(0, "none"))
    return busiest, words


def network_stats(cfg: NestConfig, loops: tuple[Loop, ...]) -> tuple[NetworkStats, ...]:
    """Every ``network:`` of ``cfg``'s arch, counted (the module docstring's model)."""
    n = len(cfg.levels)
    out = []
    for j, lv in enumerate(cfg.arch.levels):
        net = lv.network
        if net is None:
            continue
        fan = cfg.arch.fanout(j)
        inst = math.prod(lp.factor for lp in loops if lp.spatial and lp.level < j)
        down: Counter = Counter()
        up: Counter = Counter()
        tensors = {}
        depth_out = depth_in = 0
        for op in cfg.operands:
            keepers = [i for i, lm in enumerate(cfg.levels) if op.name in lm.keep]
            if keepers[0] > j:
                continue  # it lives below this network (kept on chip between Einsums): never on it
            c = min([i for i in keepers if i > j] + [n])
            sp = _Space(op, loops)
            Mc = sp.sets([lp for lp in loops if lp.level >= c])
            if c == n:
                kinds = Counter({None: math.prod(lp.factor for lp in loops if not lp.spatial)})
            else:
                kinds = level_events(cfg, loops, sp, c)
            children = ChildSets(sp, loops, j, c, Mc)
            served: Counter = Counter()
            total = 0  # the union over all children, summed over the steps (sim.nest's U / instances)
            for d, w in kinds.items():
                S = children.without(None if d is None else [m & _shift(m, -sp.enc(k, d)) for k, m in enumerate(Mc)])
                u = 0
                for m in S.values():
                    u |= m
                total += w * u.bit_count()
                for link, v in _loads(S, net, fan).items():
                    served[link] += w * v
                dep = _depth(S, net, fan)
                if op.is_output:
                    depth_in = max(depth_in, dep)
                else:
                    depth_out = max(depth_out, dep)
            if op.is_output:
                Pc = sp.sets([lp for lp in loops if lp.level < c and not lp.spatial], Mc)
                S2 = ChildSets(sp, loops, j, c, Pc).without()
                first = _loads(S2, net, fan)
                part = 0
                for m in S2.values():
                    part |= m
                refill = Counter({k: served[k] - first[k] for k in served if served[k] > first[k]})
                if refill:
                    depth_out = max(depth_out, depth_in)
                up.update(served)
                down.update(refill)
                t_out, t_in = refill, served
                w_out, w_in = total - part.bit_count(), total
            else:
                down.update(served)
                t_out, t_in = served, Counter()
                w_out, w_in = total, 0
            hops_out, hops_in = sum(t_out.values()), sum(t_in.values())
            tensors[op.name] = TensorTraffic(w_out, w_in, hops_out, hops_in,
                                             (hops_out + hops_in) * inst * net.energy_pj_per_word_hop)
        busiest, words = busiest_link(net, down, up)
        cycles = math.ceil(words / net.link_words)
        out.append(NetworkStats(lv.name, net.topology, fan, net.source, inst, tensors, busiest, words,
                                float(net.link_words), cycles, net.hop_latency * (depth_out + depth_in),
                                sum(t.energy_pj for t in tensors.values())))
    return tuple(out)


def _name(link: Link) -> str:
    (a, b), (c, d) = link
    return f"({a},{b})->({c},{d})"
