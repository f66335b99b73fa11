"""Architecture specs: the ``arch:`` section, loaded into frozen dataclasses.

An architecture is up to two compute units and a chain of memory levels::

    arch:
      version: 1
      name: fusemax
      clock_hz: 940e6
      data_bits: {default: 16}              # per tensor class: input/intermediate/output
      array2d:                              # optional: R x C PE array
        rows: 256
        cols: 256
        macs_per_pe: 1                      # MACs per PE per cycle
        ops: {mac: 1, add: 1, max: 1, exp: 6}   # cycles per element per PE (or {cycles, latency})
        rf_entries: 16                      # per-PE register file (words)
        systolic: {fill_drain: true, fold_overlap: true, psum_in_array: true}
        # psum_in_array: partial sums of an output tile stay in the PEs between
        # consecutive tiles of its reduced rank (K), so fill and drain are paid once
        # per output tile; false: each K tile drains its partial sums and pays them
        # or {model: broadcast, tile_overhead: 10, max_k: 64}: operands broadcast along
        # rows/columns, one command = K beats + R output rows + the overhead, at most max_k
        # beats per command (hw/compute_unit.py's RTL: tile_cycles)
        pinned_elementwise: false           # true: element-wise and reduction work runs on the PEs
                                            # its spatial mapping names (folds x temporal extent),
                                            # not spread over every PE
      array1d:                              # optional: vector of `width` lanes
        width: 256
        ops: {mac: 1, add: 1, div: {cycles: 1, latency: 4}}
        rf_entries: 32
        fuse_elementwise: false             # true: an Einsum costs max(op cycles), not the sum
        chain_stage: false                  # true: the Einsums of one stage on this unit run as
                                            # one pipeline (the stage's share: the longest of them)
      memory:                               # outermost (backing store) first
        - {name: DRAM, word_bits: 16, bandwidth_bytes_per_s: 429496729600}  # shared_rw: true
                                            # access_bits: 512 -> gathered rows cost whole bursts
        - {name: GB, capacity_bytes: 16777216, word_bits: 16, read_bw: 8192,
           write_bw: 8192, double_buffer: true}
      energy:                               # Accelergy style, pJ
        array2d: {mac: 17.16, add: 8.34, max: 0.028}
        DRAM: {read: 62.4, write: 62.4}     # per word (or access_bits: 64 with pJ per access)
        leakage_pj_per_cycle: 0
      area_um2: {array2d: 1.0e8}            # optional, summed
      cores: 4                              # optional: identical cores under the backing store,
                                            # or {count, noc: {...}} (mapping/cores.py)

Bandwidths are words per cycle (``read_bw``/``write_bw``, floats allowed) or bytes per
second (``bandwidth_bytes_per_s``, converted exactly with the clock and word width).
With ``cores: N`` the compute units and the on-chip levels are per core, and so are the
leakage and their area (the backing store's area is counted once).
Every mistake is a :class:`~einsum.errors.ConfigError` naming file, line and YAML path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from einsum.errors import ConfigError
from einsum.yamlsrc import Source, YPath, resolve_named, shipped_names

from einsum.yamlsrc import load as load_yaml

from .cores import ONE, Cores, cores_from_data

ARCH_DIR = Path(__file__).parent / "arch"
UNITS = ("array2d", "array1d")
KNOWN_OPS = ("mac", "add", "mul", "max", "exp", "div", "recip", "sqrt", "log", "gelu",
             "select", "cmp")
TENSOR_CLASSES = ("default", "input", "intermediate", "output")


@dataclass(frozen=True)
class OpSpec:
    cycles: Fraction  # cycles per element per lane (1/throughput)
    latency: int = 1  # pipeline depth in cycles (paid once per Einsum and step)


@dataclass(frozen=True)
class ComputeUnit:
    name: str  # "array2d" or "array1d"
    rows: int  # 1 for the 1-D array
    cols: int  # width for the 1-D array
    macs_per_pe: int
    ops: Mapping[str, OpSpec]
    rf_entries: int
    fill_drain: bool = True
    fold_overlap: bool = True
    fuse_elementwise: bool = False
    timing: str = "systolic"  # or "broadcast": an output-stationary array fed by row/column broadcast
    tile_overhead: int = 0  # broadcast: fixed cycles per tile besides K beats and R output rows
    max_k: int | None = None  # broadcast: operand beats per command (longer K: chained commands)
    psum_in_array: bool = True  # partial sums stay in the PEs across K tiles of one output tile
    chain_stage: bool = False  # a stage's Einsums on this unit pipeline: it lasts the longest one
    pinned_elementwise: bool = False  # 2-D: element-wise work runs where its spatial mapping puts it

    @property
    def lanes(self) -> int:
        return self.rows * self.cols

    def psum_chains(self, dataflow: str, folds: int) -> bool:
        """Can an output-stationary tile of ``folds`` folds keep its partial sums in the PEs
        for the next tile of its reduced rank? Each PE needs one accumulator per fold
        (``folds <= rf_entries``); then the next K tile's operands stream in right behind
        (nothing drains in between) and fill and drain are paid once per output tile."""
        return (self.is_2d and self.psum_in_array and self.timing == "systolic" and dataflow == "os"
                and folds <= self.rf_entries)

    @property
    def is_2d(self) -> bool:
        return self.name == "array2d"


@dataclass(frozen=True)
class Level:
    name: str
    capacity_bytes: int | None  # None: unbounded (backing store)
    word_bits: int
    read_bw: Fraction  # words per cycle
    write_bw: Fraction
    double_buffer: bool = False
    shared_rw: bool = False  # reads and writes share one channel (DRAM bus)
    buffers: int = 1  # step buffers (2 = double buffering; more lets loads run further ahead)
    # the smallest unit one access moves (a DRAM burst); a gathered or scattered row costs
    # whole accesses (sim.engine). None: one word
    access_bits: int | None = None

    @property
    def capacity_words(self) -> int | None:
        return None if self.capacity_bytes is None else self.capacity_bytes * 8 // self.word_bits

    @property
    def access_words(self) -> int:
        return 1 if self.access_bits is None else self.access_bits // self.word_bits


@dataclass(frozen=True)
class Arch:
    name: str
    clock_hz: float
    units: Mapping[str, ComputeUnit]
    levels: tuple[Level, ...]
    data_bits: Mapping[str, int]
    energy: Mapping[str, Mapping[str, float]]  # component -> action -> pJ (levels: per word)
    leakage_pj_per_cycle: float = 0.0
    area_um2: Mapping[str, float] = field(default_factory=dict)
    source: str | None = None
    lines: Any = None  # the Source the arch was read from (for located errors later)
    base: YPath = ("arch",)
    cores: Cores = ONE  # identical cores under the backing store (mapping/cores.py)

    def level(self, name: str) -> Level:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(name)

    @property
    def total_area_um2(self) -> float | None:
        """Every core's units and on-chip levels, and the backing store once."""
        if not self.area_um2:
            return None
        store = self.levels[0].name
        return sum(v * (1 if k == store else self.cores.count) for k, v in self.area_um2.items())

    def bits(self, tensor_class: str) -> int:
        return self.data_bits.get(tensor_class, self.data_bits["default"])

    def error(self, path: YPath, msg: str) -> ConfigError:
        if isinstance(self.lines, Source):
            return self.lines.error(self.base + tuple(path), msg)
        return ConfigError(msg, self.source, None, self.base + tuple(path))


