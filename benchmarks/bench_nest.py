"""Speed of the memory-hierarchy model (``sim.nest``; JSON output; not a timed test).

    .venv/bin/python benchmarks/bench_nest.py [--out benchmarks/results/nest.json] [--runs 50]

Times ``simulate_nest`` (every level stepped: counts, bounds, energy, networks) in-process on
the shipped hierarchy configs: the Eyeriss-like AlexNet CONV3 (the row-stationary hand
mapping), the Simba-like ResNet-50 conv3_x and BERT scores, and the Timeloop exercise 04, as
min / median wall time over ``--runs`` runs after one warm-up (the config is loaded once;
loading is not timed). Also records each run's MACs, cycles and energy, so a speed-up that
changed a number shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

from einsum.atomic import write_atomic

ROOT = Path(__file__).resolve().parent.parent
CASES = ["examples/eyeriss/alexnet-conv3.yaml", "examples/simba/resnet50-conv3.yaml",
         "examples/simba/bert-qk.yaml", "examples/timeloop/04-conv1d+oc+ic-3levelspatial-kp.yaml"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "nest.json"), help="JSON file to write")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per config (default 50)")
    a = ap.parse_args(argv)
    from mapping.config import load_config
    from sim.nest import simulate_nest

    rows = []
    for case in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the components' extrapolation notes, printed by simulate
            cfg = load_config(ROOT / case, allow_hierarchy=True)
        res = simulate_nest(cfg)
        ts = []
        for _ in range(a.runs):
            t = time.perf_counter()
            simulate_nest(cfg)
            ts.append(time.perf_counter() - t)
        rows.append({"config": case, "macs": res.computes, "cycles": res.cycles, "energy": res.energy_pj,
                     "energy_unit": res.energy_unit, "min_ms": min(ts) * 1e3,
                     "median_ms": statistics.median(ts) * 1e3})
        print(f"{case}: {res.computes:,} MACs, {res.cycles:,} cycles; {min(ts) * 1e3:.2f} ms min, "
              f"{statistics.median(ts) * 1e3:.2f} ms median")
    out = {"runs": a.runs, "python": platform.python_version(), "load_average": os.getloadavg()[0],
           "rows": rows}
    write_atomic(Path(a.out), json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
