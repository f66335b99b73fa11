"""Side-by-side comparison of run configs, optionally swept over one rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from einarray.flow import load_run, run
from einsum.outdir import check, output_dir
from einarray.progress import Bar
from einarray.report import bar_labels, dumps, html_page, png


def compare(configs: Sequence[str | Path], out_dir: str | Path, *,
            sweep: tuple[str, list[int]] | None = None, progress: bool = True, force: bool = False,
            command: str | None = None) -> list[dict[str, Any]]:
    """Run every config (at every sweep value) and write compare.md, a self-contained
    compare.html, compare.json and compare.png into ``out_dir``; one row per run, figures per
    inference (:func:`row_of`).

    ``out_dir`` follows :mod:`einsum.outdir` (new, empty, or with ``force`` an earlier einarray
    output); it is checked before anything runs. ``command`` is recorded in its manifest.
    """
    check(out_dir, force=force, kind="compare")
    rows: list[dict[str, Any]] = []
    values: list[int | None] = list(sweep[1]) if sweep else [None]
    todo = [(cfg, v) for cfg in configs for v in values]
    with Bar(progress, "comparing", len(todo)) as bar:
        for i, (cfg, v) in enumerate(todo, start=1):
            bar.describe(f"run {i}/{len(todo)}: {Path(cfg).stem}" + (f" at {sweep[0]}={v}" if sweep else ""))
            ranks = {sweep[0]: v} if sweep and v is not None else None
            res = run(load_run(cfg, ranks=ranks), progress=bar.progress or False)
            rows.append(row_of(cfg, v, res))
            bar.advance()
    images = _plots(rows, sweep)
    md = _markdown(rows, sweep, list(images))
    with output_dir(out_dir, kind="compare", force=force, command=command) as tmp:
        (tmp / "compare.json").write_text(dumps({"sweep": sweep[0] if sweep else None, "rows": rows}))
        (tmp / "compare.md").write_text(md)
        (tmp / "compare.html").write_text(html_page("Comparison", md, images), encoding="utf-8")
        for name, data in images.items():
            (tmp / name).write_bytes(data)
    return rows


# The table's columns: (row key, header, scale from the row's unit); the plot uses the same.
COLUMNS = (("latency_s", "latency (ms)", 1e3),
           ("throughput_inf_per_s", "throughput (inferences/s)", 1.0),
           ("energy_per_inference_pj", "energy per inference (mJ)", 1e-9),
           ("edp", "EDP (pJ*s)", 1.0),
           ("dram_bytes_per_inference", "DRAM per inference (MB)", 1e-6))


def row_of(config: str | Path, value: int | None, res: dict[str, Any]) -> dict[str, Any]:
    """One comparison row from a run result: per-inference figures, as ``einarray run`` prints."""
    s = res["summary"]
    return {"config": Path(config).stem, "value": value, "batch": res["batch"], "latency_s": s["latency_s"],
            "throughput_inf_per_s": s["throughput_inf_per_s"],
            "energy_per_inference_pj": s["energy_per_inference_pj"], "edp": s["edp"],
            "dram_bytes_per_inference": s["dram_bytes"] / res["batch"],
            "utilization": dict(s["utilization"]),
            **({"utilization_compute": dict(s["utilization_compute"])} if "utilization_compute" in s else {}),
            "arch": res["arch"]["name"], "workload": res["workload"]}


def _units(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({u for r in rows for u in r["utilization"]})


def table(rows: list[dict[str, Any]], sweep: tuple[str, list[int]] | None) -> tuple[list[str], list[list[str]]]:
    """The comparison as (header, rows of cells), for compare.md/html and the terminal."""
    units = _units(rows)
    comp = any("utilization_compute" in r for r in rows)
    head = (["config"] + ([sweep[0]] if sweep else []) + [h for _, h, _ in COLUMNS]
            + [f"util {u} (all cycles)" for u in units]
            + ([f"util {u} (compute cycles)" for u in units] if comp else []))
    out = []
    for r in rows:
        cells = [r["config"]] + ([str(r["value"])] if sweep else [])
        cells += [f"{r[k] * f:.4g}" for k, _, f in COLUMNS]
        cells += [f"{r['utilization'].get(u, 0.0):.3f}" for u in units]
        if comp:
            cells += [f"{r.get('utilization_compute', {}).get(u, 0.0):.3f}" for u in units]
        out.append(cells)
    return head, out


def _label(r: dict[str, Any], sweep: tuple[str, list[int]] | None) -> str:
    return f"{r['config']}@{r['value']}" if sweep else r["config"]


def _markdown(rows: list[dict[str, Any]], sweep: tuple[str, list[int]] | None, images: list[str]) -> str:
    head, cells = table(rows, sweep)
    lines = ["# Comparison", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    base = rows[0]["latency_s"] if rows else 1.0
    lines += ["", "Per inference (a run of batch B is divided by B); utilization is PE-cycles over PEs x "
              "cycles (all cycles, memory stalls included; compute cycles, stalls excluded).", "",
              "Speed relative to the first row: " + ", ".join(
                  f"{_label(r, sweep)} {base / r['latency_s']:.3g}x" for r in rows), ""]
    if images:
        lines += ["## Plots", ""] + [f"![{n}]({n})" for n in images] + [""]
    return "\n".join(lines)


def fig_compare(rows: list[dict[str, Any]], sweep: tuple[str, list[int]] | None) -> Any:
    """Latency, throughput, energy per inference and utilization, in the table's units."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 4)
    configs = list(dict.fromkeys(r["config"] for r in rows))
    labels = [_label(r, sweep) for r in rows]
    for ax, (key, head, f) in zip(axes[:3], COLUMNS[:3]):
        if sweep:
            for c in configs:
                rs = [r for r in rows if r["config"] == c]
                xs, ys = [r["value"] for r in rs], [r[key] * f for r in rs]
                ax.plot(xs, ys, "o-", label=c)
                for x, y in zip(xs, ys):
                    ax.annotate(f"{y:.3g}", (x, y), xytext=(0, 4), textcoords="offset points",
                                fontsize=6, ha="center")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(sweep[0])
            ax.legend(fontsize=7)
        else:
            bars = ax.bar(labels, [r[key] * f for r in rows], gid=f"bars:{key}")
            bar_labels(ax, bars, [f"{r[key] * f:.3g}" for r in rows])
            ax.tick_params(axis="x", rotation=30)
        ax.set_ylabel(head)
        ax.grid(True, alpha=0.3)
    ax = axes[3]
    units = _units(rows)
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
            vals = [r["utilization"].get(u, 0) for r in rows]
            bars = ax.bar([j + i * width for j in range(len(rows))], vals, width=width, label=u,
                          gid=f"bars:util:{u}")
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=6, padding=2)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], labels, rotation=30)
    ax.set_ylabel("utilization (all cycles)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    return fig


def _plots(rows: list[dict[str, Any]], sweep: tuple[str, list[int]] | None) -> dict[str, bytes]:
    return {"compare.png": png(fig_compare(rows, sweep))}
