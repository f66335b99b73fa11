"""The mapping of an Einsum onto a Timeloop-class memory hierarchy (:mod:`mapping.hierarchy`):
its per-level loop nest, loading and legality, and cascades of several Einsums.

The ``mapping:`` section of such a config has a ``nest:`` entry per storage level (by name,
any order; a level left out has no loops and keeps what it may keep)::

    mapping:
      version: 1
      nest:
        MainMemory: {spatial: {X: {C: 16}}}                    # fan-out to the 16 GlobalBuffers
        GlobalBuffer: {temporal: {C: 2, K: 32, R: 3}}          # loops outermost first
        RegisterFile: {temporal: {P: 16}, bypass: [Outputs]}   # or keep: [...]
      counting: {output_first_fill: false, extrapolate: true}   # see sim/nest.py

``temporal`` lists a level's loops outermost first (``order: [...]`` may reorder them);
``spatial: {X: {...}, Y: {...}}`` spreads loops over the fan-out to the next inner level.
``tensors: {Q: Inputs, K: Weights, S: Outputs}`` binds the Einsum's tensors to the names the
arch's ``keeps`` use (:func:`tensor_binding`); ``pad: {P: 200}`` runs a rank's loops over a
larger, zero-padded size, for a size such as 197 that does not factor (:func:`padding`).
A cascade of several sum-of-products Einsums maps each under ``einsums: {NAME: {nest,
tensors, pad, counting}}`` (a :class:`CascadeNest`, run one after another by
:mod:`sim.nest_cascade`); ``on_chip: {H: GlobalBuffer}`` keeps an intermediate in an
on-chip level between them instead of the outermost one (fused, :mod:`mapping.fusion`), whole or a
tile at a time (the loops above the level tile only its ranks, alike in every Einsum that
touches it: :func:`mapping.fusion.check_tiles`). Einsums that are not sums of products run on the arch's
vector unit (:mod:`mapping.vector`).
Checked, each error naming file, line and YAML path: the Einsum is one sum of products with
affine subscripts; every rank's factors multiply to its size; spatial factors fit the fan-out
(per mesh dimension); every kept tensor is one the level may keep; the outermost level keeps
every tensor; each level's tiles fit its capacity. The counting model is :mod:`sim.nest`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from einsum.cascade import Cascade, Einsum
from einsum.errors import ConfigError
from einsum.expr import Access, BinOp, Index, Num, Param, Unary, factors
from einsum.yamlsrc import Source, YPath

from .hierarchy import Hierarchy, _mapping, _posint, hierarchy_from_data
from .vector import macs_can_run, vector_job

@dataclass(frozen=True)
class LevelMap:
    level: str
    temporal: tuple[tuple[str, int], ...]  # (rank, factor), outermost first
    spatial_x: tuple[tuple[str, int], ...]
    spatial_y: tuple[tuple[str, int], ...]
    keep: tuple[str, ...]  # tensors held at this level


@dataclass(frozen=True)
class Operand:
    """A tensor of the Einsum with its affine subscripts: coordinate d is
    ``sum(coef * index) + const`` over ``terms[d]``."""

    name: str
    terms: tuple[tuple[tuple[str, int], ...], ...]  # per dim: ((rank, coef), ...)
    consts: tuple[int, ...]
    is_output: bool

    @property
    def ranks(self) -> frozenset[str]:
        """The ranks its subscripts use (a loop over any other leaves its tile in place)."""
        return frozenset(r for terms in self.terms for r, _ in terms)


@dataclass(frozen=True)
class NestConfig:
    """A config with a hierarchy arch: one sum-of-products Einsum, its arch and its mapping."""

    cascade: Cascade
    einsum: Einsum
    ranks: Mapping[str, int]  # iterated rank -> size
    operands: tuple[Operand, ...]  # inputs in reading order, then the output
    arch: Hierarchy
    levels: tuple[LevelMap, ...]  # one per storage level, outermost first
    output_first_fill: bool = False
    extrapolate: bool = True  # Timeloop's temporal extrapolation (iterations #0 and #1 x (n - 1))
    source: str | None = None
    mapping_origin: str = "given"
    tensors: Mapping[str, str] = field(default_factory=dict)  # Einsum tensor -> the arch's name (binding)
    pad: Mapping[str, int] = field(default_factory=dict)  # padded rank -> its size in the Einsum
    roots: Mapping[str, int] = field(default_factory=dict)  # tensor -> the level it lives in, if not the outermost

    def root(self, tensor: str) -> int:
        """The level that is ``tensor``'s backing store: the outermost, or the on-chip level a
        cascade keeps it in between its Einsums (``mapping.on_chip``)."""
        return self.roots.get(tensor, 0)

    @property
    def useful_computes(self) -> int:
        """The Einsum's own MACs: :attr:`computes` less the padding's (``mapping.pad``)."""
        return math.prod(self.pad.get(r, n) for r, n in self.ranks.items())

    @property
    def computes(self) -> int:
        return math.prod(self.ranks.values())

    @property
    def steps(self) -> int:
        """Values of the temporal loops: MACs over the utilized MAC instances."""
        return self.computes // math.prod(f for lm in self.levels for _, f in lm.spatial_x + lm.spatial_y)

    def arch_name(self, tensor: str) -> str:
        """The name the arch's ``keeps`` and ``banks.assign`` use for the Einsum's ``tensor``
        (the mapping's ``tensors:`` binding; the tensor's own name if unbound)."""
        return self.tensors.get(tensor, tensor)


def _affine(e: Any) -> tuple[dict[str, int], int] | None:
    """``sum(coef * index) + const`` of a subscript, or None if it is not affine."""
    if isinstance(e, Index):
        return {e.name: 1}, 0
    if isinstance(e, Num) and isinstance(e.value, int):
        return {}, e.value
    if isinstance(e, Unary) and e.op == "-":
        r = _affine(e.operand)
        return None if r is None else ({k: -v for k, v in r[0].items()}, -r[1])
    if isinstance(e, BinOp) and e.op in ("+", "-"):
        a, b = _affine(e.left), _affine(e.right)
        if a is None or b is None:
            return None
        s = 1 if e.op == "+" else -1
        terms = dict(a[0])
        for k, v in b[0].items():
            terms[k] = terms.get(k, 0) + s * v
        return {k: v for k, v in terms.items() if v}, a[1] + s * b[1]
    if isinstance(e, BinOp) and e.op == "*":
        a, b = _affine(e.left), _affine(e.right)
        if a is None or b is None:
            return None
        if not a[0]:
            a, b = b, a
        if b[0]:
            return None  # index * index
        return {k: v * b[1] for k, v in a[0].items()}, a[1] * b[1]
    return None


def iterated_ranks(c: Cascade, e: Einsum) -> dict[str, int]:
    """The ranks Einsum ``e`` of ``c`` loops over, and their sizes: what a nest must factor."""
    return {ix.upper(): c.ranks[ix.upper()].size for ix in e.iter_indices}


def _operands(c: Cascade, e: Einsum) -> tuple[Einsum, dict[str, int], tuple[Operand, ...]]:
    epath = ("einsum", "expressions", e.position)
    if e.reduce_op not in (None, "sum") or e.kind != "plain":
        raise ConfigError(f"{e.name}: a hierarchy arch maps a sum of products (got {e.reduce_op or e.kind})",
                          c.source, None, epath)
    accs = []
    for f, div in factors(e.stmt.rhs):
        if isinstance(f, Access) and not div:
            accs.append(f)
        elif not isinstance(f, (Num, Param)) or div:
            raise ConfigError(f"{e.name}: a hierarchy arch maps a product of tensors; {f} is not a tensor "
                              "factor", c.source, None, epath)
    if not accs:
        raise ConfigError(f"{e.name}: no tensor on the right-hand side", c.source, None, epath)
    ranks = iterated_ranks(c, e)
    ops = []
    for a, is_out in [(a, False) for a in accs] + [(e.stmt.lhs, True)]:
        terms, consts = [], []
        for s in a.subscripts:
            aff = _affine(s)
            if aff is None:
                raise ConfigError(f"{e.name}: subscript {s} of {a.tensor} is not affine in the indices",
                                  c.source, None, epath)
            terms.append(tuple(sorted((k.upper(), v) for k, v in aff[0].items())))
            consts.append(aff[1])
        if any(o.name == a.tensor for o in ops):
            raise ConfigError(f"{e.name}: tensor {a.tensor} is read twice", c.source, None, epath)
        ops.append(Operand(a.tensor, tuple(terms), tuple(consts), is_out))
    return e, ranks, tuple(ops)


def _loops(src: Source, d: Any, path: YPath, ranks: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    if d is None:
        return ()
    if not isinstance(d, dict):
        raise src.error(path, f"expected {{RANK: factor}}, got {d!r}")
    out = []
    for r, f in d.items():
        if r not in ranks:
            raise src.error(path + (str(r),), f"{r!r} is not a rank of the Einsum (ranks: {', '.join(ranks)})")
        out.append((r, _posint(src, f, path + (str(r),), "a loop factor")))
    return tuple(out)


def _entry(sec: Any, src: Source, base: YPath, key: str, what: str) -> tuple[dict | None, YPath]:
    """A mapping section's optional ``key: {...}`` entry (None if absent) and its YAML path."""
    d = sec.get(key) if isinstance(sec, dict) else None
    p = base + (key,)
    if d is not None and not isinstance(d, dict):
        raise src.error(p, f"expected {what}, got {d!r}")
    return d, p


