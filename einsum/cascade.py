"""Core types of a validated Einsum cascade (no parsing here; see :mod:`einsum.load`).

A :class:`Cascade` is a DAG of :class:`Einsum` s (built with networkx). Recurrences
over an iterative rank (``RM[m, p1+1] = max(RM[m,p1], LM[m,p1])`` with the initial
value ``RM[m, 0] = -inf``) are the only cycles allowed: the read of ``RM[m,p1]``
is a *loop-carried* edge, and removing loop-carried edges leaves a DAG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Mapping

from .expr import Statement

if TYPE_CHECKING:  # networkx is imported where a graph is built (start-up time)
    import networkx as nx

RankKind = Literal["base", "part", "derived", "alias"]


@dataclass(frozen=True)
class RankInfo:
    name: str
    size: int
    kind: RankKind = "base"
    root: str = ""  # the input rank this one traverses (P for P1 and P0)
    of: str = ""  # the rank named in its definition: a part's parent, an alias's target

    @property
    def index(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ranks: tuple[str, ...]
    shape: tuple[int, ...]
    kind: Literal["input", "intermediate", "output"]
    iterative_dim: int | None = None  # this dim has extent size+1 (a recurrence)
    value_range: str | None = None  # an index tensor: its values are positions in this rank
    range_declared: bool = False  # a computed tensor's range given in ``ranges:`` (checked at run time)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Einsum:
    name: str  # unique; the output tensor, or 'T.init' for a recurrence's initial value
    position: int  # index in the expressions list
    stmt: Statement
    output: str
    kind: Literal["plain", "init", "update"]
    iter_indices: tuple[str, ...]  # every index variable the Einsum iterates, LHS first
    lhs_indices: tuple[str, ...]  # indices kept in the output (plus the update variable)
    reduced: tuple[str, ...]
    reduce_op: Literal["sum", "max", "min", "argmax", "argmin"] | None  # None: nothing reduced
    reads: tuple[str, ...]  # tensors read, in order of first access
    iter_var: str | None = None  # update: the index at the '+1' position
    carried: frozenset[str] = frozenset()  # tensors read at the previous iteration
    # a sort/top-k fibre operator: (operator, index it runs along, index it writes)
    fibre_out: tuple[str, str, str] | None = None
    scatter: bool = False  # ``Y[IDX[t, k], d] += ...``: accumulates through an index tensor

    def __str__(self) -> str:
        return str(self.stmt)


@dataclass(frozen=True)
class Cascade:
    name: str
    ranks: Mapping[str, RankInfo]
    params: Mapping[str, float]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tensors: Mapping[str, TensorInfo]
    einsums: tuple[Einsum, ...]
    description: str = ""
    source: str | None = None
    partitions: Mapping[str, tuple[str, str]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_yaml(cls, source: str | Path, *, ranks: Mapping[str, int] | None = None,
                  params: Mapping[str, float] | None = None) -> Cascade:
        """Load and validate a cascade: a YAML file with an ``einsum:`` section, or the name
        of a library cascade (``einarray cascades`` lists them), with optional rank size and
        parameter overrides, e.g. ``Cascade.from_yaml("gemm", ranks={"M": 8, "N": 8, "K": 8})``.
        Errors name the file, line and YAML path (:class:`einsum.errors.ConfigError`)."""
        from .load import load_cascade

        return load_cascade(source, ranks=ranks, params=params)

    # -- lookups -----------------------------------------------------------------
    def rank_of_index(self, idx: str) -> RankInfo:
        for r in self.ranks.values():
            if r.index == idx:
                return r
        raise KeyError(idx)

    def pass_rank(self, rank: str) -> str:
        """The rank a pass over ``rank`` is counted for: parts (P1, P0 of P) count for the
        rank they partition, aliases (``P: M``) and every other rank for themselves."""
        seen = set()
        while self.ranks[rank].kind == "part" and rank not in seen:
            seen.add(rank)
            rank = self.ranks[rank].of
        return rank

    def index_size(self, idx: str) -> int:
        return self.rank_of_index(idx).size

    def einsum(self, name: str) -> Einsum:
        for e in self.einsums:
            if e.name == name:
                return e
        raise KeyError(name)

    def producers(self, tensor: str) -> list[Einsum]:
        return [e for e in self.einsums if e.output == tensor]

    # -- graphs ------------------------------------------------------------------
    def dependencies(self, *, with_carried: bool = True) -> dict[str, list[str]]:
        """Einsum dependency graph as ``{einsum: [einsums that read what it writes]}`` (every
        Einsum a key, cascade order; see :mod:`einsum.graphs`)."""
        succ: dict[str, list[str]] = {e.name: [] for e in self.einsums}
        for e in self.einsums:
            for t in e.reads:
                for p in self.producers(t):
                    if not with_carried and t in e.carried and p.kind == "update":
                        continue
                    if e.name not in succ[p.name]:
                        succ[p.name].append(e.name)
        return succ

    def graph(self, *, with_carried: bool = True) -> "nx.DiGraph":
        """Einsum dependency graph: edge u -> v when v reads a tensor u writes.

        Edges carry ``tensor`` and ``carried`` (a loop-carried read of a recurrence).
        """
        import networkx as nx

        g = nx.DiGraph()
        for e in self.einsums:
            g.add_node(e.name, einsum=e)
        for e in self.einsums:
            for t in e.reads:
                for p in self.producers(t):
                    carried = t in e.carried and p.kind == "update"
                    if carried and not with_carried:
                        continue
                    if g.has_edge(p.name, e.name):
                        g.edges[p.name, e.name]["carried"] &= carried
                    else:
                        g.add_edge(p.name, e.name, tensor=t, carried=carried)
        return g

    def tensor_graph(self) -> "nx.DiGraph":
        """Bipartite tensor/Einsum graph used for drawing (tensor -> einsum -> tensor)."""
        import networkx as nx

        g = nx.DiGraph()
        for t, info in self.tensors.items():
            g.add_node(("T", t), kind=info.kind, label=t)
        for e in self.einsums:
            g.add_node(("E", e.name), kind="einsum", label=str(e.stmt))
            for t in e.reads:
                g.add_edge(("T", t), ("E", e.name))
            g.add_edge(("E", e.name), ("T", e.output))
        return g

    def schedule(self) -> list[list[str]]:
        """Evaluation order: a list of groups of Einsum names.

        A group of one is evaluated at once; a larger group (or a self-recurrence) is a
        strongly connected component iterated over its recurrence variable, its members
        in the order given by the graph without loop-carried edges.
        """
        from .graphs import lexicographical_topological_sort, strongly_connected_components

        full = self.dependencies(with_carried=True)
        acyclic = self.dependencies(with_carried=False)
        pos = {e.name: e.position for e in self.einsums}
        comps = strongly_connected_components(full)
        comp_of = {n: k for k, comp in enumerate(comps) for n in comp}
        cond = {k: sorted({comp_of[w] for n in comp for w in full[n]} - {k}) for k, comp in enumerate(comps)}
        order = []
        for k in lexicographical_topological_sort(cond, key=lambda k: min(pos[m] for m in comps[k])):
            members = comps[k]
            if len(members) == 1:
                order.append(list(members))
            else:
                sub = {n: [w for w in acyclic[n] if w in members] for n in acyclic if n in members}
                order.append(lexicographical_topological_sort(sub, key=lambda n: pos[n]))
        return order
