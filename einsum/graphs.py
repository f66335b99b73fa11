"""The few directed-graph algorithms a cascade needs, on plain dicts (no networkx at
start-up: ``import networkx`` costs ~0.1 s, more than the rest of ``einarray simulate``).

A graph is ``{node: [successor, ...]}`` with every node a key, in insertion order (the
order decides ties, so results are deterministic).

* :func:`strongly_connected_components`: Tarjan's algorithm, iterative.
* :func:`find_cycle`: one directed cycle as a list of edges ``[(a, b), (b, c), ..., (z, a)]``
  (like ``networkx.find_cycle``), or None.
* :func:`lexicographical_topological_sort`: Kahn's algorithm taking, among the ready
  nodes, the one with the smallest ``key`` (as ``networkx.lexicographical_topological_sort``);
  :class:`graphlib.CycleError` on a cycle.
"""

from __future__ import annotations

import heapq
from graphlib import CycleError
from typing import Any, Callable, Hashable, Iterable, Mapping

Graph = Mapping[Hashable, Iterable[Hashable]]


def strongly_connected_components(g: Graph) -> list[set]:
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on_stack: set = set()
    stack: list = []
    out: list[set] = []
    counter = 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(g[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(g[w])))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def find_cycle(g: Graph) -> list[tuple] | None:
    colour: dict[Any, int] = {}  # 1: on the current path, 2: done
    for root in g:
        if root in colour:
            continue
        path = [root]
        work = [iter(g[root])]
        colour[root] = 1
        while work:
            for w in work[-1]:
                if colour.get(w) == 1:
                    cyc = path[path.index(w):] + [w]
                    return list(zip(cyc, cyc[1:]))
                if w not in colour:
                    colour[w] = 1
                    path.append(w)
                    work.append(iter(g[w]))
                    break
            else:
                colour[path.pop()] = 2
                work.pop()
    return None


def lexicographical_topological_sort(g: Graph, key: Callable[[Any], Any]) -> list:
    indeg = {v: 0 for v in g}
    for v in g:
        for w in g[v]:
            indeg[w] += 1
    seq = {v: k for k, v in enumerate(g)}
    ready = [(key(v), seq[v], v) for v, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, _, v = heapq.heappop(ready)
        out.append(v)
        for w in g[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(ready, (key(w), seq[w], w))
    if len(out) != len(indeg):
        raise CycleError("the graph has a cycle", find_cycle(g))
    return out
