"""Side-by-side comparison of run configs, optionally swept over one rank."""

from __future__ import annotations

import io

from pathlib import Path
from typing import Any, Sequence

from einarray.flow import load_run, run
from einarray.outdir import check, output_dir
from einarray.report import dumps


def compare(configs: Sequence[str | Path], out_dir: str | Path, *,
            sweep: tuple[str, list[int]] | None = None, progress: bool = True, force: bool = False,
            command: str | None = None) -> list[dict[str, Any]]:
    """Run every config (at every sweep value) and write compare.md/json and plots into ``out_dir``.

    ``out_dir`` follows :mod:`einarray.outdir` (new, empty, or with ``force`` an earlier einarray
    output); it is checked before anything runs. ``command`` is recorded in its manifest.
    """
    check(out_dir, force=force)
    rows: list[dict[str, Any]] = []
    values: list[int | None] = list(sweep[1]) if sweep else [None]
    for cfg in configs:
        for v in values:
            ranks = {sweep[0]: v} if sweep and v is not None else None
            spec = load_run(cfg, ranks=ranks)
            res = run(spec, progress=progress)
            s = res["summary"]
            rows.append({"config": Path(cfg).stem, "value": v, "latency_s": s["latency_s"],
                         "energy_pj": res["energy_pj"]["total"], "edp": s["edp"],
                         "throughput_inf_per_s": s["throughput_inf_per_s"],
                         "dram_bytes": s["dram_bytes"], "utilization": s["utilization"],
                         "arch": res["arch"]["name"], "workload": res["workload"]})
    with output_dir(out_dir, kind="compare", force=force, command=command) as tmp:
        (tmp / "compare.json").write_text(dumps({"sweep": sweep[0] if sweep else None, "rows": rows}))
        (tmp / "compare.md").write_text(_markdown(rows, sweep))
        for name, data in _plots(rows, sweep).items():
            (tmp / name).write_bytes(data)
    return rows


def _markdown(rows: list[dict[str, Any]], sweep: tuple[str, list[int]] | None) -> str:
    units = sorted({u for r in rows for u in r["utilization"]})
    head = ["config"] + ([sweep[0]] if sweep else []) + ["latency (ms)", "energy (mJ)", "EDP (pJ*s)",
                                                       "DRAM (MB)"] + [f"util {u}" for u in units]
    lines = ["# Comparison", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = rows[0]["latency_s"] if rows else 1.0
    for r in rows:
        cells = [r["config"]] + ([str(r["value"])] if sweep else []) + [
            f"{r['latency_s'] * 1e3:.4g}", f"{r['energy_pj'] * 1e-9:.4g}", f"{r['edp']:.4g}",
            f"{r['dram_bytes'] / 1e6:.4g}"] + [f"{r['utilization'].get(u, 0):.3f}" for u in units]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Speed relative to the first row: " + ", ".join(
        f"{r['config']}{'@' + str(r['value']) if sweep else ''} {base / r['latency_s']:.3g}x" for r in rows), ""]
    return "\n".join(lines)


def _plots(rows: list[dict[str, Any]], sweep: tuple[str, list[int]] | None) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    metrics = [("latency_s", "latency (s)"), ("energy_pj", "energy (pJ)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    for ax, (key, label) in zip(axes[:2], metrics):
        if sweep:
            for c in configs:
                rs = [r for r in rows if r["config"] == c]
                ax.plot([r["value"] for r in rs], [r[key] for r in rs], "o-", label=c)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(sweep[0])
        else:
            ax.bar(configs, [r[key] for r in rows])
            ax.tick_params(axis="x", rotation=30)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    ax = axes[2]
    units = sorted({u for r in rows for u in r["utilization"]})
    if sweep:
        for c in configs:
            rs = [r for r in rows if r["config"] == c]
            for u in units:
                ax.plot([r["value"] for r in rs], [r["utilization"].get(u, 0) for r in rs], "o-",
                        label=f"{c} {u}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(sweep[0])
    else:
        width = 0.8 / max(1, len(units))
        for i, u in enumerate(units):
            ax.bar([j + i * width for j in range(len(configs))], [r["utilization"].get(u, 0) for r in rows],
                   width=width, label=u)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(configs))], configs, rotation=30)
    ax.set_ylabel("utilization")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    axes[0].legend(fontsize=7) if sweep else None
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out["compare.png"] = buf.getvalue()
    return out



