"""Mapping-search benchmarks (JSON output; not timed tests).

    .venv/bin/python benchmarks/search_bench.py [--out benchmarks/results/search.json] [--budget 400]

1. Evaluation rate, one core, for a single Einsum (a 197 x 768 x 768 GEMM, a ViT linear
   layer, on systolic-16x16): every candidate of its search space
   (unit/dataflow/spatial x M, N, K tiles x loop order) through
   * the analytic path (:mod:`einarray.analytic`: emit the candidate, buffer check,
     closed-form cycles + bandwidth bound + energy = counts x table); target >= 1,000/s;
   * the simulator path (the candidate validated by ``mapping.groups`` and simulated);
   * the bare closed form on a fixed mapping (no candidate construction).
2. Searches on the shipped configs: FuseMax mapping workload (``mapping/configs/
   fusemax.yaml``, BERT 1K, batch 64 x 12 heads on the ``fusemax`` ASIC) found vs the
   hand-written mapping, with and without seeding by the hand mapping; the GEMM above on
   systolic-16x16 found vs the default mapping.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from einarray.analytic import estimate, estimate_config  # noqa: E402
from einarray.search import load_search_config, search  # noqa: E402
from einarray.search.model import figures  # noqa: E402
from einarray.search.strategies import Searcher  # noqa: E402
from einarray.search_eval import SIMULATOR  # noqa: E402
from mapping.config import load_config  # noqa: E402
from mapping.spec import Loop  # noqa: E402
from mapping.footprint import buffer_words  # noqa: E402
from sim.results import simulate  # noqa: E402

GEMM = "workload: {cascade: gemm, ranks: {M: 197, N: 768, K: 768}}\narch: systolic-16x16\n"


def _gemm_file(d: Path, extra: str = "") -> Path:
    p = d / "gemm.yaml"
    p.write_text(GEMM + extra)
    return p


def rates(d: Path, limit: int) -> dict:
    s = Searcher(load_search_config(_gemm_file(d)), SIMULATOR, use_analytic=True)
    seg = next(iter(s._segments(s.cons).values()))
    choices = list(itertools.islice(itertools.product(*[range(len(x.values)) for x in seg.dims]), limit))
    n = seg.members[0]
    cap = s.buf.capacity_words
    # analytic path: emit + buffer check + closed form
    t0 = time.perf_counter()
    done = 0
    for ch in choices:
        einsums, g = s.emit(seg, ch)
        tiles = g["tiles"][s.buf.name]
        if cap is not None and buffer_words(s.c, s.arch, seg.members, tiles) > cap:
            continue
        em = s._emaps(einsums)[n]
        loops = tuple(Loop(r, tiles.get(r, s.c.ranks[r].size), s.c.ranks[r].size) for r in g.get("loop_order", []))
        estimate(s.c, s.arch, s.counts, s.cfg.instances, em, loops)
        done += 1
    t_an = time.perf_counter() - t0
    # simulator path on a deterministic sample of the same candidates
    sample = choices[:: max(1, len(choices) // 400)][:400]
    t0 = time.perf_counter()
    sim_done = 0
    for ch in sample:
        if s.eval_choice(seg, ch) is not None:
            sim_done += 1
    t_sim = time.perf_counter() - t0
    # bare closed form on one mapping
    cfg = load_config(_gemm_file(d, "mapping:\n  groups: [{name: g, einsums: [C], tiles: {GB: {M: 64, N: 128}}, "
                                    "loop_order: [M, N]}]\n"))
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < 1.0:
        estimate_config(cfg)
        k += 1
    t_bare = time.perf_counter() - t0
    return {
        "einsum": "gemm 197x768x768 on systolic-16x16",
        "space_raw_candidates": seg.raw,
        "analytic": {"candidates": len(choices), "evaluated": done, "seconds": t_an,
                     "evaluations_per_s": done / t_an, "candidates_per_s": len(choices) / t_an,
                     "target_per_s": 1000, "meets_target": done / t_an >= 1000},
        "simulator": {"candidates": len(sample), "simulated": sim_done, "seconds": t_sim,
                      "evaluations_per_s": len(sample) / t_sim,
                      "note": "validation + group simulation per candidate (pruned ones included in the rate)"},
        "closed_form_only_per_s": k / t_bare,
    }


def run_search(path: Path, budget: int, seed_mapping: bool = True, objective: str = "edp") -> dict:
    pb = load_search_config(path, budget=budget, objective=objective)
    if not seed_mapping:
        pb.settings = dataclasses.replace(pb.settings, seed_mapping=False)
    t0 = time.perf_counter()
    r = search(pb, SIMULATOR)
    dt = time.perf_counter() - t0
    out = {"objective": objective, "budget": budget,
           "seeded_with_hand_mapping": seed_mapping and pb.hand_mapping is not None,
           "exhaustive": r.exhaustive, "space_size": r.space_size, "evaluations": r.evaluations,
           "seconds": dt, "found": figures(r.result),
           "groups": [g["einsums"] for g in r.mapping["groups"]], "best_came_from_seed": r.seeded}
    if r.hand_result is not None:
        h = figures(r.hand_result)
        out["hand"] = h
        out["found_vs_hand"] = {k: out["found"][k] / h[k] for k in ("latency_s", "energy_pj", "edp")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search.json"))
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--limit", type=int, default=5000, help="candidates timed on the analytic path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        res = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count(), "cores_used": 1},
               "rates": rates(d, args.limit)}
        fm = ROOT / "mapping" / "configs" / "fusemax.yaml"
        res["fusemax_seeded"] = run_search(fm, args.budget, True)
        res["fusemax_unseeded"] = run_search(fm, args.budget, False)
        g = _gemm_file(d)
        default = figures(simulate(load_config(g)))
        gs = run_search(g, args.budget, objective="latency")
        gs["default_mapping"] = default
        gs["found_vs_default"] = {k: gs["found"][k] / default[k] for k in ("latency_s", "energy_pj", "edp")}
        res["gemm_systolic_16x16"] = gs
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)
    print(json.dumps(res, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
