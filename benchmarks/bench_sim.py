"""Simulator benchmarks (JSON output; not timed tests).

    .venv/bin/python benchmarks/bench_sim.py [--out benchmarks/results/sim.json]
        [--scalesim /tmp/scalesim-venv/bin/python] [--repeat 3]

1. BERT-base attention (12 heads, batch 64) at 1M tokens under the FuseMax mapping
   (target: under 10 s on one core).
2. A 4096 x 4096 x 4096 GEMM on a 128 x 128 array (target: under 1 s).
3. SCALE-Sim v3 on the same GEMMs (run in its own venv, ``pip install scalesim 'numpy<2'``):
   einarray's ``fold_overlap: false`` cycles must equal SCALE-Sim's reported cycles + 1
   (its documented off-by-one), and the wall-time ratio is recorded twice: against
   SCALE-Sim's ``run_scale`` call timed inside its own process (``speedup``; import and
   interpreter start-up excluded) and against the whole SCALE-Sim process
   (``speedup_vs_process``); einarray's time is config load + simulation, in process.
4. The whole ``einarray simulate`` process on each of those GEMMs against the whole SCALE-Sim
   process (``cli_speedup_vs_scalesim_process``; both include interpreter start-up and
   imports; bytecode caching on, as for a user, see benchmarks/bench_startup.py). Without
   SCALE-Sim installed the 64^3 rows compare against its published 0.3-1.3 s per 64^3 run
   (the lower end), and the JSON says so.

Wall times are the best of ``--repeat`` runs. Everything runs on one core (the
simulator is single-threaded pure Python).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from einsum.atomic import write_atomic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from mapping.config import load_config  # noqa: E402
from sim.results import simulate  # noqa: E402
from sim.systolic import scalesim_gemm  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_startup import cli, time_process, user_env  # noqa: E402

# SCALE-Sim 3.0.0's whole process per 64^3 GEMM run, as published (lower, upper end)
SCALESIM_PUBLISHED_64_S = (0.3, 1.3)

GEMMS = [  # M, N, K, R(=C), dataflow
    (64, 64, 64, 16, "os"), (64, 64, 64, 16, "ws"), (64, 64, 64, 16, "is"),
    (64, 64, 64, 32, "os"), (64, 64, 64, 32, "ws"), (64, 64, 64, 32, "is"),
    (100, 70, 50, 16, "os"), (100, 70, 50, 16, "ws"), (128, 256, 64, 32, "os"),
    (256, 256, 256, 32, "ws"), (197, 768, 64, 32, "os"),
]


def best_of(fn, repeat):
    best, out = None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


def gemm_doc(M, N, K, R, df, overlap):
    return {"workload": {"cascade": "gemm", "ranks": {"M": M, "N": N, "K": K}},
            "arch": {"version": 1, "name": f"sa{R}", "clock_hz": 1.0e9,
                     "array2d": {"rows": R, "cols": R, "ops": {"mac": 1},
                                 "systolic": {"fill_drain": True, "fold_overlap": overlap}},
                     "memory": [{"name": "DRAM", "read_bw": 64, "write_bw": 64},
                                {"name": "GB", "capacity_bytes": 16 << 20, "read_bw": 4096, "write_bw": 4096,
                                 "double_buffer": True}],
                     "energy": {"array2d": {"mac": 1.0}, "DRAM": {"read": 100, "write": 100},
                                "GB": {"read": 5, "write": 5}}},
            "mapping": {"einsums": {"C": {"dataflow": df}}}}


SCALESIM_RUNNER = textwrap.dedent("""
    import json, sys, time, os
    from scalesim.scale_sim import scalesim
    cfg, topo, layout, out = sys.argv[1:5]
    t0 = time.perf_counter()
    s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                 input_type_gemm=True)
    s.run_scale(top_path=out)
    dt = time.perf_counter() - t0
    rep = [d for d in os.listdir(out)][0]
    rows = open(os.path.join(out, rep, "COMPUTE_REPORT.csv")).read().strip().splitlines()
    cyc = int(rows[1].split(",")[2])
    print(json.dumps({"cycles": cyc, "wall_s": dt}))
