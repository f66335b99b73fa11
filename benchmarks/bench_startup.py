"""CLI start-up benchmark (JSON output; not a timed test).

    .venv/bin/python benchmarks/bench_startup.py [--out benchmarks/results/startup.json] [--runs 15]

Times whole processes: ``einarray simulate`` on a 64^3 GEMM on ``systolic-16x16`` (target:
under 0.2 s wall), ``einarray --version`` and a bare ``python -c pass`` for the floor, as
min / median wall and CPU (user + system) over ``--runs`` runs after two warm-up runs. The
CPU figure is what the process itself costs; wall time also holds waiting for a core on a
busy machine (the load average is recorded). Bytecode caching is on (in a temporary
``PYTHONPYCACHEPREFIX``), as for a user, even when the environment turns it off.

Also records which libraries the simulate path imports and the import time of each
library, from ``python -X importtime`` (best of three).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from einsum.atomic import write_atomic

ROOT = Path(__file__).resolve().parent.parent
GEMM64 = "workload: {cascade: gemm, ranks: {M: 64, N: 64, K: 64}}\narch: systolic-16x16\n"
TARGET_S = 0.2


def cli() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m einarray.cli``."""
    exe = Path(sys.executable).parent / "einarray"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "einarray.cli"]


def user_env(cache_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def time_process(cmd: list[str], env: dict[str, str], runs: int, warmup: int = 2) -> dict[str, float]:
    """min / median wall and CPU seconds of ``cmd`` over ``runs`` runs."""
    walls, cpus = [], []
    for i in range(warmup + runs):
        before = os.times()
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        after = os.times()
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr[-2000:]}")
        if i >= warmup:
            walls.append(wall)
            cpus.append((after.children_user - before.children_user)
                        + (after.children_system - before.children_system))
    return {"wall_min_s": min(walls), "wall_median_s": statistics.median(walls),
            "cpu_min_s": min(cpus), "cpu_median_s": statistics.median(cpus), "runs": runs}


def import_profile(cmd_code: str, env: dict[str, str]) -> dict[str, float]:
    """Self import time (ms) per top-level package, best of three ``-X importtime`` runs."""
    best: dict[str, float] = {}
    for _ in range(3):
        p = subprocess.run([sys.executable, "-X", "importtime", "-c", cmd_code], env=env,
                           capture_output=True, text=True)
        per: dict[str, float] = {}
        for line in p.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
            if m:
                top = m.group(2).split(".")[0]
                per[top] = per.get(top, 0.0) + int(m.group(1)) / 1000
        for k, v in per.items():
            best[k] = min(best.get(k, v), v)
    return dict(sorted(best.items(), key=lambda kv: -kv[1])[:15])


def simulate_code(cfg: Path) -> str:
    return ("import contextlib, io, sys\nfrom einarray.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    main(['simulate', {str(cfg)!r}])\n")


def measure(runs: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "gemm64.yaml"
        cfg.write_text(GEMM64)
        env = user_env(str(Path(d) / "pycache"))
        sim = time_process([*cli(), "simulate", str(cfg)], env, runs)
        res = {
            "command": "einarray simulate gemm64.yaml  # " + GEMM64.replace("\n", "; ").strip("; "),
            "simulate_gemm64": {**sim, "target_wall_s": TARGET_S, "ok": sim["wall_min_s"] < TARGET_S},
            "version": time_process([*cli(), "--version"], env, runs),
            "python_pass": time_process([sys.executable, "-c", "pass"], env, runs),
            "import_ms_by_package": import_profile(simulate_code(cfg), env),
        }
        probe = simulate_code(cfg) + "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
        p = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        libs = json.loads(p.stdout.strip().splitlines()[-1])
        res["libraries_imported"] = [m for m in libs if m in ("numpy", "networkx", "yaml", "rich", "matplotlib",
                                                              "amaranth", "dask", "distributed", "scipy")]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="einarray CLI start-up benchmark")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    res = {"host": {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
                    "load_average_before": os.getloadavg()},
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measure(args.runs)}
    res["host"]["load_average_after"] = os.getloadavg()
    print(json.dumps({k: res[k] for k in ("simulate_gemm64", "version", "python_pass", "libraries_imported")},
                     indent=1))
    out = Path(args.out)
    write_atomic(out, json.dumps(res, indent=1) + "\n")  # makes the parents
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