def tensor_binding(sec: Any, src: Source, base: YPath, arch: Hierarchy,
                   ops: tuple[Operand, ...]) -> Mapping[str, str]:
    """The mapping's ``tensors: {EINSUM_TENSOR: ARCH_NAME}``: which of the names the arch's
    ``keeps`` use (Weights, Inputs, Outputs for a CNN arch) each tensor of the Einsum takes, so
    an arch written for one workload maps another (``S[m, p] = Q[m, e] * K[p, e]`` with
    ``{Q: Inputs, K: Weights, S: Outputs}``). Unbound tensors keep their own names; two tensors
    may not take one name; where every level below the outermost lists its keeps, a name must
    be one of them."""
    d, p = _entry(sec, src, base, "tensors", "{TENSOR: arch tensor name}")
    if d is None:
        return MappingProxyType({})
    names = [o.name for o in ops]
    known = sorted({t for lv in arch.levels if lv.keeps for t in lv.keeps})
    strict = all(lv.keeps is not None for lv in arch.levels[1:])  # else a level keeps any name
    for t, a in d.items():
        if t not in names:
            raise src.error(p + (str(t),), f"{t!r} is not a tensor of the Einsum ({', '.join(names)})")
        if not isinstance(a, str) or not a or (strict and a not in known):
            raise src.error(p + (t,), f"expected a tensor name the arch's levels keep "
                            f"({', '.join(known) or 'any'}), got {a!r}")
    out = {o: d.get(o, o) for o in names}
    dup = [a for a in set(out.values()) if list(out.values()).count(a) > 1]
    if dup:
        raise src.error(p, f"two tensors of the Einsum are bound to {dup[0]!r}: "
                        f"{', '.join(t for t in names if out[t] == dup[0])}")
    return MappingProxyType({t: a for t, a in out.items() if a != t})


