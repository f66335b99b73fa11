"""Timeloop-class architectures: a memory hierarchy of any depth and a per-level mapping.

An ``arch:`` section with a ``hierarchy:`` list (outermost first) describes storage levels
with spatial fan-out and per-tensor keep/bypass, ending in a compute level::

    arch:
      version: 1
      name: conv1d-3level-spatial
      clock_hz: 1e9
      hierarchy:
        - {name: MainMemory, component: dram-256bit-40nm}      # the backing store: unbounded
        - {name: GlobalBuffer, component: sram-32768x64-40nm, mesh: [16, 1]}
        - {name: RegisterFile, component: regfile-64x8-40nm, mesh: [16, 1],
           capacity_words: 64, keeps: [Weights, Inputs, Outputs]}
      compute: {name: MACC, component: intmac-8bit-40nm, mesh: [16, 1]}

Each storage level: ``name``; ``mesh: [X, Y]`` instances (default ``[1, 1]``; each level's
mesh divides the next inner one's, the ratio is the fan-out); ``capacity_words`` (only the
outermost may omit it); ``word_bits``; ``block_size`` (words per access); ``read_bw`` /
``write_bw`` (words per cycle per instance, optional); ``keeps`` (the tensors it may hold,
default all); ``energy: {read, write, update, leak}`` (pJ per block access, leak pJ per cycle
per instance); ``area_um2``; or ``component: NAME`` from ``mapping/components.yaml``, or
``component: {class: sram, banks: 4, node_nm: 16, vdd: 0.8, ...}`` computed from that library's
published tables (:mod:`mapping.components`), whose values the level's own keys override.
A level with fan-out may give ``network:`` (the network to its children, costed by
:mod:`sim.network`): ``topology`` (``mesh``: XY routing between the children's routers, with
``source: [x, y]`` the router where the level injects; ``ring``: the children's routers in one
cycle, row by row, each word going the shorter way round from ``source``; or ``bus``), ``link_words`` (words per
cycle per directed link), ``hop_latency`` (cycles per hop) and either ``energy_pj_per_word_hop``
or ``wire: {estimate, hop_mm}`` (the component library's per-bit-per-mm wire figures,
:func:`mapping.components.wire_energy_pj`, times the level's ``word_bits``); without it the
network is not costed (Timeloop's tutorial outputs print no network energy). ``ports: N``
(block accesses per cycle per instance, reads and writes alike) and ``banks: {count, bandwidth,
assign}`` (words per cycle per bank; ``assign: {TENSOR: banks}`` partitions the level per
tensor, each tile then checked against its banks' share of the capacity) are cycle bounds
(:func:`sim.nest.port_bank_cycles`); ``count`` must divide ``capacity_words`` and agree with a
component's ``banks``. The bandwidth bounds take a level's fills as overlapping its reads (the
traffic spread over the run, as Timeloop does); the timeline (:mod:`sim.nest_timeline`) steps
them. ``double_buffered: true`` lets a level take its next tile while its current one is in use,
on the timeline, and makes the capacity check reserve the room that takes: twice each tile the
level refills (:func:`mapping.nest_mapping.level_words`). Without it the tiles are counted once,
as Timeloop counts them, and a refill waits until the current tile is done with.
The compute level: ``name``, ``mesh``, ``energy: {compute}`` (pJ per MAC), ``area_um2`` or a
component. An optional ``vector: {name, level, lanes, energy: {OP: energy or component}, cycles:
{OP: lane-cycles}, area_um2}`` is a vector unit per instance of storage level ``level``
(:class:`Vector`): it runs a cascade's Einsums that are not sums of products
(:mod:`mapping.vector`, :mod:`sim.nest_vector`).

The mapping of an Einsum (or a cascade of them) onto such an arch, its loading and
legality: :mod:`mapping.nest_mapping`. The counting model is :mod:`sim.nest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Mapping

from einsum.yamlsrc import Source, YPath
from mapping.components import load_library, resolve, wire_energy_pj

STORAGE_KEYS = ("name", "component", "class", "mesh", "capacity_words", "word_bits", "block_size",
                "read_bw", "write_bw", "keeps", "energy", "area_um2", "network", "ports", "banks",
                "double_buffered")
BANK_KEYS = ("count", "bandwidth", "assign")
NETWORK_KEYS = ("topology", "link_words", "hop_latency", "source", "energy_pj_per_word_hop", "wire")
TOPOLOGIES = ("mesh", "ring", "bus")


@dataclass(frozen=True)
class Network:
    """The network between a storage level's instance and its spatial children (``network:`` on
    the level; the model is :mod:`sim.network`)."""

    topology: str  # "mesh" (XY routing between the children's routers), "ring" or "bus" (one broadcast medium)
    link_words: Fraction  # words per cycle per directed link (the bus: per cycle, both directions)
    hop_latency: int  # cycles per hop
    source: tuple[int, int] | None  # mesh, ring: the router (x, y) where the parent injects and collects
    energy_pj_per_word_hop: float  # pJ per word per link traversed (a bus transfer is one hop)
    wire: str | None = None  # how the energy was derived, e.g. "keckler2011-40nm, 1.2 mm" (None: given)


@dataclass(frozen=True)
class Banks:
    """A level's ``banks:`` (the bound is :func:`sim.nest.port_bank_cycles`)."""

    count: int
    bandwidth: Fraction  # words per cycle per bank
    assign: Mapping[str, int] | None = None  # tensor -> its banks (None: every tensor over all banks)
