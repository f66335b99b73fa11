"""The search space of :mod:`einarray.search`: what a mapping of a cascade can be.

The space
---------
* **Fusion.** The cascade is cut into *atoms* that can never be split: a recurrence (its
  strongly connected component) together with its initial value, and every Einsum lying
  between the first and last Einsum of such a component in cascade order. A *group* of
  the mapping is a contiguous run of atoms (a *segment*); a mapping is a partition of the
  atom sequence into segments. Einsums in one group are fused; tensors crossing groups
  spill to the backing store.
* **Per Einsum** (every Einsum that does arithmetic): the unit (every unit that has each
  op the Einsum needs and an energy for it); on the 2-D array, for a sum of products, the
  dataflow and the spatial assignment: ``os`` puts two output indices on rows and
  columns, ``ws``/``is`` put a reduced and an output index of the stationary operand
  (``ws``: the second operand, ``is``: the first) on rows and columns (either way
  round); each spatial index gets factor ``min(array dimension, extent)`` and, where it
  differs, the balanced factor ``ceil(extent / folds)`` with the same number of folds
  (less fill and drain).
* **Per group**: the tile of every rank at the on-chip buffer (the full extent, halvings
  ``ceil(n / 2^k)`` and three-quarter points ``ceil(3n / 2^(k+2))``, so divisors and
  non-divisors with partial last tiles); recurrence ranks have tile 1; a rank that a
  member reduces while another member reads the result is not tiled (the fused consumer
  needs the complete reduction). The loop order (permutations of the tiled ranks; at most
  24 are tried for a group with more than four). Whether inputs that do not depend on
  every loop are held in the buffer across the loops (``hold``). The stage layout:
  ``serial`` (one Einsum per stage), ``asap`` (each Einsum in the earliest stage after its
  producers; the 2-D and 1-D arrays work in parallel within a stage) or ``pipelined``
  (``asap`` with the tail of the step on the second unit deferred one step so that it
  overlaps the next step's head, as FuseMax does).

Cheap checks prune before simulating: unit capabilities and spatial factors are legal by
construction, tiles whose step footprint exceeds the buffer are dropped, and the group is
validated by :mod:`mapping.groups` (any :class:`~einsum.errors.ConfigError` = illegal).

:class:`SearchSpace` holds the structure (atoms, every Einsum's unit/dataflow/spatial
options, the :class:`Segment` s with their choice dimensions under the constraints) and
turns a choice (one value per dimension) into the YAML sections of a group
(:meth:`SearchSpace.emit`); the cost of a choice is :mod:`.model`'s, the order in which
choices are tried :mod:`.strategies`'.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from einsum.cascade import Cascade, Einsum
from einsum.expr import accesses_in, indices_in
from mapping.arch import Arch
from mapping.defaults import default_unit
from mapping.groups import recurrences
from mapping.spec import EinsumMap, is_free
from mapping.footprint import buffer_words, group_tensors, rank_related

from .constraints import Constraints, EinsumConstraint, SearchProblem, _first_where

if TYPE_CHECKING:
    from .model import Cand

MAX_ORDERS = 24
STAGE_VARIANTS = ("pipelined", "asap", "serial")


@dataclass
class Dim:
    key: tuple
    values: list[Any]
    labels: list[str]


class Segment:
    def __init__(self, i: int, j: int, members: tuple[str, ...]):
        self.i, self.j, self.members = i, j, members
        self.dims: list[Dim] = []
        self.front: list[Cand] = []
        self.best: Cand | None = None
        self.best_choice: tuple | None = None  # best candidate reached through the choice space
        self.best_choice_v = float("inf")
        self.cur: tuple | None = None
        self.converged = False
        self.restarts = 0
        self.ranked: list[tuple] | None = None
        self.ranked_pos = 0
        self.empty_reason: str | None = None
        self.illegal_reason: str | None = None
        self.raw = 0

    @property
    def name(self) -> str:
        return self.members[0] if len(self.members) == 1 else f"{self.members[0]}-{self.members[-1]}"


def _copy(x: Any) -> Any:
    """A copy of a YAML-like value (dicts and lists of scalars), as ``copy.deepcopy`` makes
    it but a few times faster (an option's section is copied for every candidate)."""
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy(v) for v in x]
    return x