def padding(sec: Any, src: Source, base: YPath, ranks: Mapping[str, int]) -> dict[str, int]:
    """The mapping's ``pad: {RANK: size}``: ranks whose loops run over a larger size than the
    Einsum's (zero-padded tensors), so that a size with a large prime factor (197 tokens) can be
    factored over the levels. The padded elements are fetched, held and computed like the others,
    so every count is that of the padded Einsum; the result also gives the useful MACs. Returns
    the padded sizes of the padded ranks."""
    d, p = _entry(sec, src, base, "pad", "{RANK: padded size}")
    if d is None:
        return {}
    out = {}
    for r, v in d.items():
        if r not in ranks:
            raise src.error(p + (str(r),), f"{r!r} is not a rank of the Einsum ({', '.join(ranks)})")
        if isinstance(v, bool) or not isinstance(v, int) or v < ranks[r]:
            raise src.error(p + (r,), f"expected a size >= the rank's {ranks[r]}, got {v!r}")
        if v > ranks[r]:
            out[r] = v
    return out


def _factor_hint(ranks: Mapping[str, int], r: str) -> str:
    """For a factor-product error: a prime size can only go whole into one loop."""
    n = ranks[r]
    if n < 4 or any(n % d == 0 for d in range(2, int(n ** 0.5) + 1)):
        return ""
    return (f" ({n} is prime, so one loop must take it whole; mapping.pad: {{{r}: N}} runs the loops "
            f"over a larger N, zero-padded)")


