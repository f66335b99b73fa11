"""Benchmark: the generic NumPy interpreter against hand-written NumPy.

Goals: the 1-pass (online softmax) cascade at M=P=4096, E=F=64 within 2x of a
hand-written NumPy implementation of the same blocked algorithm, and the 3-pass cascade
within 1.5x of direct NumPy softmax attention. Writes JSON (default
benchmarks/results/interp.json). Run: ``python benchmarks/interp_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from einsum.interp import evaluate
from einsum.load import load_cascade


def direct_attention(Q, K, V, scale):
    S = Q @ K.T * scale
    S -= S.max(axis=1, keepdims=True)
    np.exp(S, out=S)
    S /= S.sum(axis=1, keepdims=True)
    return S @ V


def online_attention(Q, K, V, scale, P0):
    """FlashAttention-style online softmax over chunks of P0 keys (same algorithm as the cascade)."""
    M, P = Q.shape[0], K.shape[0]
    rm = np.full(M, -np.inf)
    rd = np.zeros(M)
    rnv = np.zeros((M, V.shape[1]))
    for j in range(0, P, P0):
        s = Q @ K[j:j + P0].T * scale
        new = np.maximum(rm, s.max(axis=1))
        sln = np.exp(s - new[:, None])
        prm = np.exp(rm - new)
        rd = prm * rd + sln.sum(axis=1)
        rnv = prm[:, None] * rnv + sln @ V[j:j + P0]
        rm = new
    return rnv / rd[:, None]


def best_of(fn, reps):
    best = float("inf")
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="M = P (default 4096)")
    ap.add_argument("--d", type=int, default=64, help="E = F (default 64)")
    ap.add_argument("--p0", type=int, default=256, help="chunk size P0 of the 1-pass cascade")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "interp.json"))
    args = ap.parse_args()
    n, d = args.n, args.d
    rng = np.random.default_rng(0)
    x = {"Q": rng.standard_normal((n, d)), "K": rng.standard_normal((n, d)), "V": rng.standard_normal((n, d))}
    scale = 1 / np.sqrt(d)
    res = {"machine": {"python": platform.python_version(), "numpy": np.__version__,
                       "cpus": os.cpu_count()}, "shape": {"M": n, "P": n, "E": d, "F": d}}

    c3 = load_cascade("softmax-3pass", ranks={"M": n, "P": n, "E": d, "F": d}, params={"scale": scale})
    t_c3, o_c3 = best_of(lambda: evaluate(c3, x)["AV"], args.reps)
    t_d, o_d = best_of(lambda: direct_attention(x["Q"], x["K"], x["V"], scale), args.reps)
    res["3pass"] = {"cascade_s": t_c3, "numpy_s": t_d, "ratio": t_c3 / t_d, "target": 1.5,
                    "max_abs_err": float(np.abs(o_c3 - o_d).max())}

    c1 = load_cascade("softmax-1pass", ranks={"M": n, "P": n, "E": d, "F": d, "P0": args.p0},
                      params={"scale": scale})
    t_c1, o_c1 = best_of(lambda: evaluate(c1, x)["AV"], args.reps)
    t_o, o_o = best_of(lambda: online_attention(x["Q"], x["K"], x["V"], scale, args.p0), args.reps)
    res["1pass"] = {"P0": args.p0, "cascade_s": t_c1, "numpy_s": t_o, "ratio": t_c1 / t_o, "target": 2.0,
                    "max_abs_err": float(np.abs(o_c1 - o_d).max())}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmp, out)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