STORAGE_ACTIONS = ("read", "write", "update", "leak")


@dataclass(frozen=True)
class StorageLevel:
    name: str
    mesh: tuple[int, int]  # instances along X and Y
    capacity_words: int | None  # None: unbounded (the backing store)
    word_bits: int
    block_size: int  # words per access
    read_bw: Fraction | None  # words per cycle per instance (None: unlimited)
    write_bw: Fraction | None
    keeps: tuple[str, ...] | None  # tensors it may hold (None: any)
    energy: Mapping[str, float]  # read/write/update pJ per block access, leak pJ per cycle per instance
    area_um2: float | None = None
    component: str | None = None
    klass: str = ""
    network: Network | None = None  # to its spatial children (None: not costed)
    ports: int | None = None  # block accesses per cycle per instance, reads, fills and updates alike
    banks: Banks | None = None
    double_buffered: bool = False  # room for the next tile of every tensor it refills (capacity check)

    @property
    def instances(self) -> int:
        return self.mesh[0] * self.mesh[1]


@dataclass(frozen=True)
class ComputeLevel:
    name: str
    mesh: tuple[int, int]
    energy_pj: float  # per MAC
    word_bits: int = 16
    area_um2: float | None = None
    component: str | None = None

    @property
    def instances(self) -> int:
        return self.mesh[0] * self.mesh[1]


@dataclass(frozen=True)
class Vector:
    """A vector unit beside the MACs (``vector:``): one per instance of storage level ``level``,
    ``lanes`` element operations per cycle each, reading and writing that level. It runs a
    cascade's Einsums that are not sums of products (:mod:`mapping.vector`, :mod:`sim.nest_vector`)."""

    name: str
    level: int  # index of the storage level it reads and writes
    lanes: int
    energy: Mapping[str, float]  # per element operation (einsum.analysis.ACTIONS), in the arch's unit
    area_um2: float | None = None  # one unit
    cycles: Mapping[str, int] = field(default_factory=dict)  # lane-cycles per operation (default 1)
    components: Mapping[str, str] = field(default_factory=dict)  # operation -> the component its energy is from


@dataclass(frozen=True)
class Hierarchy:
    name: str
    clock_hz: float
    levels: tuple[StorageLevel, ...]  # outermost first
    compute: ComputeLevel
    source: str | None = None
    # what the arch's energies are in: pJ, or a named normalised unit (Eyeriss's costs relative
    # to one MAC, say), which every printed energy then carries instead of pJ
    energy_unit: str = "pJ"
    vector: Vector | None = None

    def index(self, name: str) -> int:
        return next(i for i, lv in enumerate(self.levels) if lv.name == name)

    def fanout(self, i: int) -> tuple[int, int]:
        """Children (X, Y) of one instance of level ``i`` in the next inner level (or compute)."""
        inner = self.levels[i + 1].mesh if i + 1 < len(self.levels) else self.compute.mesh
        return inner[0] // self.levels[i].mesh[0], inner[1] // self.levels[i].mesh[1]