def nest_mapping_from_data(sec: Any, src: Source, base: YPath, arch: Hierarchy, ranks: Mapping[str, int],
                           ops: tuple[Operand, ...], on_chip: frozenset[str] = frozenset()
                           ) -> tuple[tuple[LevelMap, ...], dict[str, bool]]:
    """The levels' loops and keeps of a ``mapping:`` section, checked (the module docstring);
    ``on_chip`` tensors (a cascade's intermediates kept in a level, :func:`mapping.fusion.on_chip`)
    need not be kept at the outermost level."""
    _mapping(src, sec, base, ("version", "nest", "counting", "tensors", "pad"),
             "a mapping section {version, nest, counting, tensors, pad}")
    if "version" in sec and sec["version"] != 1:
        raise src.error(base + ("version",), f"unsupported version {sec['version']!r} (this einarray reads 1)")
    if "nest" not in sec:
        raise src.error(base, "a hierarchy arch needs a 'nest:' mapping (one entry per storage level)")
    nest = _mapping(src, sec["nest"], base + ("nest",), tuple(lv.name for lv in arch.levels),
                    "a mapping of storage level name to its loops")
    cnt = _mapping(src, sec.get("counting") or {}, base + ("counting",), ("output_first_fill", "extrapolate"),
                   "{output_first_fill: bool, extrapolate: bool}")
    flags = {}
    for k, default in (("output_first_fill", False), ("extrapolate", True)):
        flags[k] = cnt.get(k, default)
        if not isinstance(flags[k], bool):
            raise src.error(base + ("counting", k), f"expected true or false, got {flags[k]!r}")
    names = [o.name for o in ops]
    bound = tensor_binding(sec, src, base, arch, ops)
    out: list[LevelMap] = []
    prod = {r: 1 for r in ranks}
    for i, lv in enumerate(arch.levels):
        p = base + ("nest", lv.name)
        d = _mapping(src, nest.get(lv.name) or {}, p, ("temporal", "order", "spatial", "keep", "bypass"),
                     "{temporal, order, spatial, keep, bypass}")
        temporal = _loops(src, d.get("temporal"), p + ("temporal",), ranks)
        if "order" in d:
            order = d["order"]
            tr = [r for r, _ in temporal]
            if not isinstance(order, list) or sorted(map(str, order)) != sorted(tr):
                raise src.error(p + ("order",), f"expected the temporal ranks in some order, outermost first "
                                f"({', '.join(tr)}), got {order!r}")
            temporal = tuple(sorted(temporal, key=lambda rf: order.index(rf[0])))
        sp = _mapping(src, d.get("spatial") or {}, p + ("spatial",), ("X", "Y"), "{X: {RANK: factor}, Y: ...}")
        sx = _loops(src, sp.get("X"), p + ("spatial", "X"), ranks)
        sy = _loops(src, sp.get("Y"), p + ("spatial", "Y"), ranks)
        fx, fy = arch.fanout(i)
        for dim, loops, fan in (("X", sx, fx), ("Y", sy, fy)):
            n = math.prod(f for _, f in loops)
            if n > fan:
                raise src.error(p + ("spatial", dim), f"spatial factors {n} exceed the fan-out of {lv.name} "
                                f"along {dim} ({fan})")
        for r, f in temporal + sx + sy:
            prod[r] *= f
        allowed = tuple(t for t in names if lv.keeps is None or bound.get(t, t) in lv.keeps)
        for k in ("keep", "bypass"):
            v = d.get(k)
            if v is not None and (not isinstance(v, list) or any(t not in names for t in v)):
                raise src.error(p + (k,), f"expected a list of tensors of the Einsum ({', '.join(names)}), got {v!r}")
        kept, bypass = d.get("keep") or [], d.get("bypass") or []
        for t in kept:
            if t not in allowed:
                raise src.error(p + ("keep",), f"{lv.name} may not keep {t}"
                                + (f" (bound to {bound[t]})" if t in bound else "")
                                + f" (its keeps: {', '.join(lv.keeps or ())})")
            if t in bypass:
                raise src.error(p + ("bypass",), f"{t} is both kept and bypassed at {lv.name}")
        if "keep" in d and "bypass" not in d:
            keep = tuple(t for t in names if t in kept)  # keep: exactly these
        else:  # bypass (and keep): everything the level may keep but the bypassed
            keep = tuple(t for t in names if (t in allowed or t in kept) and t not in bypass)
        miss = [t for t in names if t not in keep and t not in on_chip]
        if i == 0 and miss:
            raise src.error(p, f"the outermost level {lv.name} must keep every tensor (missing: {', '.join(miss)})")
        out.append(LevelMap(lv.name, temporal, sx, sy, keep))
    for r, n in ranks.items():
        if prod[r] != n:
            raise src.error(base + ("nest",), f"the factors of rank {r} multiply to {prod[r]}, not its size {n}"
                            + _factor_hint(ranks, r))
    return tuple(out), flags


