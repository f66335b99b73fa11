"""Several cores under one backing store, and the network that connects them (``arch.cores``).

::

    arch:
      cores:
        count: 4                  # identical copies of the compute units and on-chip levels
        noc:                      # optional; without it the cores reach the backing store freely
          topology: mesh          # mesh (XY routing) | ring (shortest way) | bus
          dims: [2, 2]            # mesh: X x Y routers, one core each (X * Y = count)
          controller: [0, 0]      # the router (mesh) or ring node the memory controller sits at
          link_bw: 64             # words per cycle per link and direction
          hop_latency: 2          # cycles per hop (a word's trip, pipelined; not a bandwidth)
          energy_per_word_hop: 0.5   # pJ

What the simulator does with it (:mod:`sim.engine`, "Several cores"): the cores split the
instance loop (batch x heads), or a single instance along one rank (:func:`split_ranks`: a
GEMM's N, say); they share the backing store's bandwidth fairly, and a word between the
memory controller and core ``k`` crosses ``hops(k)`` links.

Routes, hops and link loads
---------------------------
Links are directional (a read and a write-back use the two directions of a physical link).
Cores are numbered row-major on the mesh (core ``k`` at ``x = k % X, y = k // X``) and in
ring order on the ring.

* **mesh**: XY routing, x first. A read goes from the controller's router ``(cx, cy)`` along
  row ``cy`` to ``x``, then along column ``x`` to ``y``; a write-back goes from the core along
  its row ``y`` to ``cx``, then along column ``cx`` to ``cy``. ``hops = |x - cx| + |y - cy|``
  (0 for the core at the controller's router, whose traffic uses no link).
* **ring**: ``count`` nodes, the shorter way round (a tie goes the increasing way);
  ``hops = min(d, count - d)`` with ``d = (k - controller) mod count``.
* **bus**: one shared link per direction; every core is one hop away.

When ``n`` cores move the same number of words each (the simulator's symmetric phases), the
share of all their traffic that crosses link ``l`` in one direction is ``f_l = (cores routed
over l) / n``. The network can then carry at most ``link_bw / max_l f_l`` words per cycle in
that direction: :func:`link_cap`. The memory controller's own port is the backing store's
bandwidth, not a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from einsum.yamlsrc import Source, YPath

TOPOLOGIES = ("mesh", "ring", "bus")


@dataclass(frozen=True)
class Noc:
    topology: str
    dims: tuple[int, int]  # mesh: (X, Y); ring and bus: (count, 1)
    controller: tuple[int, int]  # mesh router (x, y); ring node (k, 0); bus (0, 0)
    link_bw: Fraction  # words per cycle per link and direction
    hop_latency: int  # cycles per hop
    energy_per_word_hop: float  # pJ

    def position(self, k: int) -> tuple[int, int]:
        return (k % self.dims[0], k // self.dims[0]) if self.topology == "mesh" else (k, 0)

    def hops(self, k: int) -> int:
        """Links a word crosses between the memory controller and core ``k``."""
        if self.topology == "bus":
            return 1
        if self.topology == "ring":
            n = self.dims[0]
            d = (k - self.controller[0]) % n
            return min(d, n - d)
        x, y = self.position(k)
        return abs(x - self.controller[0]) + abs(y - self.controller[1])

    def route(self, k: int, direction: str) -> list[tuple]:
        """The directed links of the trip to core ``k`` (``direction`` 'read') or from it
        ('write'), each as (from node, to node)."""
        if self.topology == "bus":
            return [("bus", direction)]
        if self.topology == "ring":
            n, c = self.dims[0], self.controller[0]
            d = (k - c) % n
            step = 1 if d <= n - d else -1  # a tie goes the increasing way
            nodes = [(c + i * step) % n for i in range(min(d, n - d) + 1)]
            path = list(zip(nodes, nodes[1:]))
            # a write-back goes the same way round, reversed
            return path if direction == "read" else [(b, a) for a, b in reversed(path)]
        (x, y), (cx, cy) = self.position(k), self.controller
        if direction == "read":
            a, b = (cx, cy), (x, y)
        else:
            a, b = (x, y), (cx, cy)
        path, (px, py) = [], a
        while px != b[0]:  # x first
            nx = px + (1 if b[0] > px else -1)
            path.append(((px, py), (nx, py)))
            px = nx
        while py != b[1]:
            ny = py + (1 if b[1] > py else -1)
            path.append(((px, py), (px, ny)))
            py = ny
        return path

    def link_cap(self, cores: int, direction: str) -> Fraction | None:
        """Words per cycle the network carries in ``direction`` when cores ``0 .. cores-1``
        each move the same number of words (None: no link is used)."""
        load: dict[tuple, int] = {}
        for k in range(cores):
            for link in self.route(k, direction):
                load[link] = load.get(link, 0) + 1
        if not load:
            return None
        return self.link_bw * cores / max(load.values())


@dataclass(frozen=True)
class Cores:
    count: int
    noc: Noc | None = None
    multicast: bool = False  # one backing-store read of an operand every core's part shares feeds all


ONE = Cores(1)


def phases(instances: int, parallel: int | None, n: int) -> tuple[tuple[int, int], ...]:
    """The phases ``((cores, instances each), ...)`` in which ``n`` cores run ``instances``
    of which ``parallel`` (None: all) may run at once: with ``parallel = q n + r`` all ``n``
    cores first, then ``r`` of them once more, each parallel instance standing for
    ``instances / parallel`` in sequence. Phases with no cores or no work are left out."""
    par = instances if parallel is None else parallel
    seq = instances // par
    q, r = divmod(par, n)
    return tuple((c, i) for c, i in ((n, q * seq), (r, seq)) if c and i)


def shared_bandwidth(arch: Any, n: int) -> tuple[Fraction, Fraction, int]:
    """(read, write) words per cycle of the backing store that each of ``n`` cores of
    ``arch`` gets when all are busy (a fair share of the store, capped by the network's
    busiest link), and the farthest core's network latency in cycles."""
    dram, noc = arch.levels[0], arch.cores.noc
    rbw, wbw = Fraction(dram.read_bw), Fraction(dram.write_bw)
    lat = 0
    if noc is not None:
        cr, cw = noc.link_cap(n, "read"), noc.link_cap(n, "write")
        rbw = rbw if cr is None else min(rbw, cr)
        wbw = wbw if cw is None else min(wbw, cw)
        lat = max(noc.hops(k) for k in range(n)) * noc.hop_latency
    return rbw / n, wbw / n, lat


