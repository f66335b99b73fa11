"""Search over memory-hierarchy mappings: per level tile factors, loop order, spatial factors
over X and Y, and keep/bypass, for a :class:`mapping.nest_mapping.NestConfig`.

The space. A *slot* is a level's temporal loops, or its spatial loops along X or Y where its
fan-out along that dimension exceeds 1. A point gives every rank an ordered factorisation of its
size over the slots, every level an order of its temporal loops (the ranks with a factor > 1
there; a factor-1 loop is no loop), and every level below the outermost the subset of the
tensors it may keep that it keeps (the outermost keeps all). :class:`Dims` says which of
factors, spatial factors, orders and keeps vary; the others stay as the config gives them (a
rank's temporal factors then move only over the levels, its spatial factors fixed; a level's
order is the config's, ranks it did not order placed innermost in the Einsum's order). Legal:
the spatial factors of a level and dimension multiply to at most its fan-out, and the kept tiles
of each level fit its capacity (:func:`mapping.nest_mapping.level_words`, as the loader checks).

The strategy (deterministic). The config's own mapping is evaluated first, and a candidate
replaces the best only if it scores strictly lower, so the result is never worse than the
config and ties keep it. If the space has at most ``budget`` legal points (counted before any
evaluation, :meth:`NestSpace.size`), every one is evaluated: the result is the optimum. Otherwise a local search:
from the config and then from up to ``restarts`` random legal points (``random.Random(seed)``,
while the budget lasts), move
to the first better neighbour in a seeded order (move one prime factor of a rank from one slot
to another, swap two loops of a level, keep or bypass one tensor at one level) until none is
better or ``budget`` evaluations are spent. Points are cached by their loop nest, so a nest
is evaluated once.

The score is the caller's (``evaluate``: a NestConfig to a number, lower is better), so this
module does not import the simulator: ``evaluate=lambda c: simulate_nest(c).energy_pj``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from mapping.nest_mapping import LevelMap, NestConfig, level_words

WALK = 200_000  # points of the space without orders that NestSpace.size walks to count it exactly
Point = tuple[tuple[tuple[int, ...], ...], tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]


@dataclass(frozen=True)
class Dims:
    """Which parts of the mapping the search varies."""

    factors: bool = True  # temporal factors per level
    spatial: bool = True  # spatial factors over X and Y
    orders: bool = True  # temporal loop order per level
    keep: bool = True  # keep/bypass per level below the outermost


@dataclass(frozen=True)
class NestSearchResult:
    best: NestConfig
    score: float
    given_score: float  # the config's own mapping
    evaluated: int  # distinct nests scored
    space: int  # legal points of the space when exhaustive, else an upper bound (illegal ones included)
    exhaustive: bool


def _primes(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    return out + ([n] if n > 1 else [])


def _splits(n: int, k: int) -> Iterator[tuple[int, ...]]:
    """Ordered factorisations of n into k factors."""
    if k == 1:
        yield (n,)
        return
    for d in _divisors(n):
        for rest in _splits(n // d, k - 1):
            yield (d,) + rest


def _divisors(n: int) -> list[int]:
    out = [1]
    for p in sorted(set(_primes(n))):
        e = _primes(n).count(p)
        out = [d * p ** j for d in out for j in range(e + 1)]
    return sorted(out)


def _n_splits(n: int, k: int) -> int:
    return math.prod(math.comb(e + k - 1, k - 1) for e in _exponents(n))


def _exponents(n: int) -> list[int]:
    ps = _primes(n)
    return [ps.count(p) for p in sorted(set(ps))]


class NestSpace:
    """The mapping space of ``cfg`` with ``dims`` varying (see the module docstring)."""

    def __init__(self, cfg: NestConfig, dims: Dims = Dims()):
        self.cfg, self.dims = cfg, dims
        arch = cfg.arch
        self.ranks = tuple(cfg.ranks)
        self.tensors = tuple(o.name for o in cfg.operands)
        n = len(arch.levels)
        self.slots: list[tuple[int, str]] = []
        for i in range(n):
            self.slots.append((i, "T"))
            fx, fy = arch.fanout(i)
            for dim, fan in (("X", fx), ("Y", fy)):
                if fan > 1:
                    self.slots.append((i, dim))
        self.fan = {(i, d): arch.fanout(i)[d == "Y"] for i in range(n) for d in ("X", "Y")}
        given = self._given_split()
        # a tensor kept on chip between a cascade's Einsums (cfg.roots) keeps the given tiling
        # above its level, which every Einsum touching it shares (mapping.fusion.check_tiles):
        # the slots above that level stay as given for its ranks
        pinned_above = {r: min(i for t, i in cfg.roots.items()
                               if r in next(o for o in cfg.operands if o.name == t).ranks)
                        for r in self.ranks if any(r in next(o for o in cfg.operands if o.name == t).ranks
                                                   for t in cfg.roots)}
        # per rank: the slots its factors may move over, and the fixed part elsewhere
        self.free: dict[str, list[int]] = {}
        for r in self.ranks:
            free = [k for k, (i, kind) in enumerate(self.slots)
                    if ((kind == "T" and dims.factors) or (kind != "T" and dims.spatial))
                    and i >= pinned_above.get(r, 0)]
            self.free[r] = free
        self.given = given
        self.allowed = [tuple(t for t in self.tensors if (lv.keeps is None or cfg.arch_name(t) in lv.keeps)
                              and i >= cfg.root(t)) if i else self.tensors
                        for i, lv in enumerate(arch.levels)]
        # a tensor kept on chip between a cascade's Einsums (cfg.roots): its ranks' factors above
        # its level stay as given (whole there: none)
        self.pinned = {t: (i, next(o for o in cfg.operands if o.name == t).ranks) for t, i in cfg.roots.items()}
        self.base_order = []
        for lm in cfg.levels:
            own = [r for r, _ in lm.temporal]
            self.base_order.append(tuple(own + [r for r in self.ranks if r not in own]))

    def _given_split(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for r in self.ranks:
            f = [1] * len(self.slots)
            for k, (i, kind) in enumerate(self.slots):
                lm = self.cfg.levels[i]
                loops = lm.temporal if kind == "T" else lm.spatial_x if kind == "X" else lm.spatial_y
                f[k] = math.prod(v for q, v in loops if q == r)
            out[r] = tuple(f)
        return out

    # -- points ---------------------------------------------------------------------
    def given_point(self) -> Point:
        split = tuple(self.given[r] for r in self.ranks)
        return split, tuple(self.base_order), tuple(lm.keep for lm in self.cfg.levels)

    def _rank_splits(self, r: str) -> Iterator[tuple[int, ...]]:
        free, g = self.free[r], self.given[r]
        fixed = math.prod(v for k, v in enumerate(g) if k not in free)
        for fs in _splits(self.cfg.ranks[r] // fixed, len(free)) if free else [()]:
            out = list(g)
            for k, v in zip(free, fs):
                out[k] = v
            yield tuple(out)

    def _keeps(self, i: int) -> list[tuple[str, ...]]:
        if i == 0 or not self.dims.keep:
            return [self.cfg.levels[i].keep]
        a = self.allowed[i]
        must = {t for t, (root, _) in self.pinned.items() if root == i}
        return [k for bits in itertools.product((True, False), repeat=len(a))
                for k in [tuple(t for t, on in zip(a, bits) if on)] if must <= set(k)]

    def _orders(self, split, i: int) -> list[tuple[str, ...]]:
        k = self.slots.index((i, "T"))
        present = [r for r in self.base_order[i] if split[self.ranks.index(r)][k] > 1]
        if not self.dims.orders:
            return [tuple(present)]
        return list(itertools.permutations(present))

    def size(self, limit: int) -> tuple[int, bool]:
        """``(n, exact)``: the number of legal points if it is at most ``limit`` and the space
        without orders has at most ``WALK`` points (walked, legality checked, orders counted
        per point), else an upper bound (orders counted as permutations of every rank)."""
        n = 1
        for r in self.ranks:
            free, g = self.free[r], self.given[r]
            fixed = math.prod(v for k, v in enumerate(g) if k not in free)
            n *= _n_splits(self.cfg.ranks[r] // fixed, len(free)) if free else 1
        for i in range(len(self.cfg.levels)):
            n *= len(self._keeps(i))
        bound = n * (math.factorial(len(self.ranks)) ** len(self.cfg.levels) if self.dims.orders else 1)
        if n > WALK:
            return bound, False
        nl, count = len(self.cfg.levels), 0
        for split in itertools.product(*(self._rank_splits(r) for r in self.ranks)):
            if not self._spatial_ok(split) or not self._pinned_ok(split):
                continue
            for keeps in itertools.product(*(self._keeps(i) for i in range(nl))):
                if self._fits(split, keeps):
                    count += math.prod(len(self._orders(split, i)) for i in range(nl))
                    if count > limit:
                        return bound, False
        return count, True

    def points(self) -> Iterator[Point]:
        """Every legal point, in a fixed order."""
        nl = len(self.cfg.levels)
        for split in itertools.product(*(self._rank_splits(r) for r in self.ranks)):
            if not self._spatial_ok(split) or not self._pinned_ok(split):
                continue
            for keeps in itertools.product(*(self._keeps(i) for i in range(nl))):
                if not self._fits(split, keeps):
                    continue
                for orders in itertools.product(*(self._orders(split, i) for i in range(nl))):
                    yield split, orders, keeps

    def _spatial_ok(self, split) -> bool:
        for k, (i, kind) in enumerate(self.slots):
            if kind != "T" and math.prod(s[k] for s in split) > self.fan[(i, kind)]:
                return False
        return True

    def _fits(self, split, keeps) -> bool:
        levels = self.levels((split, self.base_order, keeps))
        for i, lv in enumerate(self.cfg.arch.levels):
            if lv.capacity_words is not None:
                if level_words(levels, i, self.cfg.operands, keeps[i], lv.double_buffered) > lv.capacity_words:
                    return False
        return True

    def _pinned_ok(self, split) -> bool:
        """Above the level of a tensor kept on chip, its ranks' factors are the given ones."""
        for root, ranks in self.pinned.values():
            for k, (i, _) in enumerate(self.slots):
                if i < root and any(split[j][k] != self.given[r][k] for j, r in enumerate(self.ranks) if r in ranks):
                    return False
        return True

    def legal(self, p: Point) -> bool:
        return (self._spatial_ok(p[0]) and self._pinned_ok(p[0])
                and all(t in p[2][root] for t, (root, _) in self.pinned.items()) and self._fits(p[0], p[2]))

    def levels(self, p: Point) -> tuple[LevelMap, ...]:
        split, orders, keeps = p
        out = []
        for i, lm in enumerate(self.cfg.levels):
            f = {kind: {r: split[j][self.slots.index((i, kind))] for j, r in enumerate(self.ranks)}
                 for _, kind in [s for s in self.slots if s[0] == i]}
            temporal = tuple((r, f["T"][r]) for r in orders[i] if f["T"][r] > 1)
            sx = tuple((r, v) for r, v in f.get("X", {}).items() if v > 1)
            sy = tuple((r, v) for r, v in f.get("Y", {}).items() if v > 1)
            out.append(LevelMap(lm.level, temporal, sx, sy, tuple(t for t in self.tensors if t in keeps[i])))
        return tuple(out)

    def config(self, p: Point) -> NestConfig:
        return dataclasses.replace(self.cfg, levels=self.levels(p), mapping_origin="searched")

    # -- local moves ----------------------------------------------------------------
    def neighbours(self, p: Point) -> Iterator[Point]:
        split, orders, keeps = p
        for j, r in enumerate(self.ranks):
            for a in self.free[r]:
                for q in sorted(set(_primes(split[j][a]))):
                    for b in self.free[r]:
                        if b != a:
                            s = list(split[j])
                            s[a] //= q
                            s[b] *= q
                            yield split[:j] + (tuple(s),) + split[j + 1:], orders, keeps
        if self.dims.orders:
            for i, o in enumerate(orders):
                for a, b in itertools.combinations(range(len(o)), 2):
                    lst = list(o)
                    lst[a], lst[b] = lst[b], lst[a]
                    yield split, orders[:i] + (tuple(lst),) + orders[i + 1:], keeps
        if self.dims.keep:
            for i in range(1, len(keeps)):
                for t in self.allowed[i]:
                    k = tuple(x for x in self.tensors if (x in keeps[i]) != (x == t))
                    yield split, orders, keeps[:i] + (k,) + keeps[i + 1:]

    def _base_slot(self, r: str) -> int:
        """Where a built random point first puts rank ``r``'s free factors: the outermost level's
        temporal loops (unbounded tiles), or, for a rank of a tensor kept in a level between a
        cascade's Einsums, that level's temporal loops (above it the given tiling stays)."""
        root = max((i for i, ranks in self.pinned.values() if r in ranks), default=0)
        k = self.slots.index((root, "T"))
        return k if k in self.free[r] else 0

    def random_point(self, rng: random.Random, tries: int = 200) -> Point | None:
        """A random legal point. Where every free rank may put factors in the outermost level's
        temporal loops (slot 0: its tiles are unbounded), it is built so that it is legal at
        every step: random orders and keeps, every free factor first in slot 0 (legal: the inner
        tiles are single words), then each prime factor in a random order moved to a random slot
        where the point stays legal (or left at slot 0). A rank of a tensor a cascade keeps in
        an on-chip level starts in that level's temporal loops instead (:meth:`_base_slot`).
        Otherwise (the factors fixed), up to ``tries`` random draws, each prime to a random free
        slot, the first legal one."""
        nl = len(self.cfg.levels)
        constructive = all(not self.free[r] or 0 in self.free[r] for r in self.ranks)
        for _ in range(tries):
            orders = tuple(tuple(rng.sample(o, len(o))) if self.dims.orders else o for o in self.base_order)
            keeps = tuple(rng.choice(self._keeps(i)) for i in range(nl))
            split = []
            for r in self.ranks:
                s = list(self.given[r])
                free = self.free[r]
                if free:
                    rest = self.cfg.ranks[r] // math.prod(v for k, v in enumerate(s) if k not in free)
                    for k in free:
                        s[k] = 1
                    if constructive:
                        s[self._base_slot(r)] = rest
                    else:
                        for q in _primes(rest):
                            s[rng.choice(free)] *= q
                split.append(s)
            if constructive:
                if not self.legal((tuple(map(tuple, split)), orders, keeps)):
                    continue  # these keeps do not fit even single-word tiles
                moves = [(j, q) for j, r in enumerate(self.ranks) if self.free[r]
                         for q in _primes(split[j][self._base_slot(r)])]
                rng.shuffle(moves)
                for j, q in moves:
                    a = self._base_slot(self.ranks[j])
                    for b in rng.sample(self.free[self.ranks[j]], len(self.free[self.ranks[j]])):
                        if b == a:
                            break
                        split[j][a] //= q
                        split[j][b] *= q
                        if self.legal((tuple(map(tuple, split)), orders, keeps)):
                            break
                        split[j][b] //= q
                        split[j][a] *= q
            p = (tuple(map(tuple, split)), orders, keeps)
            if self.legal(p):
                return p
        return None