def tile_words(cfg_levels: tuple[LevelMap, ...], i: int, op: Operand) -> int:
    """Words of ``op``'s tile at level ``i``: its footprint over the loops of levels >= i (the
    bounding box of each affine subscript: exact for unit coefficients such as ``r + p``, an
    upper bound for strided ones, so a capacity check never passes a tile that overflows)."""
    ext: dict[str, int] = {}
    for lm in cfg_levels[i:]:
        for r, f in lm.temporal + lm.spatial_x + lm.spatial_y:
            ext[r] = ext.get(r, 1) * f
    n = 1
    for terms in op.terms:
        n *= 1 + sum(abs(c) * (ext.get(r, 1) - 1) for r, c in terms)
    return n


@dataclass(frozen=True)
class CascadeNest:
    """A cascade of several sum-of-products Einsums on a hierarchy arch: one
    :class:`NestConfig` per Einsum (``mapping.einsums: {NAME: {nest, tensors, pad, counting}}``),
    run one after another. A tensor one Einsum writes and a later one reads goes through the
    outermost level, as each Einsum's counts say, unless ``on_chip`` keeps it in an on-chip
    level between them (fused: its backing store is that level in both Einsums)."""

    cascade: Cascade
    configs: tuple[NestConfig, ...]  # the MACs' Einsums, in the cascade's order
    source: str | None = None
    on_chip: Mapping[str, str] = field(default_factory=dict)  # intermediate -> the level it stays in
    vector: tuple = ()  # mapping.vector.VectorJob: the vector unit's Einsums, in the cascade's order

    @property
    def arch(self) -> Hierarchy:
        return self.configs[0].arch if self.configs else self.vector[0].arch


def refilled(cfg_levels: tuple[LevelMap, ...], i: int, op: Operand) -> bool:
    """Whether level ``i``'s tile of ``op`` changes while the level runs: some temporal loop of a
    level above it indexes one of the tensor's ranks (its instances then refill it)."""
    return any(r in op.ranks and f > 1 for lm in cfg_levels[:i] for r, f in lm.temporal)


def level_words(cfg_levels: tuple[LevelMap, ...], i: int, ops: tuple[Operand, ...], keep: tuple[str, ...],
                double_buffered: bool) -> int:
    """Words level ``i`` needs for the tiles it keeps: each tile once, or, at a double-buffered
    level, twice for a tensor it refills (the next tile arrives while the current one is used)."""
    return sum(tile_words(cfg_levels, i, o) * (2 if double_buffered and refilled(cfg_levels, i, o) else 1)
               for o in ops if o.name in keep)


def all_double_buffered(cfg: NestConfig) -> NestConfig:
    """``cfg`` on its arch with every level double buffered (``double_buffered: true``): the
    what-if the studies report beside a mapping's timeline (its tiles may then not fit:
    :func:`level_words` says)."""
    return replace(cfg, arch=replace(cfg.arch, levels=tuple(replace(lv, double_buffered=True)
                                                            for lv in cfg.arch.levels)))


