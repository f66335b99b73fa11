"""The strategies of :mod:`einarray.search`: which candidates to cost, and the best
combination of them.

When every candidate of every segment fits in the budget the search is *exhaustive*
(:meth:`Searcher.run` simulates them all) and returns the true optimum. Otherwise it is a heuristic: every segment's
starting point (largest tiles that fit, default units and spatial mapping, pipelined
stages) is evaluated, then greedy coordinate descent (one choice at a time, every value
tried) runs on the segments of the currently best partition and, once those are at a
local optimum, on the most promising other segments, with random restarts, until the
budget (simulated candidates) is spent; the most fused segment gets the first descent
sweep, since its starting point underestimates it most. Single-Einsum groups are first
ranked by the evaluator's cheap model (:attr:`~.model.Evaluator.rank`; the app's is the
closed form of :mod:`einarray.analytic`) and costed best-first.
Everything is deterministic for a given ``--seed``. The best mapping and the Pareto
points (the 40 fastest) are re-validated with :func:`mapping.loader.mapping_from_data` and re-simulated in
full (:attr:`~.model.Evaluator.full`); the figures reported are those of the full simulation.

A hand-written ``mapping:`` in the config *seeds* the search (``seed_mapping: false``
turns this off): each of its groups that is a segment is evaluated as one more candidate
of that segment, so the result is never worse than the hand mapping.

Each segment keeps the Pareto set of its candidates' (cycles, energy); the best partition
is found by dynamic programming over segments keeping, per prefix, the Pareto set of the
sums (:meth:`Searcher._combine`, see :mod:`.model` for why this is exact).

A constraint that leaves no legal mapping is found by :meth:`Searcher._blame`, which
adds the constraints one at a time in file order until none is left.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from fractions import Fraction
from typing import Any, Callable, Mapping

from einsum.errors import ConfigError

from .constraints import Constraints, SearchProblem, _merge, violates
from .model import CandidateModel, Evaluator, SearchResult, _pareto, _thin, assemble
from .space import Segment


class Searcher(CandidateModel):
    """The search over one :class:`~.constraints.SearchProblem` (see :mod:`einarray.search`)."""

    def __init__(self, problem: SearchProblem, evaluator: Evaluator, *,
                 progress: Callable[[int, int], None] | None = None,
                 use_analytic: bool = True, full_results: bool = True):
        super().__init__(problem, evaluator, progress=progress)
        self.use_analytic = use_analytic
        self.full_results = full_results
        self.exhaustive = False
        self.cloud: list[tuple[float, float]] = []  # (latency s, energy pJ) of combined mappings

    def run(self) -> "SearchResult":
        t0 = time.perf_counter()
        segs = self._segments(self.cons)
        if not self._reachable(segs, lambda s: s.empty_reason is None):
            raise self._blame(next((s.empty_reason for s in segs.values() if s.empty_reason), "empty space"))
        self.segments = {k: s for k, s in segs.items() if s.empty_reason is None}
        self._seed_hand()
        total_raw = sum(s.raw for s in self.segments.values())
        self.space_size = self._space_size()
        self.exhaustive = total_raw <= self.s.budget
        if self.exhaustive:
            for seg in self.segments.values():
                for ch in self._all_choices(seg):
                    self.eval_choice(seg, ch)
                seg.converged = True
        else:
            self._heuristic()
        front = self._combine()
        if not front:
            raise self._blame(self.last_illegal or "every candidate is illegal")
        res = self._finish(front, time.perf_counter() - t0)
        return res

    # -- constraints that leave nothing -----------------------------------------------
    def _blame(self, why: str) -> ConfigError:
        """The first constraint (file order) after which no legal mapping is left."""
        items = self.cons.items()
        for k in range(len(items)):
            sub = _merge(c for _, c in items[:k + 1])
            segs = self._segments(sub)
            if not self._reachable(segs, lambda s: s.empty_reason is None):
                return ConfigError(f"{items[k][0]}: this constraint leaves no legal mapping ({why})")
            if not self._feasible(segs, sub):
                return ConfigError(f"{items[k][0]}: this constraint leaves no legal mapping ({why})")
        return ConfigError(f"no legal mapping found: {why}")

    def _feasible(self, segs: Mapping[tuple[int, int], Segment], cons: Constraints) -> bool:
        """Whether some segmentation has a legal candidate in every segment (few tries each)."""
        saved_cons = self.cons
        self.cons = cons
        try:
            legal = {}
            for key, seg in segs.items():
                if seg.empty_reason is not None:
                    continue
                legal[key] = any(self.evaluate(seg, *self.emit(seg, ch)) is not None
                                 for ch in itertools.islice(self._start_points(seg), 8))
            return self._reachable(legal, lambda x: x)
        finally:
            self.cons = saved_cons

    # -- the hand mapping as a seed ---------------------------------------------------
    def _seed_hand(self) -> None:
        hand = self.problem.hand_mapping
        if hand is None or not self.s.seed_mapping:
            return
        spec = self.cfg.mapping
        atom_start = {}
        for ai, a in enumerate(self.atoms):
            atom_start[a[0]] = ai
        esec = (hand.get("einsums") or {}) if isinstance(hand, dict) else {}
        gsecs = [g for g in (hand.get("groups") or []) if isinstance(g, dict)] if isinstance(hand, dict) else []
        for g in spec.groups:
            i = atom_start.get(g.einsums[0])
            if i is None:
                continue
            j, n = i, 0
            while j < len(self.atoms) and n < len(g.einsums):
                n += len(self.atoms[j])
                j += 1
            seg = self.segments.get((i, j))
            if seg is None or seg.members != g.einsums:
                continue
            raw = next((x for x in gsecs if str(x.get("name")) == g.name), None)
            gd: dict[str, Any] = dict(copy.deepcopy(raw)) if raw is not None else {}
            gd["name"] = seg.name
            gd["einsums"] = list(seg.members)
            einsums = {}
            for n2 in seg.members:
                if self.free[n2]:
                    continue
                d = dict(copy.deepcopy(esec.get(n2) or {}))
                em = spec.einsums[n2]
                d["unit"] = em.unit
                if self.arch.units[em.unit].is_2d and self.counts[n2].counts.get("mac"):
                    d["dataflow"] = em.dataflow
                    d["spatial"] = {"rows": dict(em.rows), "cols": dict(em.cols)}
                    if not em.rows:
                        del d["spatial"]["rows"]
                    if not em.cols:
                        del d["spatial"]["cols"]
                else:
                    d.pop("spatial", None)
                    d.pop("dataflow", None)
                einsums[n2] = d
            if "tiles" not in gd:
                gd["tiles"] = {self.buf.name: {lp.rank: lp.tile for lp in g.loops}}
                gd["loop_order"] = [lp.rank for lp in g.loops]
            if violates(self.cons, self.c, self.buf.name, seg.members, einsums, gd):
                continue
            self.evaluate(seg, einsums, gd, origin="seed")

    # -- heuristic --------------------------------------------------------------------
    def _heuristic(self) -> None:
        segs = sorted(self.segments.values(), key=lambda s: (s.j - s.i, s.i))
        rank = self.evaluator.rank if self.use_analytic else None
        if rank is not None:
            for seg in segs:
                if seg.raw <= 20000 and sum(not self.free[n] for n in seg.members) == 1:
                    seg.ranked = rank(self, seg)
        # phase 1: a legal starting point in every segment
        for seg in segs:
            if self.left <= 0:
                break
            if seg.ranked is not None:
                self._ranked_step(seg, 2)
                continue
            for ch in self._start_points(seg):
                if self.left <= 0:
                    break
                if self.eval_choice(seg, ch) is not None:
                    break
            seg.cur = seg.best_choice
        # phase 2: first one descent pass on the most fused group (the whole cascade when it
        # is legal: fusion is where the large wins are, and its starting point is the one
        # that most underestimates it), then the segments that matter most
        whole = max((s for s in segs if s.best is not None and s.ranked is None),
                    key=lambda s: (s.j - s.i, -s.i), default=None)
        if whole is not None and whole.j - whole.i > 1 and self.left > 0:
            self._descent_pass(whole)
        stall = 0
        while self.left > 0 and stall < 3:
            target = self._next_target()
            before = self.evals
            if target is None:
                pending = [s for s in segs if s.best is None and not s.converged]
                if not pending:
                    break
                self._random_tries(pending[0])
            elif target.ranked is not None:
                self._ranked_step(target, 16)
            else:
                self._descent_pass(target)
            stall = stall + 1 if self.evals == before else 0

    def _random_tries(self, seg: Segment) -> None:
        for _ in range(6):
            if self.left <= 0:
                return
            if self.eval_choice(seg, self._random_point(seg)) is not None:
                seg.cur = seg.best_choice
                return
        seg.converged = True

    def _ranked_step(self, seg: Segment, k: int) -> None:
        assert seg.ranked is not None
        done = 0
        while seg.ranked_pos < len(seg.ranked) and done < k and self.left > 0:
            ch = seg.ranked[seg.ranked_pos]
            seg.ranked_pos += 1
            if self.eval_choice(seg, ch) is not None:
                done += 1
        if seg.ranked_pos >= len(seg.ranked):
            seg.converged = True

    def _next_target(self) -> Segment | None:
        n = len(self.atoms)
        inf = float("inf")
        # forward/backward best (cycles, energy) pairs by the objective, greedily
        def val(p):
            return self.objective(math.ceil(p[0]), p[1] + self.arch.leakage_pj_per_cycle * math.ceil(p[0]))
        fwd: list[tuple | None] = [None] * (n + 1)
        fwd[0] = (Fraction(0), 0.0)
        for j in range(1, n + 1):
            for i in range(j):
                s = self.segments.get((i, j))
                if s is None or s.best is None or fwd[i] is None:
                    continue
                p = (fwd[i][0] + s.best.cycles, fwd[i][1] + s.best.energy)
                if fwd[j] is None or val(p) < val(fwd[j]):
                    fwd[j] = p
        bwd: list[tuple | None] = [None] * (n + 1)
        bwd[n] = (Fraction(0), 0.0)
        for i in range(n - 1, -1, -1):
            for j in range(i + 1, n + 1):
                s = self.segments.get((i, j))
                if s is None or s.best is None or bwd[j] is None:
                    continue
                p = (bwd[j][0] + s.best.cycles, bwd[j][1] + s.best.energy)
                if bwd[i] is None or val(p) < val(bwd[i]):
                    bwd[i] = p
        best, best_v = None, inf
        for (i, j), s in sorted(self.segments.items()):
            if s.converged or s.best is None or fwd[i] is None or bwd[j] is None:
                continue
            p = (fwd[i][0] + s.best.cycles + bwd[j][0], fwd[i][1] + s.best.energy + bwd[j][1])
            v = val(p)
            if v < best_v:
                best, best_v = s, v
        return best

    def _descent_pass(self, seg: Segment) -> None:
        """One sweep of coordinate descent from ``seg.cur`` (every value of every choice,
        coordinates in a seeded random order); a sweep that gains nothing restarts from a
        random point (three times) and then marks the segment converged."""
        if seg.cur is None:
            seg.cur = seg.best_choice
        if seg.cur is None or not seg.dims:
            seg.converged = True
            return
        cur = list(seg.cur)
        c0 = self.eval_choice(seg, tuple(cur))
        cur_v = self.proxy(c0) if c0 is not None else float("inf")
        start = cur_v
        order = list(range(len(seg.dims)))
        self.rng.shuffle(order)
        for k in order:
            best_v, best_val = cur_v, cur[k]
            for v in range(len(seg.dims[k].values)):
                if v == cur[k]:
                    continue
                if self.left <= 0:
                    break
                ch = list(cur)
                ch[k] = v
                c = self.eval_choice(seg, tuple(ch))
                if c is not None and self.proxy(c) < best_v:
                    best_v, best_val = self.proxy(c), v
            cur[k], cur_v = best_val, best_v
        if cur_v < start:
            seg.cur = tuple(cur)
            return
        if seg.restarts < 3 and self.left > 0:
            seg.restarts += 1
            for _ in range(6):
                ch = self._random_point(seg)
                if self.eval_choice(seg, ch) is not None:
                    seg.cur = ch
                    return
        seg.converged = True

    # -- combination ------------------------------------------------------------------
    def _combine(self) -> list[tuple[Fraction, float, tuple]]:
        n = len(self.atoms)
        fronts: list[list[tuple[Fraction, float, tuple]]] = [[] for _ in range(n + 1)]
        fronts[0] = [(Fraction(0), 0.0, ())]
        for j in range(1, n + 1):
            pts = []
            for i in range(j):
                s = self.segments.get((i, j))
                if s is None or not s.front or not fronts[i]:
                    continue
                for c0, e0, path in fronts[i]:
                    for cand in s.front:
                        pts.append((c0 + cand.cycles, e0 + cand.energy, path + (cand,)))
            if j == n:  # every combination reaching the end: the cloud behind the front
                step = max(1, len(pts) // 2000)
                leak = self.arch.leakage_pj_per_cycle
                self.cloud = [(math.ceil(p[0]) / self.arch.clock_hz, p[1] + leak * math.ceil(p[0]))
                              for p in pts[::step]]
            fronts[j] = _thin(_pareto(pts, key=lambda p: (p[0], p[1])), 256, self)
        return fronts[n]

    def _finish(self, front, seconds: float) -> "SearchResult":
        leak = self.arch.leakage_pj_per_cycle

        def fig(p):
            cyc = math.ceil(p[0])
            return cyc, p[1] + leak * cyc
        pts = sorted(front, key=lambda p: (self.objective(*fig(p)), p[0]))
        simulate = self.evaluator.full
        best = bsec = bres = None
        for p in pts:  # the best point whose whole mapping validates
            sec = assemble(self.c, p[2])
            try:
                cfg = self.config_for(sec)
            except ConfigError as exc:
                self.illegal += 1
                self.last_illegal = exc.message
                continue
            best, bsec, bres = p, sec, simulate(cfg)
            break
        if best is None:
            raise self._blame(self.last_illegal or "every candidate is illegal")
        checked = []
        for p in sorted(front, key=lambda p: p[0])[:40] if self.full_results else []:
            if p is best:
                checked.append((p, bsec, bres))
                continue
            sec = assemble(self.c, p[2])
            try:
                cfg = self.config_for(sec)
            except ConfigError:
                continue
            checked.append((p, sec, simulate(cfg)))
        if not any(p is best for p, _, _ in checked):
            checked.append((best, bsec, bres))
            checked.sort(key=lambda x: x[0][0])
        hand = None
        if self.problem.hand_mapping is not None and self.full_results:
            hand = simulate(self.cfg)
        return SearchResult(
            objective=self.s.objective, budget=self.s.budget, seed=self.s.seed,
            exhaustive=self.exhaustive, space_size=self.space_size, evaluations=self.evals,
            pruned=self.pruned, illegal=self.illegal, seconds=seconds, mapping=bsec, result=bres,
            predicted={"cycles": fig(best)[0], "energy_pj": fig(best)[1]},
            pareto=[(sec, r) for _, sec, r in checked], hand_result=hand,
            seeded=any(c.origin == "seed" for c in best[2]),
            segments=len(self.segments), atoms=[list(a) for a in self.atoms],
            workload=self.c.name, arch=self.arch.name, instances=self.cfg.instances, cloud=self.cloud)