def split_ranks(c: Any, n: int) -> list[str]:
    """The ranks a single instance of cascade ``c`` may be cut along for ``n`` cores, in order
    of preference: base ranks of every output, reduced by no Einsum, not the parent or target
    of another rank (a chunked or aliased rank carries a pass over it), of at least ``n``
    elements; multiples of ``n`` first (equal parts: one phase; otherwise the parts are
    ``size // n`` on every core, then one element on each of ``size % n`` cores, a second
    phase: :func:`sim.multicore.split_config`), then the larger, then rank order. The
    simulator tries each and keeps the fastest cut, if it beats one core."""
    outs = [set(c.tensors[t].ranks) for t in c.outputs]
    reduced = {c.rank_of_index(ix).name for e in c.einsums for ix in e.reduced}
    tied = {x.root for x in c.ranks.values() if x.root and x.root != x.name} | \
        {x.of for x in c.ranks.values() if x.of}
    cands = [r for r, info in c.ranks.items()
             if info.kind == "base" and all(r in o for o in outs) and r not in reduced and r not in tied
             and info.size >= n]
    order = list(c.ranks)
    return sorted(cands, key=lambda r: (c.ranks[r].size % n != 0, -c.ranks[r].size, order.index(r)))


def cores_from_data(sec: Any, src: Source, p: YPath) -> Cores:
    """Validate ``arch.cores`` (an int or ``{count, noc, multicast}``)."""
    from .arch import _keys, _num

    if isinstance(sec, int) and not isinstance(sec, bool):
        sec = {"count": sec}
    d = _keys(src, sec, p, ("count", "noc", "multicast"), ("count",))
    count = _num(src, d["count"], p + ("count",), "a number of cores", integer=True)
    mc = d.get("multicast", False)
    if not isinstance(mc, bool):
        raise src.error(p + ("multicast",), f"expected true or false, got {mc!r}")
    if mc and "noc" in d:
        raise src.error(p + ("multicast",), "multicast over a noc: is not modelled (its trees would change "
                        "every link's load); give one or the other")
    if "noc" not in d:
        return Cores(count, None, mc)
    q = p + ("noc",)
    n = _keys(src, d["noc"], q, ("topology", "dims", "controller", "link_bw", "hop_latency",
                                 "energy_per_word_hop"), ("topology", "link_bw"))
    topo = n["topology"]
    if topo not in TOPOLOGIES:
        raise src.error(q + ("topology",), f"unknown topology {topo!r} (one of {', '.join(TOPOLOGIES)})")
    if topo == "mesh":
        dims = n.get("dims")
        if (not isinstance(dims, list) or len(dims) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in dims)):
            raise src.error(q + ("dims",), f"a mesh needs dims: [X, Y] (positive integers), got {dims!r}")
        if dims[0] * dims[1] != count:
            raise src.error(q + ("dims",), f"a {dims[0]} x {dims[1]} mesh has {dims[0] * dims[1]} routers "
                            f"for {count} cores (one core per router)")
        ctl = n.get("controller", [0, 0])
        if (not isinstance(ctl, list) or len(ctl) != 2 or any(isinstance(v, bool) or not isinstance(v, int)
                                                              for v in ctl)
                or not (0 <= ctl[0] < dims[0] and 0 <= ctl[1] < dims[1])):
            raise src.error(q + ("controller",), f"expected [x, y] of a router of the {dims[0]} x {dims[1]} "
                            f"mesh, got {ctl!r}")
        dims_t, ctl_t = (dims[0], dims[1]), (ctl[0], ctl[1])
    else:
        if "dims" in n:
            raise src.error(q + ("dims",), f"dims applies to a mesh, not a {topo}")
        ctl = n.get("controller", 0)
        if topo == "bus" and "controller" in n:
            raise src.error(q + ("controller",), "a bus has no position: every core is one hop away")
        if isinstance(ctl, bool) or not isinstance(ctl, int) or not 0 <= ctl < count:
            raise src.error(q + ("controller",), f"expected the ring node 0..{count - 1} of the memory "
                            f"controller, got {ctl!r}")
        dims_t, ctl_t = (count, 1), (ctl, 0)
    from .arch import _frac

    bw = _frac(_num(src, n["link_bw"], q + ("link_bw",), "a link bandwidth in words per cycle"))
    lat = _num(src, n.get("hop_latency", 0), q + ("hop_latency",), "a hop latency in cycles", integer=True,
               allow_zero=True)
    e = float(_num(src, n.get("energy_per_word_hop", 0), q + ("energy_per_word_hop",),
                   "an energy per word per hop in pJ", allow_zero=True))
    return Cores(count, Noc(topo, dims_t, ctl_t, bw, lat, e))


__all__ = ["Cores", "Noc", "ONE", "TOPOLOGIES", "cores_from_data", "phases", "shared_bandwidth", "split_ranks"]