def nest_config(casc: Cascade, arch_sec: Any, asrc: Source, ab: YPath, mapping: tuple[Any, Source, YPath] | None,
                src: Source, source: str | None, instances: int = 1) -> NestConfig | CascadeNest:
    """Build a :class:`NestConfig` (one Einsum) or a :class:`CascadeNest` (several) from the
    loaded sections (called by the config loader when the arch has a ``hierarchy:``)."""
    arch = hierarchy_from_data(arch_sec, asrc, ab)
    if instances != 1:
        raise src.error(("workload",), "instances/batch are not modelled for a hierarchy arch; fold them "
                        "into a rank of the Einsum")
    if mapping is None and arch.vector is not None and not any(macs_can_run(e) for e in casc.einsums):
        mapping = ({}, src, ("mapping",))  # every Einsum on the vector unit: nothing to map
    if mapping is None:
        what = "a 'nest:' entry per level" if len(casc.einsums) == 1 else \
            f"'einsums:' with a nest per Einsum ({', '.join(e.name for e in casc.einsums)})"
        raise src.error((), f"a hierarchy arch needs a mapping: section with {what}")
    m, msrc, mb = mapping
    if len(casc.einsums) == 1 and (arch.vector is None or macs_can_run(casc.einsums[0])):
        if isinstance(m, dict) and "einsums" in m:
            raise msrc.error(mb + ("einsums",), "a cascade of one Einsum maps it with 'nest:' (and tensors, pad, "
                             "counting) directly")
        return _one(casc, casc.einsums[0], arch, asrc, ab, m, msrc, mb, src, source)
    if isinstance(m, dict) and "nest" in m:
        raise msrc.error(mb + ("nest",), f"cascade {casc.name!r} has {len(casc.einsums)} Einsums "
                         f"({', '.join(e.name for e in casc.einsums)}): map each under einsums: "
                         "{NAME: {nest, tensors, pad}}")
    _mapping(msrc, m, mb, ("version", "einsums", "counting", "on_chip"),
             "a mapping section {version, einsums, counting, on_chip}")
    if "version" in m and m["version"] != 1:
        raise msrc.error(mb + ("version",), f"unsupported version {m['version']!r} (this einarray reads 1)")
    names = [e.name for e in casc.einsums]
    per = _mapping(msrc, m.get("einsums") or {}, mb + ("einsums",), tuple(names),
                   "{EINSUM: {nest, tensors, pad, counting}} for every Einsum of the cascade")

    def on_vector(e: Einsum) -> bool:  # mapping.vector: what the MACs cannot run, or a 1-tensor sum
        sec = per.get(e.name)
        return arch.vector is not None and not (macs_can_run(e) or (isinstance(sec, dict) and "nest" in sec))

    missing = [e.name for e in casc.einsums if e.name not in per and not on_vector(e)]
    if missing:
        hint = "" if arch.vector is not None else " (an arch with a vector: unit runs what is not a sum of products)"
        raise msrc.error(mb + ("einsums",), f"no mapping for Einsum(s) {', '.join(missing)} of cascade "
                         f"{casc.name!r} (each needs its own nest){hint}")
    from .fusion import check_tiles, on_chip  # it builds on this module's tiles

    rooted = on_chip(m, msrc, mb, casc, arch)
    cfgs, jobs = [], []
    for e in casc.einsums:
        if on_vector(e):
            jobs.append(vector_job(casc, e, arch, rooted, per.get(e.name), msrc, mb + ("einsums", e.name), asrc, ab))
            continue
        sec = per[e.name]
        if isinstance(sec, dict) and "counting" not in sec and "counting" in m:
            sec = {**sec, "counting": m["counting"]}
        cfgs.append(_one(casc, e, arch, asrc, ab, sec, msrc, mb + ("einsums", e.name), src, source,
                         rooted, mb + ("on_chip",)))
    check_tiles(casc, cfgs, jobs, rooted, arch, msrc, mb)
    return CascadeNest(casc, tuple(cfgs), source or src.file, MappingProxyType(
        {t: arch.levels[i].name for t, i in rooted.items()}), tuple(jobs))