# ----------------------------------------------------------------------------------
def _posint(src: Source, v: Any, path: YPath, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise src.error(path, f"expected {what} (a positive integer), got {v!r}")
    return v


def _nonneg(src: Source, v: Any, path: YPath, what: str) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise src.error(path, f"expected {what}, got {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0 or v == float("inf"):
        raise src.error(path, f"expected {what} (a number >= 0), got {v!r}")
    return float(v)


def _mapping(src: Source, d: Any, path: YPath, allowed: tuple[str, ...], what: str) -> dict:
    if not isinstance(d, dict):
        raise src.error(path, f"expected {what}, got {type(d).__name__} {d!r}")
    for k in d:
        if k not in allowed:
            raise src.error(path + (str(k),), f"unknown key {k!r} (allowed: {', '.join(allowed)})")
    return d


def _mesh(src: Source, v: Any, path: YPath) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, 1]
    if not isinstance(v, list) or len(v) != 2:
        raise src.error(path, f"expected [X, Y] instances, got {v!r}")
    return _posint(src, v[0], path + (0,), "instances along X"), _posint(src, v[1], path + (1,), "instances along Y")


def _with_component(src: Source, d: dict, path: YPath, kind: str) -> dict:
    """The level's keys over its component's (:func:`mapping.components.resolve`: a fixed entry
    by name, or one computed from the library's tables for ``{class: ..., attributes}``)."""
    spec = d.get("component")
    if spec is None:
        return d
    comp = resolve(spec, d, src, path + ("component",), kind)
    merged = {k: v for k, v in comp.items() if k != "label"}
    merged["energy"] = {**(comp.get("energy") or {}), **(d.get("energy") or {})}
    merged.update({k: v for k, v in d.items() if k != "energy"})
    merged["component"] = spec if isinstance(spec, str) else comp["label"]
    return merged


def _flag(src: Source, v: Any, path: YPath) -> bool:
    if not isinstance(v, bool):
        raise src.error(path, f"expected true or false, got {v!r}")
    return v


def hierarchy_from_data(sec: Any, src: Source, base: YPath = ("arch",)) -> Hierarchy:
    """Validate an ``arch:`` section with a ``hierarchy:`` list into a :class:`Hierarchy`."""
    _mapping(src, sec, base, ("version", "name", "description", "clock_hz", "hierarchy", "compute",
                              "energy_unit", "vector"),
             "an arch section with version, clock_hz, hierarchy and compute")
    for k in ("version", "clock_hz", "hierarchy", "compute"):
        if k not in sec:
            raise src.error(base, f"missing required key {k!r}")
    if sec["version"] != 1:
        raise src.error(base + ("version",), f"unsupported version {sec['version']!r} (this einarray reads 1)")
    clock = _nonneg(src, sec["clock_hz"], base + ("clock_hz",), "a clock frequency in Hz")
    if clock <= 0:
        raise src.error(base + ("clock_hz",), "expected a clock frequency > 0")
    hier = sec["hierarchy"]
    if not isinstance(hier, list) or not hier:
        raise src.error(base + ("hierarchy",), "expected a list of storage levels, outermost first")
    levels: list[StorageLevel] = []
    for i, raw in enumerate(hier):
        p = base + ("hierarchy", i)
        _mapping(src, raw, p, STORAGE_KEYS, "a storage level {name, ...}")
        d = _with_component(src, raw, p, "storage")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise src.error(p + ("name",), "expected a level name")
        if any(lv.name == name for lv in levels):
            raise src.error(p + ("name",), f"duplicate level name {name!r}")
        cap = d.get("capacity_words")
        if cap is None and i > 0:
            raise src.error(p, f"level {name!r} needs capacity_words (only the outermost may be unbounded)")
        if cap is not None:
            cap = _posint(src, cap, p + ("capacity_words",), "a capacity in words")
        bws = []
        for k in ("read_bw", "write_bw"):
            v = d.get(k)
            if v is not None:
                v = _nonneg(src, v, p + (k,), "a bandwidth in words per cycle")
                if v <= 0:
                    raise src.error(p + (k,), "expected a bandwidth > 0")
                v = Fraction(str(v))
            bws.append(v)
        keeps = d.get("keeps")
        if keeps is not None:
            if not isinstance(keeps, list) or not all(isinstance(t, str) for t in keeps):
                raise src.error(p + ("keeps",), f"expected a list of tensor names, got {keeps!r}")
            keeps = tuple(keeps)
        en = _mapping(src, d.get("energy") or {}, p + ("energy",), STORAGE_ACTIONS, "an energy table")
        energy = {a: _nonneg(src, en.get(a, 0.0), p + ("energy", a), "an energy in pJ") for a in STORAGE_ACTIONS}
        area = d.get("area_um2")
        levels.append(StorageLevel(
            name, _mesh(src, d.get("mesh", [1, 1]), p + ("mesh",)), cap,
            _posint(src, d.get("word_bits", 16), p + ("word_bits",), "a word width in bits"),
            _posint(src, d.get("block_size", 1), p + ("block_size",), "a block size in words"),
            bws[0], bws[1], keeps, MappingProxyType(energy),
            None if area is None else _nonneg(src, area, p + ("area_um2",), "an area in um^2"),
            d.get("component"), str(d.get("class", "")), None,
            None if d.get("ports") is None else _posint(src, d["ports"], p + ("ports",), "a number of ports"),
            None if d.get("banks") is None else _banks(src, d["banks"], p + ("banks",), raw, cap),
            _flag(src, d.get("double_buffered", False), p + ("double_buffered",))))
    p = base + ("compute",)
    _mapping(src, sec["compute"], p, ("name", "component", "class", "mesh", "word_bits", "energy", "area_um2"),
             "a compute level {name, mesh, energy: {compute}}")
    d = _with_component(src, sec["compute"], p, "compute")
    en = _mapping(src, d.get("energy") or {}, p + ("energy",), ("compute",), "an energy table {compute: pJ}")
    if "compute" not in en:
        raise src.error(p + ("energy",), "missing the MAC energy 'compute' (pJ per MAC)")
    area = d.get("area_um2")
    compute = ComputeLevel(str(d.get("name", "MAC")), _mesh(src, d.get("mesh", [1, 1]), p + ("mesh",)),
                           _nonneg(src, en["compute"], p + ("energy", "compute"), "an energy in pJ"),
                           _posint(src, d.get("word_bits", 16), p + ("word_bits",), "a word width in bits"),
                           None if area is None else _nonneg(src, area, p + ("area_um2",), "an area in um^2"),
                           d.get("component"))
    meshes = [lv.mesh for lv in levels] + [compute.mesh]
    for i in range(1, len(meshes)):
        outer, inner = meshes[i - 1], meshes[i]
        if inner[0] % outer[0] or inner[1] % outer[1]:
            path = base + (("hierarchy", i) if i < len(levels) else ("compute",)) + ("mesh",)
            raise src.error(path, f"mesh {list(inner)} is not a multiple of the enclosing level's {list(outer)}")
    unit = sec.get("energy_unit", "pJ")
    if not isinstance(unit, str) or not unit.strip():
        raise src.error(base + ("energy_unit",), f"expected the name of the energies' unit (pJ, or a "
                        f"normalised unit such as MAC-equivalent), got {unit!r}")
    h = Hierarchy(str(sec.get("name", "hierarchy")), clock, tuple(levels), compute, src.file, unit.strip())
    nets = {}
    for i, raw in enumerate(hier):
        if raw.get("network") is not None:
            nets[i] = _network(src, raw["network"], base + ("hierarchy", i, "network"), h, i)
    if nets:
        h = replace(h, levels=tuple(replace(lv, network=nets.get(i)) for i, lv in enumerate(levels)))
    if sec.get("vector") is not None:
        h = replace(h, vector=_vector(src, sec["vector"], base + ("vector",), h))
    return h


def _vector(src: Source, d: Any, p: YPath, h: Hierarchy) -> Vector:
    """The arch's ``vector: {name, level, lanes, energy: {OP: energy per op}, cycles: {OP: lane-cycles},
    area_um2}``; an energy may be a component of the library (``{class: exp, node_nm: 16, vdd: 0.8}``,
    :func:`mapping.components.resolve`), in pJ."""
    from einsum.analysis import ACTIONS

    _mapping(src, d, p, ("name", "level", "lanes", "energy", "cycles", "area_um2"),
             "a vector unit {name, level, lanes, energy: {OP: energy}, cycles: {OP: lane-cycles}, area_um2}")
    for k in ("level", "lanes", "energy"):
        if k not in d:
            raise src.error(p, f"missing required key {k!r}")
    names = [lv.name for lv in h.levels]
    if d["level"] not in names:
        raise src.error(p + ("level",), f"expected the storage level it reads and writes ({', '.join(names)}), "
                        f"got {d['level']!r}")
    ops = ACTIONS
    en = _mapping(src, d["energy"], p + ("energy",), ops, "{OP: energy per element operation}")
    energy, labels = {}, {}
    for a, v in en.items():
        if isinstance(v, (dict, str)):  # a component: the library's unit for this operation
            if h.energy_unit != "pJ":
                raise src.error(p + ("energy", a), f"a component's energy is in pJ, but this arch's energies "
                                f"are in {h.energy_unit}: give a number")
            r = resolve(v, {}, src, p + ("energy", a), "compute")
            energy[a], labels[a] = r["energy"]["compute"], r.get("label") or str(v)
        else:
            energy[a] = _nonneg(src, v, p + ("energy", a), f"an energy in {h.energy_unit}")
    cyc = _mapping(src, d.get("cycles") or {}, p + ("cycles",), ops, "{OP: lane-cycles per operation}")
    cycles = {a: _posint(src, v, p + ("cycles", a), "lane-cycles per operation") for a, v in cyc.items()}
    area = d.get("area_um2")
    return Vector(str(d.get("name", "Vector")), names.index(d["level"]),
                  _posint(src, d["lanes"], p + ("lanes",), "a number of lanes"), MappingProxyType(energy),
                  None if area is None else _nonneg(src, area, p + ("area_um2",), "an area in um^2"),
                  MappingProxyType(cycles), MappingProxyType(labels))


def _banks(src: Source, d: Any, p: YPath, raw: dict, cap: int | None) -> Banks:
    """A level's ``banks: {count, bandwidth, assign}``; the tensor names of ``assign`` are
    checked against the Einsum by :func:`nest_config`."""
    _mapping(src, d, p, BANK_KEYS, "banks {count, bandwidth (words per cycle per bank), assign: {TENSOR: banks}}")
    for k in ("count", "bandwidth"):
        if k not in d:
            raise src.error(p, f"missing required key {k!r}")
    n = _posint(src, d["count"], p + ("count",), "a number of banks")
    bw = _nonneg(src, d["bandwidth"], p + ("bandwidth",), "a bandwidth in words per cycle per bank")
    if bw <= 0:
        raise src.error(p + ("bandwidth",), "expected a bandwidth > 0 words per cycle per bank")
    comp = raw.get("component")
    if isinstance(comp, dict) and comp.get("banks") is not None and comp["banks"] != n:
        raise src.error(p + ("count",), f"{n} banks, but the level's component has banks: {comp['banks']}")
    if cap is not None and cap % n:
        raise src.error(p + ("count",), f"{n} banks do not divide the capacity of {cap} words")
    assign = None
    if d.get("assign") is not None:
        a = d["assign"]
        if not isinstance(a, dict) or not a:
            raise src.error(p + ("assign",), f"expected {{TENSOR: number of banks}}, got {a!r}")
        assign = {str(t): _posint(src, v, p + ("assign", str(t)), "a number of banks") for t, v in a.items()}
        if sum(assign.values()) > n:
            raise src.error(p + ("assign",), f"the tensors take {sum(assign.values())} banks, more than the "
                            f"level's {n}")
        assign = MappingProxyType(assign)
    return Banks(n, Fraction(str(bw)), assign)


def _network(src: Source, d: Any, p: YPath, h: Hierarchy, i: int) -> Network:
    """A level's ``network:`` (keys :data:`NETWORK_KEYS`), checked against its fan-out."""
    _mapping(src, d, p, NETWORK_KEYS, "a network {topology, link_words, hop_latency, source, "
             "energy_pj_per_word_hop | wire}")
    lv = h.levels[i]
    fx, fy = h.fanout(i)
    if fx * fy == 1:
        raise src.error(p, f"{lv.name} has one child per instance (mesh ratio [1, 1]): no network to cost")
    for k in ("topology", "link_words", "hop_latency"):
        if k not in d:
            raise src.error(p, f"missing required key {k!r}")
    topo = d["topology"]
    if topo not in TOPOLOGIES:
        raise src.error(p + ("topology",), f"expected one of {', '.join(TOPOLOGIES)}, got {topo!r}")
    lw = _nonneg(src, d["link_words"], p + ("link_words",), "a link width in words per cycle")
    if lw <= 0:
        raise src.error(p + ("link_words",), "expected a link width > 0 words per cycle")
    hl = d["hop_latency"]
    if isinstance(hl, bool) or not isinstance(hl, int) or hl < 0:
        raise src.error(p + ("hop_latency",), f"expected a hop latency in cycles (an integer >= 0), got {hl!r}")
    source = None
    if topo in ("mesh", "ring"):
        if "source" not in d:
            raise src.error(p, f"a {topo} needs 'source: [x, y]', the router of the {fx} x {fy} children where "
                            f"{lv.name} injects")
        sv = d["source"]
        if (not isinstance(sv, list) or len(sv) != 2 or any(isinstance(v, bool) or not isinstance(v, int)
                                                            for v in sv)):
            raise src.error(p + ("source",), f"expected [x, y] router coordinates, got {sv!r}")
        if not (0 <= sv[0] < fx and 0 <= sv[1] < fy):
            raise src.error(p + ("source",), f"router {sv} is outside {lv.name}'s {fx} x {fy} children "
                            f"(x in 0..{fx - 1}, y in 0..{fy - 1})")
        source = (sv[0], sv[1])
    elif "source" in d:
        raise src.error(p + ("source",), "a bus has no source router (every child is one hop away)")
    has_e, has_w = "energy_pj_per_word_hop" in d, "wire" in d
    if has_e == has_w:
        raise src.error(p, "give exactly one of energy_pj_per_word_hop (pJ) or wire: {estimate, hop_mm} "
                        "(mapping/components.yaml tables.wire_fj_per_bit_mm)")
    wire = None
    if has_e:
        e = _nonneg(src, d["energy_pj_per_word_hop"], p + ("energy_pj_per_word_hop",), "an energy in pJ")
    else:
        w = _mapping(src, d["wire"], p + ("wire",), ("estimate", "hop_mm"), "{estimate: NAME, hop_mm: length}")
        ests = load_library().tables["wire_fj_per_bit_mm"]["estimates"]
        for k in ("estimate", "hop_mm"):
            if k not in w:
                raise src.error(p + ("wire",), f"missing required key {k!r}")
        if w["estimate"] not in ests:
            raise src.error(p + ("wire", "estimate"), f"unknown wire estimate {w['estimate']!r} (mapping/"
                            f"components.yaml has: {', '.join(ests)})")
        mm = _nonneg(src, w["hop_mm"], p + ("wire", "hop_mm"), "a hop length in mm")
        e = wire_energy_pj(lv.word_bits, mm, w["estimate"])
        wire = f"{w['estimate']}, {mm:g} mm"
    return Network(topo, Fraction(str(lw)), hl, source, e, wire)
