"""The component library: energy per action and area of a hierarchy level from published tables.

``mapping/components.yaml`` holds fixed entries (``component: NAME``) and parametric tables
that this module turns into a level's numbers for ``component: {class: CLASS, attr: value,
...}``. Every figure there names its source; this module only combines them, by these rules:

- between two published points a value follows the log-log line through them (a power law,
  exact at each point); outside the points it extends the end segment and warns, naming the
  component (:class:`einsum.errors.EinarrayWarning`, located at the ``component`` key);
- a storage access of ``word_bits * block_size`` bits costs the table's per-access energy in
  proportion to the bits accessed (Horowitz gives 64-bit accesses only);
- an SRAM of ``banks`` banks is accessed one bank at a time: the energy is that of an SRAM of
  the bank's capacity; its area and leakage are per bit over the whole capacity;
- a MAC is one multiplier and one adder of ``word_bits`` (``acc_bits`` for the adder if given);
  a comparator is an adder of its width (a comparison is a subtraction);
- another node: area x Stillmaker-Baas Table 2 ``area[FROM][TO]``; energy x ``f(TO, vdd) /
  f(FROM, vdd_table)`` with ``f = a V^2 + b V + c`` from their Table 5 (``flavor: hp|lp`` for 45-7
  nm); a table whose source states no supply is scaled at the target's ``vdd`` on both sides
  (and warns so); ``vdd`` is required when ``node_nm`` differs from the table's node (as in
  nodeScale, UCLA NanoCAD's implementation of the paper), and a supply at which a fit is not
  positive is refused (the paper's per-node voltage ranges are not in the library, so a supply
  inside 0.3-2 V but outside a fitted range is not detected). Leakage figures (40 nm ERTs) and
  off-chip DRAM are not node-scaled;
- a DRAM access costs its ``dram_type``'s published pJ/bit times the bits of a block, for reads
  and writes alike (``tables.dram_pj_per_bit``: O'Connor et al.'s HBM2 and GDDR5, Malladi et
  al.'s DDR3, Horowitz's range, ...; DDR4 and LPDDR4 have no sourced figure and are refused);
- a register file has energies but no area: no published register-file area was found (see
  ``tables.regfile.note``), so its level's ``area_um2`` stays None unless the level gives one.

Classes (attributes; storage ones default ``capacity_words``/``word_bits``/``block_size`` (and
``banks``, should a level ever carry it) to the level's own keys):

========== ==========================================================================
sram       capacity_words, word_bits, block_size, banks, node_nm, vdd, flavor
regfile    depth (default capacity_words), word_bits, block_size, node_nm, vdd, flavor
dram       dram_type, word_bits, block_size
intmac     word_bits, acc_bits, node_nm, vdd, flavor (also fpmac)
intadd     word_bits, ... (also intmul, fpadd, fpmul, comparator)
exp, div   word_bits (16 only), node_nm, vdd, flavor
========== ==========================================================================

A NoC link is not a level: :func:`wire_energy_pj` gives a transfer's energy (bits, mm, estimate).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from einsum.errors import EinarrayWarning
from einsum.yamlsrc import Source, YPath
from einsum.yamlsrc import load as load_yaml

COMPONENTS_FILE = Path(__file__).parent / "components.yaml"

_NODE = ("node_nm", "vdd", "flavor")
_STORE = ("capacity_words", "word_bits", "block_size")
ATTRS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "sram": _STORE + ("banks",) + _NODE,
    "regfile": ("depth", "word_bits", "block_size") + _NODE,
    "dram": ("dram_type", "word_bits", "block_size"),
    "intmac": ("word_bits", "acc_bits") + _NODE,
    "fpmac": ("word_bits", "acc_bits") + _NODE,
    "intadd": ("word_bits",) + _NODE,
    "intmul": ("word_bits",) + _NODE,
    "fpadd": ("word_bits",) + _NODE,
    "fpmul": ("word_bits",) + _NODE,
    "comparator": ("word_bits",) + _NODE,
    "exp": ("word_bits",) + _NODE,
    "div": ("word_bits",) + _NODE,
})
STORAGE_CLASSES = ("sram", "regfile", "dram")
COMPUTE_CLASSES = ("intmac", "fpmac", "intadd", "intmul", "fpadd", "fpmul", "comparator", "exp", "div")
_OPS = {"intadd": "int_add", "intmul": "int_mult", "fpadd": "fp_add", "fpmul": "fp_mult",
        "comparator": "int_add"}


@dataclass(frozen=True)
class Library:
    components: Mapping[str, Mapping[str, Any]]  # fixed entries by name
    tables: Mapping[str, Mapping[str, Any]]
    scaling: Mapping[str, Any]
    sources: Mapping[str, Mapping[str, Any]]
    source: Source


@functools.lru_cache(maxsize=1)
def load_library() -> Library:
    """``mapping/components.yaml``, read once."""
    data, src = load_yaml(COMPONENTS_FILE)
    for k in ("components", "tables", "scaling", "sources"):
        if not isinstance(data, dict) or not isinstance(data.get(k), dict):
            raise src.error((), f"expected a top-level '{k}:' mapping")
    return Library(data["components"], data["tables"], data["scaling"], data["sources"], src)


def load_components() -> dict[str, dict]:
    """The fixed entries, ``name -> entry``."""
    return dict(load_library().components)


# ----------------------------------------------------------------------------------
def interpolate(points: Mapping[int | float, float], x: float) -> tuple[float, bool]:
    """The value at ``x`` on the log-log polyline through ``points``; True if ``x`` lies
    outside them (extrapolated along the end segment). One point: constant, outside unless equal."""
    xs = sorted(points)
    if len(xs) == 1:
        return float(points[xs[0]]), x != xs[0]
    if x in points:
        return float(points[x]), False
    outside = x < xs[0] or x > xs[-1]
    j = 1 if x < xs[0] else len(xs) - 1 if x > xs[-1] else next(i for i in range(1, len(xs)) if xs[i] >= x)
    x0, x1 = xs[j - 1], xs[j]
    y0, y1 = float(points[x0]), float(points[x1])
    k = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** k, outside


def _node_key(node: int, flavor: str) -> str:
    return str(node) if node >= 65 else f"{flavor}{node}"


def energy_factor(node: int, vdd: float, flavor: str = "hp") -> float:
    """Stillmaker-Baas Table 5: ``a V^2 + b V + c`` of ``node`` (relative energy per operation)."""
    a, b, c = load_library().scaling["energy"][_node_key(node, flavor)]
    return a * vdd * vdd + b * vdd + c


def area_factor(src_node: int, dst_node: int) -> float:
    """Stillmaker-Baas Table 2: an area at ``src_node`` times this is the area at ``dst_node``."""
    sc = load_library().scaling
    return float(sc["area"][src_node][list(sc["nodes"]).index(dst_node)])


# ----------------------------------------------------------------------------------
class _Ctx:
    """One component spec being resolved: its attributes, where they are, and its warnings."""

    def __init__(self, spec: dict, level: Mapping[str, Any], src: Source, path: YPath):
        self.spec, self.level, self.src, self.path = spec, level, src, path
        self.klass = spec["class"]
        self.label = f"{self.klass}(" + ", ".join(f"{k}={v}" for k, v in spec.items() if k != "class") + ")"

    def err(self, key: str | None, msg: str):
        return self.src.error(self.path + ((key,) if key else ()), f"component {self.label}: {msg}")

    def warn(self, msg: str) -> None:
        warnings.warn(str(self.src.error(self.path, f"component {self.label}: {msg}")), EinarrayWarning,
                      stacklevel=4)

    def get(self, key: str, default: Any = None, *, level_key: str | None = None) -> Any:
        if key in self.spec:
            return self.spec[key]
        lk = level_key or key
        return self.level.get(lk, default) if lk in _STORE + ("banks",) else default

    def posint(self, key: str, default: Any = None, *, level_key: str | None = None) -> int:
        v = self.get(key, default, level_key=level_key)
        if v is None:
            raise self.err(None, f"needs {key} (on the component or the level)")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise self.err(key if key in self.spec else None, f"{key} must be a positive integer, got {v!r}")
        return v

    def number(self, key: str, lo: float, hi: float) -> float | None:
        v = self.spec.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise self.err(key, f"{key} must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    def scale(self, table: Mapping[str, Any], what: str) -> tuple[float, float]:
        """(energy factor, area factor) from ``table``'s node to the spec's ``node_nm``."""
        lib = load_library()
        nodes = list(lib.scaling["nodes"])
        t_node = table["node_nm"]
        node = self.spec.get("node_nm", t_node)
        flavor = self.spec.get("flavor", "hp")
        if flavor not in ("hp", "lp"):
            raise self.err("flavor", f"flavor must be hp or lp (Stillmaker-Baas's PTM/ITRS rows), got {flavor!r}")
        if node not in nodes:
            raise self.err("node_nm", f"node_nm must be one of Stillmaker-Baas's nodes "
                           f"({', '.join(map(str, nodes))}), got {node!r}")
        vdd = self.number("vdd", 0.3, 2.0)
        if node == t_node and vdd is None:
            return 1.0, 1.0
        if vdd is None:
            raise self.err("node_nm", f"scaling {what} from {t_node} nm to {node} nm needs vdd (the supply in V "
                           "at which Stillmaker-Baas's energy fit is evaluated)")
        if t_node not in nodes:
            raise self.err("node_nm", f"{what} is published at {t_node} nm, a node Stillmaker-Baas do not "
                           "tabulate: it cannot be scaled")
        t_vdd = table.get("vdd")
        if t_vdd is None:
            self.warn(f"{what}'s source states no supply voltage: scaled from {t_node} to {node} nm at "
                      f"{vdd} V on both sides")
            t_vdd = vdd
        f_to, f_from = energy_factor(node, vdd, flavor), energy_factor(t_node, t_vdd, flavor)
        for n, v, f in ((node, vdd, f_to), (t_node, t_vdd, f_from)):
            if f <= 0:
                raise self.err("vdd", f"Stillmaker-Baas's energy fit for {n} nm is not positive at {v} V "
                               "(outside the supply range it was fitted over)")
        return f_to / f_from, area_factor(t_node, node)

    def table(self, name: str) -> Mapping[str, Any]:
        return load_library().tables[name]

    def lookup(self, name: str, key: str, x: float, what: str) -> float:
        v, outside = interpolate(self.table(name)[key], x)
        if outside:
            pts = sorted(self.table(name)[key])
            self.warn(f"{what} {x:g} lies outside the published points ({', '.join(f'{p:g}' for p in pts)}) "
                      f"of {name}.{key}: extrapolated")
        return v


def _op(c: _Ctx, table: str, bits: int) -> tuple[float, float | None]:
    t = c.table(table)
    e = c.lookup(table, "energy_pj", bits, "word_bits")
    a = c.lookup(table, "area_um2", bits, "word_bits") if "area_um2" in t else None
    return e, a


def _compute(c: _Ctx) -> dict:
    w = c.posint("word_bits", c.level.get("word_bits", 16))
    k = c.klass
    if k in ("exp", "div"):
        t = c.table(k)
        if w != t["word_bits"]:
            raise c.err("word_bits", f"{k} is published at {t['word_bits']} bits only, got {w}")
        fe, _ = c.scale(t, k)
        return {"class": k, "word_bits": w, "energy": {"compute": t["energy_pj"] * fe}}
    if k in ("intmac", "fpmac"):
        pre = "int" if k == "intmac" else "fp"
        acc = c.posint("acc_bits", w)
        em, am = _op(c, f"{pre}_mult", w)
        ea, aa = _op(c, f"{pre}_add", acc)
        fe, fa = c.scale(c.table(f"{pre}_add"), k)
        area = None if am is None or aa is None else (am + aa) * fa
        return {"class": k, "word_bits": w, "energy": {"compute": (em + ea) * fe}, "area_um2": area}
    e, a = _op(c, _OPS[k], w)
    fe, fa = c.scale(c.table(_OPS[k]), k)
    return {"class": k, "word_bits": w, "energy": {"compute": e * fe}, "area_um2": None if a is None else a * fa}


def _storage(c: _Ctx) -> dict:
    k = c.klass
    w = c.posint("word_bits", 16)
    b = c.posint("block_size", 1)
    bits = w * b
    if k == "dram":
        types = c.table("dram_pj_per_bit")["types"]
        dt = c.spec.get("dram_type")
        if dt not in types:
            raise c.err("dram_type" if "dram_type" in c.spec else None,
                        f"dram_type must be one of {', '.join(types)} (got {dt!r}; DDR4 and LPDDR4 have no "
                        "published per-bit figure confirmed in mapping/components.yaml)")
        e = types[dt]["pj_per_bit"] * bits
        return {"class": "DRAM", "word_bits": w, "block_size": b,
                "energy": {"read": e, "write": e, "update": e, "leak": 0.0}}
    if k == "sram":
        cap = c.posint("capacity_words")
        banks = c.posint("banks", 1)
        if cap % banks:
            raise c.err("banks", f"{banks} banks do not divide the capacity of {cap} words")
        bank_bytes = cap * w / 8 / banks
        e64 = c.lookup("sram_64bit_access", "energy_pj", bank_bytes, "bank capacity (bytes)")
        fe, fa = c.scale(c.table("sram_64bit_access"), "sram")
        e = e64 * bits / 64 * fe
        total_bits = cap * w
        leak = c.table("sram_leak_per_bit")["value"] * total_bits
        area = c.table("sram_area_per_bit")["value"] * total_bits * fa
        return {"class": "SRAM", "word_bits": w, "block_size": b, "capacity_words": cap,
                "energy": {"read": e, "write": e, "update": e, "leak": leak}, "area_um2": area}
    # regfile
    t = c.table("regfile")
    depth = c.posint("depth", c.level.get("capacity_words"), level_key="capacity_words")
    if "depth" in c.spec and "capacity_words" in c.level and c.level["capacity_words"] != depth:
        raise c.err("depth", f"depth {depth} differs from the level's capacity_words {c.level['capacity_words']}")
    if (depth, bits) != (t["depth"], t["word_bits"]):
        c.warn(f"extrapolates from the one published register file ({t['depth']} x {t['word_bits']} bits) to "
               f"{depth} x {bits} bits")
    fe, _ = c.scale(t, "regfile")
    r = bits / t["word_bits"] * math.sqrt(depth / t["depth"]) * fe
    leak = c.table("regfile_leak_per_bit")["value"] * depth * w
    return {"class": "regfile", "word_bits": w, "block_size": b, "capacity_words": depth,
            "energy": {"read": t["read_pj"] * r, "write": t["write_pj"] * r, "update": t["write_pj"] * r,
                       "leak": leak}}


def wire_energy_pj(bits: int, mm: float, estimate: str) -> float:
    """A transfer of ``bits`` over ``mm`` of on-chip wire (a NoC hop's link), pJ, at one of the
    library's published per-bit-per-mm ``estimate``s (``tables.wire_fj_per_bit_mm``)."""
    est = load_library().tables["wire_fj_per_bit_mm"]["estimates"]
    if estimate not in est:
        raise ValueError(f"estimate must be one of {', '.join(est)}, got {estimate!r}")
    return est[estimate]["fj"] * bits * mm / 1000.0


def resolve(spec: Any, level: Mapping[str, Any], src: Source, path: YPath, kind: str) -> dict:
    """A level's keys from ``component:`` at ``path`` (``kind``: 'storage' or 'compute'): a
    fixed entry for a name, a computed one for ``{class: ..., attrs}``."""
    lib = load_library()
    if isinstance(spec, str):
        if spec not in lib.components:
            raise src.error(path, f"unknown component {spec!r} (mapping/components.yaml has: "
                            f"{', '.join(sorted(lib.components))}; or give {{class: ..., attributes}})")
        return {k: v for k, v in lib.components[spec].items() if k != "source"}
    if not isinstance(spec, dict) or "class" not in spec:
        raise src.error(path, f"expected a component name or {{class: CLASS, attribute: value, ...}}, got {spec!r}")
    klass = spec["class"]
    allowed = STORAGE_CLASSES if kind == "storage" else COMPUTE_CLASSES
    if klass not in allowed:
        what = "a storage level" if kind == "storage" else "the compute level"
        raise src.error(path + ("class",), f"unknown component class {klass!r} for {what} (classes: "
                        f"{', '.join(allowed)})")
    for key in spec:
        if key != "class" and key not in ATTRS[klass]:
            raise src.error(path + (str(key),), f"unknown attribute {key!r} of class {klass} (attributes: "
                            f"{', '.join(ATTRS[klass])})")
    c = _Ctx(spec, level, src, path)
    out = _storage(c) if kind == "storage" else _compute(c)
    out["label"] = c.label
    return out