# ----------------------------------------------------------------------------------
def _num(src: Source, v: Any, path: YPath, what: str, *, positive: bool = True,
         allow_zero: bool = False, integer: bool = False) -> Any:
    if isinstance(v, str):
        try:
            v = float(v) if not integer else int(float(v))
        except ValueError:
            raise src.error(path, f"expected {what}, got {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise src.error(path, f"expected {what}, got {type(v).__name__} {v!r}")
    if integer and (not float(v).is_integer()):
        raise src.error(path, f"expected {what} (an integer), got {v!r}")
    if v != v or v in (float("inf"), float("-inf")):
        raise src.error(path, f"expected {what}, got {v!r}")
    if positive and (v < 0 or (v == 0 and not allow_zero)):
        raise src.error(path, f"expected {what} > 0{' or 0' if allow_zero else ''}, got {v!r}")
    return int(v) if integer else v


def _frac(v: Any) -> Fraction:
    return Fraction(str(v)) if isinstance(v, float) else Fraction(v)


def _flag(src: Source, d: dict, path: YPath, key: str) -> bool:
    """Optional boolean ``key`` of ``d`` (default false)."""
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise src.error(path + (key,), f"expected true or false, got {v!r}")
    return v


def _keys(src: Source, d: Any, path: YPath, allowed: tuple[str, ...], required: tuple[str, ...] = (),
          what: str = "a mapping") -> dict:
    if not isinstance(d, dict):
        raise src.error(path, f"expected {what}, got {type(d).__name__} {d!r}")
    for k in d:
        if k not in allowed:
            raise src.error(path + (str(k),), f"unknown key {k!r} (allowed: {', '.join(allowed)})")
    for k in required:
        if k not in d:
            raise src.error(path, f"missing required key {k!r}")
    return d


def _ops(src: Source, d: Any, path: YPath) -> dict[str, OpSpec]:
    if not isinstance(d, dict) or not d:
        raise src.error(path, "expected a mapping of op name to cycles per element, e.g. {mac: 1, add: 1}")
    out = {}
    for op, spec in d.items():
        p = path + (str(op),)
        if op not in KNOWN_OPS:
            raise src.error(p, f"unknown op {op!r} (known: {', '.join(KNOWN_OPS)})")
        if isinstance(spec, dict):
            _keys(src, spec, p, ("cycles", "latency"), ("cycles",))
            cyc = _num(src, spec["cycles"], p + ("cycles",), "cycles per element")
            lat = _num(src, spec.get("latency", 1), p + ("latency",), "a latency in cycles",
                       integer=True)
        else:
            cyc = _num(src, spec, p, "cycles per element")
            lat = 1
        out[op] = OpSpec(_frac(cyc), lat)
    return out


def arch_from_data(sec: Any, src: Source, base: YPath = ("arch",)) -> Arch:
    """Validate an ``arch:`` section (already parsed) into an :class:`Arch`."""
    allowed = ("version", "name", "description", "clock_hz", "data_bits", "array2d", "array1d",
               "memory", "energy", "area_um2", "cores")
    _keys(src, sec, base, allowed, ("version", "clock_hz", "memory"),
          "an arch section with version, clock_hz, memory and at least one compute unit")
    if sec["version"] != 1:
        raise src.error(base + ("version",), f"unsupported version {sec['version']!r} (this einarray reads 1)")
    name = str(sec.get("name", "arch"))
    clock = _num(src, sec["clock_hz"], base + ("clock_hz",), "a clock frequency in Hz")

    db = sec.get("data_bits", {"default": 16})
    if isinstance(db, int) and not isinstance(db, bool):
        db = {"default": db}
    _keys(src, db, base + ("data_bits",), TENSOR_CLASSES)
    data_bits = {k: _num(src, v, base + ("data_bits", k), "a width in bits", integer=True)
                 for k, v in db.items()}
    data_bits.setdefault("default", 16)

    units: dict[str, ComputeUnit] = {}
    if "array2d" in sec:
        p = base + ("array2d",)
        u = _keys(src, sec["array2d"], p, ("rows", "cols", "macs_per_pe", "ops", "rf_entries",
                                           "systolic", "fuse_elementwise", "chain_stage",
                                           "pinned_elementwise"),
                  ("rows", "cols", "ops"))
        sy = _keys(src, u.get("systolic", {}) or {}, p + ("systolic",),
                   ("fill_drain", "fold_overlap", "psum_in_array", "model", "tile_overhead", "max_k"))
        for k in ("fill_drain", "fold_overlap", "psum_in_array"):
            if k in sy and not isinstance(sy[k], bool):
                raise src.error(p + ("systolic", k), f"expected true or false, got {sy[k]!r}")
        timing = sy.get("model", "systolic")
        if timing not in ("systolic", "broadcast"):
            raise src.error(p + ("systolic", "model"), f"unknown timing model {timing!r} (systolic or broadcast)")
        overhead = sy.get("tile_overhead", 0)
        if isinstance(overhead, bool) or not isinstance(overhead, int) or overhead < 0:
            raise src.error(p + ("systolic", "tile_overhead"), f"expected a non-negative integer, got {overhead!r}")
        for k in ("tile_overhead", "max_k"):
            if k in sy and timing != "broadcast":
                raise src.error(p + ("systolic", k), f"{k} applies to model: broadcast")
        if "psum_in_array" in sy and timing == "broadcast":
            raise src.error(p + ("systolic", "psum_in_array"), "psum_in_array applies to model: systolic "
                            "(the broadcast model chains its commands through the accumulators)")
        max_k = sy.get("max_k")
        if max_k is not None and (isinstance(max_k, bool) or not isinstance(max_k, int) or max_k <= 0):
            raise src.error(p + ("systolic", "max_k"), f"expected a positive integer, got {max_k!r}")
        units["array2d"] = ComputeUnit(
            "array2d", _num(src, u["rows"], p + ("rows",), "a row count", integer=True),
            _num(src, u["cols"], p + ("cols",), "a column count", integer=True),
            _num(src, u.get("macs_per_pe", 1), p + ("macs_per_pe",), "MACs per PE per cycle", integer=True),
            MappingProxyType(_ops(src, u["ops"], p + ("ops",))),
            _num(src, u.get("rf_entries", 1), p + ("rf_entries",), "register-file entries", integer=True),
            sy.get("fill_drain", True), sy.get("fold_overlap", True), bool(u.get("fuse_elementwise", False)),
            timing, overhead, max_k, sy.get("psum_in_array", True),
            chain_stage=_flag(src, u, p, "chain_stage"),
            pinned_elementwise=_flag(src, u, p, "pinned_elementwise"))
    if "array1d" in sec:
        p = base + ("array1d",)
        u = _keys(src, sec["array1d"], p, ("width", "ops", "rf_entries", "fuse_elementwise",
                                           "chain_stage"), ("width", "ops"))
        units["array1d"] = ComputeUnit(
            "array1d", 1, _num(src, u["width"], p + ("width",), "a lane count", integer=True), 1,
            MappingProxyType(_ops(src, u["ops"], p + ("ops",))),
            _num(src, u.get("rf_entries", 1), p + ("rf_entries",), "register-file entries", integer=True),
            False, False, bool(u.get("fuse_elementwise", False)),
            chain_stage=_flag(src, u, p, "chain_stage"))
    if not units:
        raise src.error(base, "at least one compute unit (array2d or array1d) is needed")

    mem = sec["memory"]
    if not isinstance(mem, list) or not mem:
        raise src.error(base + ("memory",), "expected a list of memory levels, outermost (DRAM) first")
    levels: list[Level] = []
    for i, lv in enumerate(mem):
        p = base + ("memory", i)
        _keys(src, lv, p, ("name", "capacity_bytes", "word_bits", "read_bw", "write_bw",
                           "bandwidth_bytes_per_s", "double_buffer", "buffers", "shared_rw",
                           "access_bits"), ("name",))
        lname = lv["name"]
        if not isinstance(lname, str) or not lname:
            raise src.error(p + ("name",), "expected a level name")
        if lname in UNITS or any(l.name == lname for l in levels):
            raise src.error(p + ("name",), f"duplicate or reserved level name {lname!r}")
        wb = _num(src, lv.get("word_bits", data_bits["default"]), p + ("word_bits",), "a word width in bits",
                  integer=True)
        cap = lv.get("capacity_bytes")
        if cap is not None:
            cap = _num(src, cap, p + ("capacity_bytes",), "a capacity in bytes", integer=True)
        elif i > 0:
            raise src.error(p, f"level {lname!r} needs capacity_bytes (only the outermost may be unbounded)")
        if "bandwidth_bytes_per_s" in lv:
            if "read_bw" in lv or "write_bw" in lv:
                raise src.error(p + ("bandwidth_bytes_per_s",), "give either bandwidth_bytes_per_s or read_bw/write_bw")
            bps = _num(src, lv["bandwidth_bytes_per_s"], p + ("bandwidth_bytes_per_s",), "a bandwidth in bytes/s")
            rb = wbw = _frac(bps) * 8 / (_frac(clock) * wb)
        else:
            for k in ("read_bw", "write_bw"):
                if k not in lv:
                    raise src.error(p, f"missing required key {k!r} (words per cycle)")
            rb = _frac(_num(src, lv["read_bw"], p + ("read_bw",), "a read bandwidth in words per cycle"))
            wbw = _frac(_num(src, lv["write_bw"], p + ("write_bw",), "a write bandwidth in words per cycle"))
        dbuf = lv.get("double_buffer", False)
        if not isinstance(dbuf, bool):
            raise src.error(p + ("double_buffer",), f"expected true or false, got {dbuf!r}")
        shared = lv.get("shared_rw", i == 0)
        if not isinstance(shared, bool):
            raise src.error(p + ("shared_rw",), f"expected true or false, got {shared!r}")
        if rb <= 0 or wbw <= 0:
            raise src.error(p, f"level {lname!r} needs a bandwidth > 0")
        nbuf = _num(src, lv.get("buffers", 2 if dbuf else 1), p + ("buffers",), "a number of step buffers",
                    integer=True)
        if "buffers" in lv and "double_buffer" in lv and (nbuf >= 2) != dbuf:
            raise src.error(p + ("buffers",), f"buffers: {nbuf} contradicts double_buffer: {dbuf}")
        acc = None
        if "access_bits" in lv:
            acc = _num(src, lv["access_bits"], p + ("access_bits",), "bits per access", integer=True)
            if acc <= 0 or acc % wb:
                raise src.error(p + ("access_bits",), f"access_bits must be a positive multiple of the "
                                f"word ({wb} bits), got {acc}")
        levels.append(Level(lname, cap, wb, rb, wbw, nbuf >= 2, shared, nbuf, acc))
    if len(levels) < 2:
        raise src.error(base + ("memory",), "at least two levels are needed: a backing store (DRAM) and an on-chip buffer")

    en = sec.get("energy", {}) or {}
    _keys(src, en, base + ("energy",), tuple(units) + tuple(l.name for l in levels) + ("leakage_pj_per_cycle",))
    energy: dict[str, Mapping[str, float]] = {}
    for comp, tab in en.items():
        p = base + ("energy", comp)
        if comp == "leakage_pj_per_cycle":
            continue
        if comp in units:
            _keys(src, tab, p, KNOWN_OPS)
            energy[comp] = MappingProxyType({a: float(_num(src, v, p + (a,), "an energy in pJ", allow_zero=True))
                                             for a, v in tab.items()})
        else:
            _keys(src, tab, p, ("read", "write", "access_bits"), ("read", "write"))
            lvl = next(l for l in levels if l.name == comp)
            ab = _num(src, tab.get("access_bits", lvl.word_bits), p + ("access_bits",), "bits per access",
                      integer=True)
            scale = lvl.word_bits / ab  # pJ per access -> pJ per word
            energy[comp] = MappingProxyType({
                "read": float(_num(src, tab["read"], p + ("read",), "an energy in pJ", allow_zero=True)) * scale,
                "write": float(_num(src, tab["write"], p + ("write",), "an energy in pJ", allow_zero=True)) * scale})
    leak = float(_num(src, en.get("leakage_pj_per_cycle", 0), base + ("energy", "leakage_pj_per_cycle"),
                      "a leakage in pJ per cycle", allow_zero=True))
    area = sec.get("area_um2", {}) or {}
    _keys(src, area, base + ("area_um2",), tuple(units) + tuple(l.name for l in levels))
    area_v = {k: float(_num(src, v, base + ("area_um2", k), "an area in um^2")) for k, v in area.items()}
    cores = cores_from_data(sec["cores"], src, base + ("cores",)) if "cores" in sec else ONE
    return Arch(name, float(clock), MappingProxyType(units), tuple(levels), MappingProxyType(data_bits),
                MappingProxyType(energy), leak, MappingProxyType(area_v), src.file, src, tuple(base), cores)


def arch_names() -> list[str]:
    return shipped_names(ARCH_DIR)


def resolve_arch(ref: str | Path, base_dir: Path | None = None) -> Path:
    """A path (relative to ``base_dir`` first) or the name of a shipped arch."""
    return resolve_named(ref, ARCH_DIR, "shipped arch", base_dir=base_dir)


def load_arch(ref: str | Path) -> Arch:
    """Load a YAML file holding an ``arch:`` section (or a shipped arch by name)."""
    path = resolve_arch(ref)
    data, src = load_yaml(path)
    if not isinstance(data, dict) or "arch" not in data:
        raise src.error((), "expected a top-level 'arch:' section")
    return arch_from_data(data["arch"], src)
