"""Whole-model search benchmark (JSON output; not a timed test).

    .venv/bin/python benchmarks/bench_vit_search.py [--budget 400] [--out benchmarks/results/vit_search.json]

``einarray run`` on ViT-Base/16 (examples/vit-base-fusemax.yaml, every layer) with
``search: {budget: N, objective: latency}``, as a whole process writing its report into a
temporary folder (target: under 20 s on 2 cores). The run searches the distinct layers on
every core (einarray/search_cache.py); wall and CPU (user + system, all processes) time are
recorded, and the load average, since wall time on a shared machine includes waiting for a
core. A second, in-process run of the same config on one process gives the time per layer
and how many layers reused an identical layer's search. With ``--profile`` that run is
profiled (cProfile, so slower) and the JSON says where the search's time goes: the
simulator (sim/), the closed-form ranking (einarray/analytic.py), mapping validation
(mapping/) and the search itself (einarray/search/), as shares of the profiled time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

from einsum.atomic import write_atomic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_startup import cli, time_process, user_env  # noqa: E402

TARGET_S = 20.0


def config(d: Path, budget: int) -> Path:
    p = d / "vit-base-search.yaml"
    p.write_text(f"include: {ROOT / 'examples' / 'vit-base-fusemax.yaml'}\n"
                 f"search: {{budget: {budget}, objective: latency}}\n")
    return p


SHARES = {"simulator (sim/)": "/sim/", "closed-form ranking (einarray/analytic.py)": "/einarray/analytic.py",
          "mapping validation (mapping/)": "/mapping/", "search (einarray/search/)": "/einarray/search/"}


def shares(stats) -> dict[str, float]:
    """Share of the profiled time spent inside each part (own time of its functions and of
    what they call outside the other parts, e.g. Fraction arithmetic in the simulator)."""
    import pstats

    st = pstats.Stats(stats)
    total = max(st.total_tt, 1e-9)
    own = {k: 0.0 for k in SHARES}
    # attribute each function's own time to the nearest listed part up its call chain
    callers = {f: v[4] for f, v in st.stats.items()}
    part_of: dict = {}

    def part(f, depth=0):
        if f in part_of:
            return part_of[f]
        part_of[f] = None  # cycles
        hit = next((k for k, s in SHARES.items() if s in f[0]), None)
        if hit is None and depth < 40:
            best = max(callers.get(f, {}).items(), key=lambda kv: kv[1][3], default=None)
            hit = part(best[0], depth + 1) if best else None
        part_of[f] = hit
        return hit

    for f, v in st.stats.items():
        k = part(f)
        if k is not None:
            own[k] += v[2]
    return {k: round(x / total, 3) for k, x in own.items()}


def per_layer(cfg: Path, profile: bool = False) -> dict:
    """Seconds per layer (search + simulation) of an in-process run on one process, and the
    cache's counts (with ``profile``: where the time goes, :func:`shares`)."""
    from einarray import flow, search_cache

    search_cache.clear()
    real_prefetch = search_cache.prefetch
    search_cache.prefetch = lambda *a, **k: 0  # one process: every search timed here
    spec = flow.load_run(cfg)
    times: dict[str, dict[str, float]] = {}
    real_search = flow.search_layer

    current = [""]

    def timed_search(lay, sec, **kw):
        t, c = time.perf_counter(), time.process_time()
        out = real_search(lay, sec, **kw)
        times[lay.name] = {"search_wall_s": time.perf_counter() - t, "search_cpu_s": time.process_time() - c}
        current[0] = lay.name
        return out

    from sim.results import simulate as real_sim

    def timed_sim(cfg_):
        t = time.perf_counter()
        out = real_sim(cfg_)
        times[current[0]]["simulate_wall_s"] = time.perf_counter() - t  # the layer just searched
        return out

    flow.search_layer = timed_search
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if prof is not None:
                prof.enable()
            res = flow.run(spec, progress=False, simulate=timed_sim)
            if prof is not None:
                prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        flow.search_layer = real_search
        search_cache.prefetch = real_prefetch
    extra = {"profiled": True, "time_shares": shares(prof)} if prof is not None else {"profiled": False}
    return {"wall_s": wall, "cpu_s": cpu, **extra, "layers": times, "cache": search_cache.stats(),
            "latency_s": res["latency_s"], "cycles": res["cycles"],
            "mapping_origins": sorted({l["mapping_origin"] for l in res["layers"]})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="einarray whole-model search benchmark")
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vit_search.json"))
    ap.add_argument("--no-breakdown", action="store_true", help="skip the in-process per-layer run")
    ap.add_argument("--profile", action="store_true", help="profile the in-process run (slower): time shares")
    args = ap.parse_args(argv)
    res: dict = {"host": {"python": sys.version.split()[0], "machine": platform.machine(),
                          "cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
                 "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget": args.budget}
    with tempfile.TemporaryDirectory() as d:
        cfg = config(Path(d), args.budget)
        cmd = [*cli(), "run", str(cfg), "-o", str(Path(d) / "out"), "--no-progress", "--json"]
        proc = time_process(cmd, user_env(str(Path(d) / "pycache")), runs=1, warmup=0)
        res["command"] = f"einarray run CONFIG -o DIR --no-progress --json  # CONFIG: {cfg.read_text()!r}"
        res["einarray_run"] = {"wall_s": proc["wall_min_s"], "cpu_s": proc["cpu_min_s"], "target_s": TARGET_S,
                               "ok_wall": proc["wall_min_s"] < TARGET_S, "ok_cpu": proc["cpu_min_s"] < TARGET_S}
        summary = json.loads((Path(d) / "out" / "report.json").read_text())
        res["einarray_run"]["latency_s"] = summary["latency_s"]
        print("einarray run:", json.dumps(res["einarray_run"]), flush=True)
        if not args.no_breakdown:
            with contextlib.redirect_stdout(io.StringIO()):
                res["in_process"] = per_layer(cfg, profile=args.profile)
            print("in process:", json.dumps({k: v for k, v in res["in_process"].items() if k != "layers"}),
                  flush=True)
    res["host"]["load_average_after"] = os.getloadavg()
    out = Path(args.out)
    write_atomic(out, json.dumps(res, indent=1) + "\n")  # makes the parents
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
