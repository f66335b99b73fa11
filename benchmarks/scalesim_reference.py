"""Regenerate ``tests/expected/scalesim/access_counts.json`` from SCALE-Sim itself.

SCALE-Sim is not a dependency of einarray (it pins ``numpy<2``): give the Python of a venv
that has it::

    python3 -m venv /tmp/ssv && /tmp/ssv/bin/pip install scalesim "numpy<2"
    python benchmarks/scalesim_reference.py --scalesim-python /tmp/ssv/bin/python

Each case is one-layer SCALE-Sim run (``python -m scalesim.scale ... -s N``) with SRAMs of
1024 kB each, so every operand fits and its DRAM reads are each element once, and
``InterfaceBandwidth: CALC``. The JSON keeps SCALE-Sim's own column names from
``DETAILED_ACCESS_REPORT.csv`` and the ``Total Cycles`` of ``COMPUTE_REPORT.csv``;
``tests/sim/test_scalesim_counts.py`` holds einarray to them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim import SCALESIM_CFG  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests/expected/scalesim/access_counts.json"
GEMMS = [(64, 64, 64), (50, 70, 30), (17, 33, 65), (100, 20, 300)]  # M, N, K
CONVS = [(16, 16, 3, 3, 8, 16, 1), (28, 28, 5, 5, 4, 8, 2), (10, 10, 1, 1, 32, 24, 1)]  # H W R S C N stride
ARRAYS = [(16, 16), (8, 32)]
COLUMNS = ("SRAM IFMAP Reads", "SRAM Filter Reads", "SRAM OFMAP Writes", "DRAM IFMAP Reads",
           "DRAM Filter Reads", "DRAM OFMAP Writes")



def _row(text: str) -> dict[str, str]:
    head, vals = text.splitlines()[:2]
    return dict(zip((h.strip() for h in head.split(",")), (v.strip() for v in vals.split(","))))


def run_case(python: str, kind: str, shape: tuple[int, ...], R: int, C: int, df: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "c.cfg").write_text(SCALESIM_CFG.format(R=R, C=C, df=df, ifmap_kb=1024, filter_kb=1024, ofmap_kb=1024))
        if kind == "gemm":
            (d / "t.csv").write_text("Layer, M, N, K,\nL, %d, %d, %d,\n" % shape)
        else:
            (d / "t.csv").write_text("Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                                     "Channels, Num Filter, Strides,\nL, %d, %d, %d, %d, %d, %d, %d,\n" % shape)
        (d / "l.csv").write_text("Layer, x, y,\nL, 1, 1,\n")  # read by SCALE-Sim 3, unused without custom layouts
        subprocess.run([python, "-m", "scalesim.scale", "-c", "c.cfg", "-t", "t.csv", "-l", "l.csv",
                        "-p", "o", "-i", kind, "-s", "N"], cwd=d, check=True, capture_output=True)
        acc = _row(next((d / "o").glob("*/DETAILED_ACCESS_REPORT.csv")).read_text())
        comp = _row(next((d / "o").glob("*/COMPUTE_REPORT.csv")).read_text())
    return {"kind": kind, "shape": list(shape), "array": [R, C], "dataflow": df,
            **{k: int(float(acc[k])) for k in COLUMNS}, "cycles": int(comp["Total Cycles"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scalesim-python", required=True, help="a Python with scalesim installed")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    runs = [run_case(args.scalesim_python, kind, shape, R, C, df)
            for kind, shapes in (("gemm", GEMMS), ("conv", CONVS)) for shape in shapes
            for R, C in ARRAYS for df in ("os", "ws", "is")]
    doc = {"source": "SCALE-Sim 3.0.0 (pip install scalesim, numpy<2), run by benchmarks/scalesim_reference.py: "
                     "DETAILED_ACCESS_REPORT.csv and COMPUTE_REPORT.csv ('Total Cycles') of one-layer runs; "
                     "SRAMs of 1024 kB each (everything fits: DRAM reads are each operand once), "
                     "InterfaceBandwidth CALC",
           "gemm_topology": "Layer, M, N, K",
           "conv_topology": "Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                            "Num Filter, Strides",
           "runs": runs}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}: {len(runs)} runs")


if __name__ == "__main__":
    main()