""")

# a SCALE-Sim 3 config: array R x C, SRAM sizes in kB, dataflow (also benchmarks/scalesim_reference.py)
SCALESIM_CFG = """[general]
run_name = einarray

[architecture_presets]
ArrayHeight: {R}
ArrayWidth: {C}
IfmapSramSzkB: {ifmap_kb}
FilterSramSzkB: {filter_kb}
OfmapSramSzkB: {ofmap_kb}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow : {df}
Bandwidth : 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def run_scalesim(py, M, N, K, R, df, repeat):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "scale.cfg").write_text(SCALESIM_CFG.format(R=R, C=R, df=df, ifmap_kb=6144, filter_kb=6144,
                                                          ofmap_kb=2048))
        # SCALE-Sim's topology CSV needs a trailing comma on every row
        (d / "topo.csv").write_text(f"Layer, M, N, K,\ng0, {M}, {N}, {K},\n")
        (d / "layout.csv").write_text("Layer, a, b, c, d, e, f, g, h,\ng0, 1, 1, 1, 1, 1, 1, 1, 1,\n")
        (d / "run.py").write_text(SCALESIM_RUNNER)
        best, process_min = None, None
        for i in range(repeat):
            out = d / f"out{i}"
            t0 = time.perf_counter()
            p = subprocess.run([py, str(d / "run.py"), str(d / "scale.cfg"), str(d / "topo.csv"),
                                str(d / "layout.csv"), str(out)], capture_output=True, text=True, cwd=d,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
            if p.returncode != 0:
                raise RuntimeError(p.stderr[-2000:])
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["process_wall_s"] = time.perf_counter() - t0
            process_min = r["process_wall_s"] if process_min is None else min(process_min, r["process_wall_s"])
            best = r if best is None or r["wall_s"] < best["wall_s"] else best
        best["process_wall_min_s"] = process_min
        return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="einarray simulator benchmarks")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sim.json"))
    ap.add_argument("--scalesim", default="/tmp/scalesim-venv/bin/python")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    res: dict = {"host": {"python": sys.version.split()[0], "machine": platform.machine(),
                          "cpus": os.cpu_count()}, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # 1. BERT-base attention at 1M tokens under the FuseMax mapping
    def bert():
        cfg = load_config(ROOT / "mapping" / "configs" / "fusemax.yaml",
                          ranks={"M": 1 << 20, "P": 1 << 20, "E": 64, "F": 64},
                          sets=["workload.batch.B=64", "workload.batch.H=12", "mapping.groups.0.hold={}"])
        return simulate(cfg)
    wall, r = best_of(bert, args.repeat)
    res["bert_base_1M_fusemax"] = {"wall_s": wall, "target_s": 10.0, "ok": wall < 10.0, "cycles": r["cycles"],
                                   "latency_s": r["latency_s"], "util_2d": r["utilization"]["array2d"]["pe_util"],
                                   "steps_simulated": r["sim"]["steps"], "steps_multiplied": r["sim"]["steps_skipped"]}
    print("BERT 1M FuseMax:", json.dumps(res["bert_base_1M_fusemax"]), flush=True)

    # 2. 4096^3 GEMM on 128x128
    with tempfile.TemporaryDirectory() as d:
        doc = gemm_doc(4096, 4096, 4096, 128, "os", True)
        doc["arch"]["memory"][1]["capacity_bytes"] = 8 << 20
        p = Path(d) / "g.yaml"
        p.write_text(yaml.safe_dump(doc))
        wall, r = best_of(lambda: simulate(load_config(p)), args.repeat)
    res["gemm_4096_128x128"] = {"wall_s": wall, "target_s": 1.0, "ok": wall < 1.0, "cycles": r["cycles"],
                                "compute_cycles": r["compute_cycles"],
                                "util_2d": r["utilization"]["array2d"]["mac_util"],
                                "steps_simulated": r["sim"]["steps"], "steps_multiplied": r["sim"]["steps_skipped"]}
    print("GEMM 4096^3 on 128x128:", json.dumps(res["gemm_4096_128x128"]), flush=True)

    # 3. SCALE-Sim comparison
    rows = []
    have = Path(args.scalesim).exists()
    for M, N, K, R, df in GEMMS:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "g.yaml"
            p.write_text(yaml.safe_dump(gemm_doc(M, N, K, R, df, False)))
            wall, r = best_of(lambda: simulate(load_config(p)), args.repeat)
            proc = time_process([*cli(), "simulate", str(p)], user_env(str(Path(d) / "pycache")), args.repeat,
                                warmup=1)
        ours = int(r["einsums"]["C"]["cycles"])
        row = {"M": M, "N": N, "K": K, "array": f"{R}x{R}", "dataflow": df, "einarray_cycles": ours,
               "einarray_wall_s": wall, "closed_form_scalesim_cycles": scalesim_gemm(M, N, K, R, R, df)["cycles"],
               "cli_process_wall_s": proc["wall_min_s"], "cli_process_wall_median_s": proc["wall_median_s"],
               "cli_process_cpu_s": proc["cpu_min_s"]}
        if have:
            s = run_scalesim(args.scalesim, M, N, K, R, df, args.repeat)
            row.update({"scalesim_cycles": s["cycles"], "scalesim_wall_s": s["wall_s"],
                        "scalesim_process_wall_s": s["process_wall_s"],
                        "same_cycles": ours == s["cycles"] + 1, "speedup": s["wall_s"] / wall,
                        "speedup_vs_process": s["process_wall_s"] / wall,
                        "scalesim_process_wall_min_s": s["process_wall_min_s"],
                        "cli_speedup_vs_scalesim_process": s["process_wall_min_s"] / proc["wall_min_s"]})
        elif (M, N, K) == (64, 64, 64):
            row["cli_speedup_vs_scalesim_published_process"] = SCALESIM_PUBLISHED_64_S[0] / proc["wall_min_s"]
        rows.append(row)
        print("SCALE-Sim", json.dumps(row), flush=True)
    res["scalesim"] = {"available": have, "note": "einarray reports folds*per_fold; SCALE-Sim prints that minus 1",
                       "gemms": rows}
    if have:
        sp = [r["speedup"] for r in rows]
        res["scalesim"]["all_same_cycles"] = all(r["same_cycles"] for r in rows)
        res["scalesim"]["min_speedup"] = min(sp)
        res["scalesim"]["geomean_speedup"] = float(__import__("math").prod(sp) ** (1 / len(sp)))
        sp2 = [r["speedup_vs_process"] for r in rows]
        res["scalesim"]["min_speedup_vs_process"] = min(sp2)
        sp3 = [r["cli_speedup_vs_scalesim_process"] for r in rows]
        res["scalesim"]["min_cli_speedup_vs_scalesim_process"] = min(sp3)
        res["scalesim"]["cli_faster_than_scalesim_process_everywhere"] = min(sp3) > 1.0
        res["scalesim"]["cli_comparison"] = "both whole processes, measured here"
    else:
        key = "cli_speedup_vs_scalesim_published_process"
        sp3 = [r[key] for r in rows if key in r]
        res["scalesim"]["min_" + key] = min(sp3)
        res["scalesim"]["cli_comparison"] = (
            "SCALE-Sim not installed: the einarray process on the 64^3 GEMMs against SCALE-Sim's published "
            f"{SCALESIM_PUBLISHED_64_S[0]}-{SCALESIM_PUBLISHED_64_S[1]} s per 64^3 run (the lower end); "
            "other sizes have no published figure")
    out = Path(args.out)
    write_atomic(out, json.dumps(res, indent=1) + "\n")  # makes the parents
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