def search_nest(cfg: NestConfig, evaluate: Callable[[NestConfig], float], *, dims: Dims = Dims(),
                budget: int = 2000, restarts: int = 100, seed: int = 0) -> NestSearchResult:
    """The best mapping of ``cfg``'s space that the strategy of the module docstring finds."""
    space = NestSpace(cfg, dims)
    cache: dict[tuple, float] = {}
    best: list[Any] = [None, math.inf]

    def score(p: Point) -> float:
        levels = space.levels(p)
        key = tuple((lm.temporal, lm.spatial_x, lm.spatial_y, lm.keep) for lm in levels)
        if key not in cache:
            cache[key] = evaluate(dataclasses.replace(cfg, levels=levels, mapping_origin="searched"))
            if cache[key] < best[1]:
                best[:] = [p, cache[key]]
        return cache[key]

    start = space.given_point()
    given = score(start)
    n, exhaustive = space.size(budget)
    if exhaustive:
        for p in space.points():
            score(p)
    else:
        rng = random.Random(seed)
        for attempt in range(restarts + 1):
            p = start if attempt == 0 else space.random_point(rng)
            if p is None or len(cache) >= budget:
                break
            cur = score(p)
            improved = True
            while improved and len(cache) < budget:
                improved = False
                moves = list(space.neighbours(p))
                rng.shuffle(moves)
                for q in moves:
                    if len(cache) >= budget:
                        break
                    if space.legal(q) and score(q) < cur:
                        p, cur, improved = q, score(q), True
                        break
    return NestSearchResult(space.config(best[0]), best[1], given, len(cache), n, exhaustive)


def mapping_section(cfg: NestConfig) -> dict[str, Any]:
    """``cfg``'s mapping as a ``mapping:`` section the loader reads back to the same nest."""
    nest: dict[str, Any] = {}
    for lm in cfg.levels:
        d: dict[str, Any] = {}
        if lm.temporal:
            d["temporal"] = {r: f for r, f in lm.temporal}
        sp = {k: {r: f for r, f in v} for k, v in (("X", lm.spatial_x), ("Y", lm.spatial_y)) if v}
        if sp:
            d["spatial"] = sp
        d["keep"] = list(lm.keep)
        nest[lm.level] = d
    out: dict[str, Any] = {"version": 1, "nest": nest,
                           "counting": {"output_first_fill": cfg.output_first_fill, "extrapolate": cfg.extrapolate}}
    if cfg.tensors:
        out["tensors"] = dict(cfg.tensors)
    if cfg.pad:
        out["pad"] = {r: cfg.ranks[r] for r in cfg.pad}
    return out