def _one(casc: Cascade, e: Einsum, arch: Hierarchy, asrc: Source, ab: YPath, m: Any, msrc: Source, mb: YPath,
         src: Source, source: str | None, rooted: Mapping[str, int] | None = None,
         rp: YPath = ()) -> NestConfig:
    """The NestConfig of Einsum ``e`` of ``casc`` under mapping section ``m`` (at ``mb``), the
    tensors of ``rooted`` living in the given levels (:func:`on_chip`, at ``rp``)."""
    e, ranks, ops = _operands(casc, e)
    padded = padding(m, msrc, mb, ranks)
    pad = {r: ranks[r] for r in padded}
    ranks = {**ranks, **padded}
    roots = {t: i for t, i in (rooted or {}).items() if any(o.name == t for o in ops)}
    levels, flags = nest_mapping_from_data(m, msrc, mb, arch, ranks, ops, frozenset(roots))
    bound = tensor_binding(m, msrc, mb, arch, ops)
    if roots:
        levels = _root(levels, roots, ops, arch, bound, e, msrc, mb, rp)
    for i, (lv, lm) in enumerate(zip(arch.levels, levels)):
        bk = lv.banks
        if bk is not None and bk.assign is not None:
            bp = ab + ("hierarchy", i, "banks", "assign")
            kept = [bound.get(t, t) for t in lm.keep]
            for t in bk.assign:
                if t not in kept:
                    raise asrc.error(bp + (t,), f"{t} is not a tensor {lv.name} keeps (it keeps: "
                                     f"{', '.join(kept) or 'none'})")
            for o in ops:
                if o.name not in lm.keep:
                    continue
                a = bound.get(o.name, o.name)
                if a not in bk.assign:
                    raise asrc.error(bp, f"{a} is kept at {lv.name} but assigned no banks")
                room = lv.capacity_words // bk.count * bk.assign[a]
                if tile_words(levels, i, o) > room:
                    raise msrc.error(mb + ("nest", lv.name), f"the tile of {o.name} at {lv.name} needs "
                                     f"{tile_words(levels, i, o)} words, more than the {room} words of its "
                                     f"{bk.assign[a]} bank(s)")
        if lv.capacity_words is None:
            continue
        words = level_words(levels, i, ops, lm.keep, lv.double_buffered)
        if words > lv.capacity_words:
            db = " (double-buffered: twice each tile it refills)" if lv.double_buffered else ""
            raise msrc.error(mb + ("nest", lv.name), f"the tiles kept at {lv.name} need {words} words{db}, more "
                             f"than its capacity of {lv.capacity_words}")
    return NestConfig(casc, e, MappingProxyType(ranks), ops, arch, levels, flags["output_first_fill"],
                      flags["extrapolate"], source or src.file, tensors=bound, pad=MappingProxyType(pad),
                      roots=MappingProxyType(roots))


def _root(levels: tuple[LevelMap, ...], roots: Mapping[str, int], ops: tuple[Operand, ...], arch: Hierarchy,
          bound: Mapping[str, str], e: Einsum, msrc: Source, mb: YPath, rp: YPath) -> tuple[LevelMap, ...]:
    """``levels`` with each rooted tensor kept at its level and at none above it: whole there (no
    loop above indexes it), or tiled by loops above over its own ranks only (a tile of it lives
    there at a time; the cascade then runs tile by tile, :func:`mapping.fusion.check_tiles`)."""
    out = list(levels)
    for t, i in roots.items():
        op = next(o for o in ops if o.name == t)
        lv = arch.levels[i]
        if lv.keeps is not None and bound.get(t, t) not in lv.keeps:
            raise msrc.error(rp + (t,), f"{lv.name} may not keep {t} (its keeps: {', '.join(lv.keeps)})")
        above = [(lm.level, r, f) for lm in out[:i] for r, f in lm.temporal + lm.spatial_x + lm.spatial_y if f > 1]
        if any(r in op.ranks for _, r, _ in above):  # tiled: then only its own ranks may be looped above
            for level, r, f in above:
                if r not in op.ranks:
                    raise msrc.error(mb + ("nest", level), f"{t} stays in {lv.name} tile by tile (the loops above "
                                     f"{lv.name} tile it), so they may only tile {t}'s ranks "
                                     f"({', '.join(sorted(op.ranks))}), but {level}'s loop over {r} ({f}) in Einsum "
                                     f"{e.name} would revisit its tiles: put {r}'s loops at {lv.name} or inside, or "
                                     f"keep {t} whole there")
        for k in range(i):
            out[k] = replace(out[k], keep=tuple(x for x in out[k].keep if x != t))
        names = [o.name for o in ops]
        out[i] = replace(out[i], keep=tuple(x for x in names if x in out[i].keep or x == t))
    return tuple(out)
