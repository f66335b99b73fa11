"""The mapping model: what a ``mapping:`` section loads into (:mod:`mapping.loader`) and
the :class:`Config` it makes with a cascade and an arch (loading a config file:
:mod:`mapping.config`).

A mapping says, per Einsum, which unit runs it and how it is spread over the array
(:class:`EinsumMap`), and, per *fused group* of Einsums, the tile loop nest at the on-chip
buffer (:class:`Group`, its :class:`Loop` s outermost first; made and checked by
:mod:`mapping.groups`, with the defaults of :mod:`mapping.defaults`). An Einsum with no
arithmetic (a relayout or an init) is *free* (:func:`is_free`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from einsum.analysis import OpCounts
from einsum.cascade import Cascade, Einsum
from einsum.yamlsrc import YPath

from .arch import Arch

DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True)
class EinsumMap:
    name: str
    unit: str
    dataflow: str = "os"
    rows: tuple[tuple[str, int], ...] = ()  # (index, spatial factor)
    cols: tuple[tuple[str, int], ...] = ()
    free: bool = False  # no arithmetic (a relayout such as BK = K[p1*P0+p0, e], or an init)
    ypath: YPath = ()


@dataclass(frozen=True)
class Loop:
    rank: str
    tile: int
    size: int

    @property
    def index(self) -> str:
        return self.rank.lower()

    @property
    def trips(self) -> int:
        return -(-self.size // self.tile)

    def extent(self, i: int) -> int:
        return min(self.tile, self.size - i * self.tile)


@dataclass(frozen=True)
class Group:
    name: str
    einsums: tuple[str, ...]  # cascade order
    loops: tuple[Loop, ...]  # outermost first
    stages: tuple[tuple[str, ...], ...]
    deferred: Mapping[str, int]  # Einsum -> steps it runs late
    buffer: str
    ypath: YPath = ()
    streamed: frozenset[str] = frozenset()  # inputs streamed through the buffer during a step
    hold: Mapping[str, int] = field(default_factory=dict)  # input -> first loop (0-based) it is held across


@dataclass(frozen=True)
class MappingSpec:
    einsums: Mapping[str, EinsumMap]
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Config:
    cascade: Cascade
    arch: Arch
    mapping: MappingSpec
    instances: int = 1  # independent repetitions (batch x heads), outermost and serialised
    counts: Mapping[str, OpCounts] = field(default_factory=dict)
    source: str | None = None
    # where the mapping came from: "given" (a mapping: section, even a partial one),
    # "default" (derived: see einarray.default_mapping) or "searched" (einarray search)
    mapping_origin: str = "default"
    # how many of the instances are independent, so that several cores may run them at once
    # (a model's batch; its layers' repeats are blocks in sequence, heads a preset does not
    # tell apart); None: all of them (a workload's own instances)
    parallel: int | None = None


def is_free(e: Einsum, oc: OpCounts) -> bool:
    return e.kind == "init" or not any(v for v in oc.counts.values())