def _tile_values(n: int) -> list[int]:
    vals = {n}
    k = 1
    while (1 << k) <= 2 * n:
        vals.add(-(-n // (1 << k)))
        vals.add(-(-3 * n // (1 << (k + 1))))
        k += 1
    return sorted((v for v in vals if 1 <= v <= n), reverse=True)


class SearchSpace:
    """The choices of one :class:`~.constraints.SearchProblem` (see the module docstring)."""

    def __init__(self, problem: SearchProblem):
        self.problem = problem
        cfg = problem.config
        self.cfg = cfg
        self.c: Cascade = cfg.cascade
        self.arch: Arch = cfg.arch
        self.counts = cfg.counts
        self.s = problem.settings
        self.cons = self.s.constraints
        self.rng = random.Random(self.s.seed)
        self.names = [e.name for e in self.c.einsums]
        self.buf = self.arch.levels[1]
        self.free = {e.name: is_free(e, self.counts[e.name]) for e in self.c.einsums}
        self.free_map = {n: EinsumMap(n, default_unit(self.arch, self.c.einsum(n), self.counts[n]),
                                      "os", (), (), True) for n in self.names}
        self.rec_ranks = self._recurrence_ranks()
        self.atoms = self._atoms()
        self.map_options = {n: self._map_options(n) for n in self.names if not self.free[n]}
        self.segments: dict[tuple[int, int], Segment] = {}

    # -- structure ------------------------------------------------------------------
    def _recurrence_ranks(self) -> dict[str, str]:
        out = {}
        for comp in recurrences(self.c):
            for n in comp:
                e = self.c.einsum(n)
                if e.kind == "update":
                    out[n] = self.c.rank_of_index(e.iter_var).name
        return out

    def _atoms(self) -> list[tuple[str, ...]]:
        pos = {n: i for i, n in enumerate(self.names)}
        spans: list[tuple[int, int]] = []
        for comp in recurrences(self.c):
            ms = set(comp)
            for n in comp:  # with the initial values of what the component updates
                out = self.c.einsum(n).output
                ms.update(p.name for p in self.c.producers(out))
            spans.append((min(pos[m] for m in ms), max(pos[m] for m in ms)))
        for t in self.c.tensors:
            ps = self.c.producers(t)
            if len(ps) > 1:
                spans.append((min(pos[p.name] for p in ps), max(pos[p.name] for p in ps)))
        spans.sort()
        merged: list[list[int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        atoms: list[tuple[str, ...]] = []
        i = 0
        for a, b in merged + [[len(self.names), len(self.names)]]:
            while i < a:
                atoms.append((self.names[i],))
                i += 1
            if a < len(self.names):
                atoms.append(tuple(self.names[a:b + 1]))
                i = b + 1
        return atoms

    def _operand_indices(self, e: Einsum) -> list[set[str]]:
        out: dict[str, set[str]] = {}
        for acc in accesses_in(e.stmt.rhs):
            s = out.setdefault(acc.tensor, set())
            for sub in acc.subscripts:
                s.update(indices_in(sub))
        return [out[t] for t in e.reads if t in out]

    def _map_options(self, n: str) -> list[tuple[dict, str]]:
        """(YAML section, label) of every unit/dataflow/spatial choice of Einsum n."""
        e, oc = self.c.einsum(n), self.counts[n]
        ec = self.cons.einsums.get(n)
        needed = {a for a, v in oc.counts.items() if v}
        out: list[tuple[dict, str]] = []
        units = [u for u in self.arch.units if needed <= set(self.arch.units[u].ops)
                 and needed <= set(self.arch.energy.get(u, {}))]
        if ec and ec.units is not None:
            units = [u for u in units if u in ec.units]
        spatial_cons = ec is not None and (ec.rows is not None or ec.cols is not None or ec.dataflows is not None)
        size = {ix: self.c.index_size(ix) for ix in e.iter_indices}
        for u in units:
            unit = self.arch.units[u]
            if not unit.is_2d:
                if not spatial_cons:
                    out.append(({"unit": u}, u))
                continue
            if not oc.counts.get("mac"):
                if not spatial_cons:
                    out.append(({"unit": u}, u))
                continue
            outs = [ix for ix in e.lhs_indices if ix != e.iter_var and size[ix] > 1]
            red = [ix for ix in e.reduced if size[ix] > 1]
            ops = self._operand_indices(e)
            pairs: list[tuple[str, str | None, str | None]] = []
            for a, b in itertools.permutations(outs, 2):
                pairs.append(("os", a, b))
            if len(outs) == 1:
                pairs += [("os", outs[0], None), ("os", None, outs[0])]
            for df, opi in (("ws", 1), ("is", 0)):
                if opi >= len(ops):
                    continue
                for r in red:
                    for o in outs:
                        if r in ops[opi] and o in ops[opi]:
                            pairs += [(df, r, o), (df, o, r)]
            if not pairs:
                if not spatial_cons:
                    out.append(({"unit": u}, u))
                continue
            for df, r, cix in pairs:
                if ec is not None:
                    if ec.dataflows is not None and df not in ec.dataflows:
                        continue
                    if ec.rows is not None and r not in ec.rows:
                        continue
                    if ec.cols is not None and cix not in ec.cols:
                        continue

                def facs(ix: str | None, D: int) -> list[int | None]:
                    if ix is None:
                        return [None]
                    full = min(D, size[ix])
                    bal = -(-size[ix] // -(-size[ix] // D))
                    return [full] if bal == full else [full, bal]
                for fr in facs(r, unit.rows):
                    for fc in facs(cix, unit.cols):
                        sp: dict[str, Any] = {}
                        if r is not None:
                            sp["rows"] = {r: fr}
                        if cix is not None:
                            sp["cols"] = {cix: fc}
                        lab = f"{u} {df} rows={r}:{fr} cols={cix}:{fc}"
                        out.append(({"unit": u, "dataflow": df, "spatial": sp}, lab))
        return out

    def group_ranks(self, members: tuple[str, ...]) -> list[str]:
        iranks: list[str] = []
        for n in members:
            for ix in self.c.einsum(n).iter_indices:
                r = self.c.rank_of_index(ix).name
                if r not in iranks:
                    iranks.append(r)
        return iranks

    def _build_segment(self, i: int, j: int, cons: Constraints) -> Segment:
        members = tuple(n for a in self.atoms[i:j] for n in a)
        seg = Segment(i, j, members)
        dims: list[Dim] = []
        for n in members:
            if self.free[n]:
                continue
            opts = self.map_options[n] if cons is self.cons else self._map_options_for(n, cons)
            if not opts:
                ec = cons.einsums.get(n)
                seg.empty_reason = (f"no unit/dataflow/spatial choice of {n} satisfies "
                                    f"{_first_where(ec, ('unit', 'dataflow', 'spatial'))}")
                return seg
            dims.append(Dim(("map", n), [o for o, _ in opts], [lab for _, lab in opts]))
        iranks = self.group_ranks(members)
        rec = {self.rec_ranks[n] for n in members if n in self.rec_ranks}
        rec = {r for r in rec if self.c.ranks[r].size > 1}
        cand = [r for r in iranks if not any(rank_related(self.c, r, o) and o != r for o in iranks)]
        # a rank that one member reduces while another member reads the result: not tiled
        inner_reduced: set[str] = set()
        for n in members:
            e = self.c.einsum(n)
            if any(e.output in self.c.einsum(m).reads for m in members if m != n):
                inner_reduced.update(self.c.rank_of_index(ix).name for ix in e.reduced)
        group_cons = [cons.einsums[n] for n in members if n in cons.einsums]
        tileable: list[str] = []
        for r in cand:
            size = self.c.ranks[r].size
            if r in rec:
                vals = [1]
            elif r in inner_reduced or size == 1:
                vals = [size]
            else:
                vals = _tile_values(size)
            for ec in group_cons:
                if r in ec.max_tile:
                    vals = [v for v in vals if v <= ec.max_tile[r]]
                    if not vals:
                        seg.empty_reason = (f"{ec.where['max_tile']}: no tile of {r} in group "
                                            f"{'+'.join(members)} is at most {ec.max_tile[r]}")
                        return seg
                if r in ec.tiles:
                    vals = [v for v in vals if v == ec.tiles[r]]
                    if not vals:
                        seg.empty_reason = (f"{ec.where['tiles']}: rank {r} cannot have tile "
                                            f"{ec.tiles[r]} in group {'+'.join(members)}")
                        return seg
            if r not in rec and len(vals) > 1:
                dims.append(Dim(("tile", r), vals, [str(v) for v in vals]))
                tileable.append(r)
            elif r not in rec and vals != [size]:
                dims.append(Dim(("tile", r), vals, [str(v) for v in vals]))
                tileable.append(r)
        for ec in group_cons:
            for r in list(ec.max_tile) + list(ec.tiles):
                if r not in cand:
                    seg.empty_reason = f"{ec.where.get('max_tile') or ec.where.get('tiles')}: rank {r} " \
                                       f"cannot be tiled in group {'+'.join(members)}"
                    return seg
        looping = tileable + sorted(rec, key=iranks.index)
        orders = self._orders(looping, group_cons)
        if orders is None:
            ec = next(ec for ec in group_cons if ec.loop_order is not None)
            seg.empty_reason = f"{ec.where['loop_order']}: no loop order of group {'+'.join(members)} satisfies it"
            return seg
        if len(orders) > 1:
            dims.append(Dim(("order",), orders, [">".join(o) for o in orders]))
        seg.fixed_order = orders[0]  # type: ignore[attr-defined]
        ins, _, _ = group_tensors(self.c, members)
        if ins and looping:
            dims.append(Dim(("hold",), [False, True], ["no", "yes"]))
        non_free = [n for n in members if not self.free[n]]
        if len(non_free) > 1:
            dims.append(Dim(("stages",), list(STAGE_VARIANTS), list(STAGE_VARIANTS)))
        seg.dims = dims
        seg.raw = math.prod(len(d.values) for d in dims)
        return seg

    def _map_options_for(self, n: str, cons: Constraints) -> list:
        saved = self.cons
        self.cons = cons
        try:
            return self._map_options(n)
        finally:
            self.cons = saved

    def _orders(self, ranks: list[str], group_cons: list[EinsumConstraint]) -> list[tuple[str, ...]] | None:
        if not ranks:
            return [()]
        if len(ranks) <= 4:
            perms = list(itertools.permutations(ranks))
        else:
            rng = random.Random(len(ranks))
            perms = [tuple(ranks), tuple(reversed(ranks))]
            while len(perms) < 5 * MAX_ORDERS:
                p = list(ranks)
                rng.shuffle(p)
                if tuple(p) not in perms:
                    perms.append(tuple(p))
        keep = []
        for p in perms:
            ok = True
            for ec in group_cons:
                if ec.loop_order is not None:
                    sub = [r for r in p if r in ec.loop_order]
                    want = [r for r in ec.loop_order if r in p]
                    if sub != want:
                        ok = False
            if ok:
                keep.append(p)
        if not keep:
            return None
        return keep[:MAX_ORDERS]

    # -- emission -------------------------------------------------------------------
    def emit(self, seg: Segment, choice: tuple) -> tuple[dict, dict]:
        val = {d.key: d.values[k] for d, k in zip(seg.dims, choice)}
        einsums = {n: _copy(val[("map", n)]) for n in seg.members if ("map", n) in val}
        iranks = self.group_ranks(seg.members)
        tiles = {k[1]: v for k, v in val.items() if k[0] == "tile"}
        rec = sorted({self.rec_ranks[n] for n in seg.members if n in self.rec_ranks
                      and self.c.ranks[self.rec_ranks[n]].size > 1}, key=iranks.index)
        for r in rec:
            tiles[r] = 1
        order = val.get(("order",), getattr(seg, "fixed_order", ()))
        looped = [r for r in order if tiles.get(r, self.c.ranks[r].size) < self.c.ranks[r].size or r in rec]
        tsec = {r: t for r, t in tiles.items() if t < self.c.ranks[r].size or r in rec}
        g: dict[str, Any] = {"name": seg.name, "einsums": list(seg.members),
                             "tiles": {self.buf.name: {r: tsec[r] for r in iranks if r in tsec}}}
        if looped:
            g["loop_order"] = looped
        if val.get(("hold",)):
            ins, _, _ = group_tensors(self.c, seg.members)
            held = [t for t in ins if any(not self._related(t, r) for r in looped)]
            if held:
                g["hold"] = held
        variant = val.get(("stages",), "serial")
        units = {n: (einsums[n]["unit"] if n in einsums else self.free_map[n].unit) for n in seg.members}
        if variant != "serial":
            stages, deferred = self._stages(seg.members, units, variant == "pipelined")
            g["stages"] = stages
            if deferred:
                g["deferred"] = deferred
        return einsums, g

    def _related(self, t: str, r: str) -> bool:
        return any(rank_related(self.c, r, tr) for tr in self.c.tensors[t].ranks)

    def _stages(self, members: tuple[str, ...], units: Mapping[str, str], pipelined: bool
                ) -> tuple[list[list[str]], list[str]]:
        c = self.c
        prod: dict[str, list[str]] = {}
        for n in members:
            prod.setdefault(c.einsum(n).output, []).append(n)

        def same_step_producers(n: str) -> list[str]:
            e = c.einsum(n)
            out = []
            for t in e.reads:
                for m in prod.get(t, []):
                    if m == n or self.free[m]:
                        continue
                    if t in e.carried and c.einsum(m).kind == "update":
                        continue
                    out.append(m)
            return out

        deferred: set[str] = set()
        if pipelined:
            head = next((units[n] for n in members if not self.free[n]), None)
            for n in reversed(members):
                if self.free[n] or units[n] == head:
                    continue
                consumers = [m for m in members if n in same_step_producers(m)]
                if all(m in deferred for m in consumers):
                    deferred.add(n)
        level: dict[str, int] = {}
        for n in members:
            if self.free[n] or n in deferred:
                level[n] = 0
                continue
            lv = 0
            for m in same_step_producers(n):
                if m in deferred:
                    continue
                lv = max(lv, level[m] + (0 if units[m] == units[n] else 1))
            level[n] = lv
        nst = max(level.values()) + 1 if level else 1
        stages = [[n for n in members if level[n] == k] for k in range(nst)]
        stages = [s for s in stages if s]
        return stages, [n for n in members if n in deferred]

    # -- segments under constraints ---------------------------------------------------
    def _segments(self, cons: Constraints) -> dict[tuple[int, int], Segment]:
        atom_of = {n: k for k, a in enumerate(self.atoms) for n in a}
        segs = {}
        for i in range(len(self.atoms)):
            for j in range(i + 1, len(self.atoms) + 1):
                ok = True
                for lst, _ in cons.fuse:
                    ks = [atom_of[n] for n in lst]
                    inside = [i <= k < j for k in ks]
                    if any(inside) and not all(inside):
                        ok = False
                for lst, _ in cons.split:
                    ks = [atom_of[n] for n in lst]
                    if sum(i <= k < j for k in ks) > 1:
                        ok = False
                if not ok:
                    continue
                seg = self._build_segment(i, j, cons)
                segs[(i, j)] = seg
        return segs

    def _reachable(self, segs: Mapping[tuple[int, int], Any], ok: Callable[[Any], bool]) -> bool:
        n = len(self.atoms)
        reach = [False] * (n + 1)
        reach[0] = True
        for j in range(1, n + 1):
            reach[j] = any(reach[i] and (i, j) in segs and ok(segs[(i, j)]) for i in range(j))
        return reach[n]

    def _space_size(self) -> int:
        n = len(self.atoms)
        cnt = [0] * (n + 1)
        cnt[0] = 1
        for j in range(1, n + 1):
            cnt[j] = sum(cnt[i] * self.segments[(i, j)].raw for i in range(j) if (i, j) in self.segments)
        return cnt[n]

    # -- points of a segment ----------------------------------------------------------
    def _start_points(self, seg: Segment) -> Iterable[tuple]:
        """Starting choices: default units/spatial, largest tiles that fit, each stage layout."""
        base = []
        for d in seg.dims:
            if d.key[0] == "map":
                n = d.key[1]
                e, oc = self.c.einsum(n), self.counts[n]
                du = default_unit(self.arch, e, oc)
                ks = [k for k, v in enumerate(d.values) if v["unit"] == du] or [0]
                base.append(min(ks, key=lambda k: (self._spatial_estimate(n, d.values[k]), k)))
            else:
                base.append(0)
        base = self._fit_tiles(seg, base)
        sk = next((k for k, d in enumerate(seg.dims) if d.key == ("stages",)), None)
        if sk is None:
            yield tuple(base)
        else:
            for v in range(len(seg.dims[sk].values)):
                b = list(base)
                b[sk] = v
                yield tuple(b)
        for _ in range(4):
            yield self._random_point(seg)

    def _spatial_estimate(self, n: str, v: Mapping[str, Any]) -> int:
        """Folds x streaming cycles (+ fill/drain) of Einsum n on the whole iteration space."""
        sp = v.get("spatial")
        if not sp:
            return 0
        e = self.c.einsum(n)
        size = {ix: self.c.index_size(ix) for ix in e.iter_indices}
        placed = {**sp.get("rows", {}), **sp.get("cols", {})}
        folds = math.prod(-(-size[ix] // f) for ix, f in placed.items())
        T = math.prod(x for ix, x in size.items() if ix not in placed)
        return folds * T + sum(placed.values())

    def _fit_tiles(self, seg: Segment, choice: list[int]) -> list[int]:
        cap = self.buf.capacity_words
        choice = list(choice)
        tk = [k for k, d in enumerate(seg.dims) if d.key[0] == "tile"]
        if cap is None or not tk:
            return choice
        for _ in range(200):
            e, g = self.emit(seg, tuple(choice))
            tiles = g.get("tiles", {}).get(self.buf.name, {})
            if buffer_words(self.c, self.arch, seg.members, tiles) <= cap:
                break
            # shrink the largest tile that can still shrink
            opts = [k for k in tk if choice[k] < len(seg.dims[k].values) - 1]
            if not opts:
                break
            k = max(opts, key=lambda k: (seg.dims[k].values[choice[k]], -k))
            choice[k] += 2 if choice[k] + 2 < len(seg.dims[k].values) else 1  # halve (skip the 3/4 point)
        return choice

    def _random_point(self, seg: Segment) -> tuple:
        ch = [self.rng.randrange(len(d.values)) for d in seg.dims]
        return tuple(self._fit_tiles(seg, ch))

    def _all_choices(self, seg: Segment) -> Iterable[tuple]:
        return itertools.product(*[range(len(d.values)) for d in seg.dims])
