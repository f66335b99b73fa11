"""Render a run's result (``einarray.flow.run``) into a report directory.

Files: ``report.json`` (the simulator's stable keys aggregated over layers, plus per-layer
and per-Einsum data; byte-identical for the same config), ``report.md``, a self-contained
``report.html`` (plots embedded as base64 PNG), ``layers.csv``, and PNG plots: energy by
component, by layer and by memory level and tensor role, latency per layer by cause (unit
compute, buffer and DRAM stalls), utilization per Einsum and unit, a roofline (one roof per compute
unit, one point per fused group and unit) and traffic per memory level. Each plot is a
function returning a matplotlib Figure (``FIGURES``), so tests can inspect what is drawn. The files are written through :func:`einsum.outdir.output_dir`:
the target must be new, empty or (with ``force``) an earlier einarray report, and a failed or
interrupted run leaves no partial report.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from einsum.outdir import output_dir


def dumps(result: dict[str, Any]) -> str:
    """Deterministic JSON (sorted keys, no timestamps)."""
    return json.dumps(result, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(o: Any) -> Any:
    from fractions import Fraction

    if isinstance(o, Fraction):
        return float(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_report(result: dict[str, Any], out_dir: str | Path, *, plots: bool = True, force: bool = False,
                 command: str | None = None) -> Path:
    """Write the report files into ``out_dir`` (rules: :mod:`einsum.outdir`; ``force`` replaces
    an earlier einarray report there); ``command`` is recorded in the directory's manifest."""
    out = Path(out_dir)
    with output_dir(out, kind="run", force=force, command=command) as tmp:
        (tmp / "report.json").write_text(dumps(result), encoding="utf-8")
        write_layers_csv(result, tmp / "layers.csv")
        images: dict[str, bytes] = {}
        if plots:
            images = render_plots(result)
            for name, data in images.items():
                (tmp / name).write_bytes(data)
        (tmp / "report.md").write_text(render_markdown(result, list(images)), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(result, images), encoding="utf-8")
    return out


def write_layers_csv(result: dict[str, Any], path: Path) -> None:
    units = list(result["arch"]["units"])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["layer", "cascade", "repeat", "instances", "cycles", "latency_s", "energy_pj", "edp",
                    "dram_bytes", "macs", *[f"util_{u}" for u in units]])
        for l in result["layers"]:
            w.writerow([l["name"], l["cascade"], l["repeat"], l["instances"], l["cycles"],
                        f"{l['latency_s']:.9g}", f"{l['energy_pj']:.9g}", f"{l['edp']:.9g}",
                        f"{l['dram_bytes']:.9g}", l["macs"], *[f"{l['utilization'][u]:.6f}" for u in units]])


# -- text --------------------------------------------------------------------------------
def si(x: float, unit: str) -> str:
    """``x`` with an SI prefix and four significant digits: ``si(2.1e8, "B")`` is ``'210 MB'``."""
    if x == 0:
        return f"0 {unit}"
    for f, p in ((1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""), (1e3, "k"), (1e6, "M"),
                 (1e9, "G"), (1e12, "T"), (1e15, "P")):
        if abs(x) < f * 999.95 or p == "P":
            return f"{x / f:.4g} {p}{unit}".rstrip()
    raise AssertionError("unreachable")


def utilization_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Per unit: PE-cycles over PEs x all cycles (memory stalls included) and, when the
    result has it, over PEs x compute-only cycles (stalls excluded, as SCALE-Sim)."""
    return [(label, text) for label, _, _, text in _utilization_items(summary)]


def _utilization_items(summary: dict[str, Any]) -> list[tuple[str, str, float, str]]:
    comp = summary.get("utilization_compute") or {}
    rows = []
    for u, v in summary["utilization"].items():
        rows.append((f"utilization {u} (all cycles)", f"utilization_{u}", v, f"{v:.3f}"))
        if u in comp:
            rows.append((f"utilization {u} (compute cycles)", f"utilization_compute_{u}", comp[u],
                         f"{comp[u]:.3f}"))
    return rows


def summary_items(result: dict[str, Any]) -> list[tuple[str, str, Any, str]]:
    """The summary as (label, key, raw value, text) rows: the label and text for people,
    the key (which names the raw value's unit) and the raw value for csv and json."""
    s = result["summary"]
    rows: list[tuple[str, str, Any, str]] = (
        [("mapping", "mapping", s["binding"], s["binding"])] if s.get("binding") else [])
    e_j = s["energy_per_inference_pj"] * 1e-12
    rows += [
        ("latency", "latency_s", s["latency_s"], si(s["latency_s"], "s")),
        ("throughput", "throughput_inf_per_s", s["throughput_inf_per_s"],
         f"{s['throughput_inf_per_s']:.4g} inferences/s"),
        ("energy per inference", "energy_per_inference_j", e_j, si(e_j, "J")),
        ("average power", "average_power_w", s["average_power_w"], si(s["average_power_w"], "W")),
        ("DRAM traffic", "dram_bytes", s["dram_bytes"], si(s["dram_bytes"], "B")),
        ("EDP", "edp_pj_s", s["edp"], f"{s['edp']:.4g} pJ*s"),
        ("MACs", "macs", s["macs"], si(s["macs"], "MAC")),
    ]
    if "tops_per_w" in s:
        rows.append(("TOPS/W (achieved, 2 ops per MAC)", "tops_per_w", s["tops_per_w"], f"{s['tops_per_w']:.4g}"))
    if s.get("area_mm2"):
        rows += [("area", "area_mm2", s["area_mm2"], f"{s['area_mm2']:.4g} mm^2"),
                 ("TOPS/mm^2 (achieved, 2 ops per MAC)", "tops_per_mm2", s["tops_per_mm2"],
                  f"{s['tops_per_mm2']:.4g}")]
    return rows + _utilization_items(s)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (metric, value) rows, for report.md/html and the terminal."""
    return [(label, text) for label, _, _, text in summary_items(result)]


def layer_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The layers table (header, rows); a ``mapping`` column says where each layer's mapping
    came from (default, searched, given) when the result records it."""
    units = list(result["arch"]["units"])
    origin = any("mapping_origin" in l for l in result["layers"])
    comp = any("utilization_compute" in l for l in result["layers"])
    head = (["layer", "cascade"] + (["mapping"] if origin else [])
            + ["instances", "latency", "energy", "share of time"] + [f"util {u} (all cycles)" for u in units]
            + ([f"util {u} (compute cycles)" for u in units] if comp else []))
    tot = result["latency_s"] or 1.0
    rows = []
    for l in result["layers"]:
        rows.append([l["name"], l["cascade"]] + ([l.get("mapping_origin", "-")] if origin else [])
                    + [str(l["instances"]), si(l["latency_s"], "s"), si(l["energy_pj"] * 1e-12, "J"),
                       f"{l['latency_s'] / tot:.1%}"] + [f"{l['utilization'][u]:.3f}" for u in units]
                    + ([f"{l.get('utilization_compute', {}).get(u, 0.0):.3f}" for u in units] if comp else []))
    return head, rows


def causes_of(result: dict[str, Any]) -> list[str]:
    """The columns of the latency split: each unit, then buffer and DRAM stalls."""
    keys: list[str] = []
    for l in result["layers"]:
        for k in l.get("cycles_by_cause", {}):
            if k not in keys:
                keys.append(k)
    stalls = [k for k in ("buffer_stall", "dram_stall") if k in keys]
    return [k for k in keys if k not in stalls] + stalls


def cause_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Cycles by cause per layer (header, rows), or None if the layers lack the split."""
    keys = causes_of(result)
    if not keys:
        return None
    head = ["layer", "cycles"] + [k.replace("_", " ") for k in keys]
    rows = []
    for l in result["layers"]:
        c = l.get("cycles_by_cause", {})
        rows.append([l["name"], f"{l['cycles']:,}"] + [f"{c.get(k, 0):,}" for k in keys])
    return head, rows


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def render_markdown(result: dict[str, Any], images: list[str]) -> str:
    w = result.get("workload", {})
    lines = [f"# {result['title']}", ""]
    if result.get("description"):
        lines += [result["description"], ""]
    cores = result["arch"].get("cores", 1)
    lines += [f"Config `{Path(result['config']).name}` on arch `{result['arch']['name']}` "
              f"({result['arch']['clock_hz'] / 1e6:.0f} MHz"
              + (f", {cores} cores splitting each layer's batch x heads" if cores > 1 else "")
              + f"), batch {result['batch']}"
              + (f", model `{w['model']}`" if w.get("model") else "")
              + (f", attention `{w['attention']}`" if w.get("attention") else "") + ".", ""]
    lines += ["## Summary", "", "| metric | value |", "|---|---|"]
    lines += [_md_row([k, v]) for k, v in summary_rows(result)]
    head, rows = layer_rows(result)
    lines += ["", "## Layers", "", _md_row(head), "|" + "---|" * len(head)]
    lines += [_md_row(r) for r in rows]
    for key, title in (("top_einsums_by_time", "Top Einsums by time"),
                       ("top_einsums_by_energy", "Top Einsums by energy")):
        lines += ["", f"## {title}", "", "| layer | einsum | unit | cycles | energy | utilization |",
                  "|---|---|---|---|---|---|"]
        for e in result[key]:
            lines.append(f"| {e['layer']} | {e['einsum']} | {e['unit']} | {e['cycles']:,.0f} | "
                         f"{si(e['energy_pj'] * 1e-12, 'J')} | {e['utilization']:.3f} |")
    causes = cause_rows(result)
    if causes:
        head2, rows2 = causes
        lines += ["", "## Latency by cause", "",
                  "Each layer's cycles split into the time each unit sets (a pipeline stage lasts as "
                  "long as its slowest unit, which gets the stage's time) and memory stalls: waiting "
                  "for on-chip buffer bandwidth, and for DRAM (plus the last write-back). Each row "
                  "sums to the layer's cycles.", "", _md_row(head2), "|" + "---|" * len(head2)]
        lines += [_md_row(r) for r in rows2]
    lv = result["energy_pj"].get("levels")
    if lv:
        roles = [r for r in ("input", "output", "intermediate") if any(r in d for d in lv.values())]
        lines += ["", "## Memory energy by level and tensor", "",
                  "| level | " + " | ".join(roles) + " | total |", "|---|" + "---|" * (len(roles) + 1)]
        for name, d in lv.items():
            lines.append(_md_row([name] + [si(d.get(r, 0.0) * 1e-12, "J") for r in roles]
                                 + [si(sum(d.values()) * 1e-12, "J")]))
    lines += ["", "## Traffic per memory level", "", "| level | reads (words) | writes (words) | bytes |",
              "|---|---|---|---|"]
    for lvl, t in result["traffic"].items():
        lines.append(f"| {lvl} | {t['reads']:,} | {t['writes']:,} | {si(t['bytes'], 'B')} |")
    lines += ["", "## Energy by component", "", "| component | action | energy |", "|---|---|---|"]
    for comp, acts in result["energy_pj"]["components"].items():
        for a, v in sorted(acts.items()):
            lines.append(f"| {comp} | {a} | {si(v * 1e-12, 'J')} |")
    nests = [l for l in result["layers"] if l.get("loop_nest")]
    if nests:
        lines += ["", "## Mappings", "",
                  "Each layer's mapping as a loop nest per memory level (`einarray simulate --show-mapping`); "
                  "`report.json` holds each complete mapping, and `einarray run --mapping-from report.json` "
                  "reruns them."]
        for l in nests:
            lines += ["", "```", l["loop_nest"].rstrip("\n"), "```"]
    if images:
        lines += ["", "## Plots", ""] + [f"![{n}]({n})" for n in images]
    lines += ["", "Semantics: layers run one after another; each layer's figures come from the "
              "cycle-level simulator (`einarray simulate`) over `instances` = repeat x batch "
              "independent instances. Utilization is PE-cycles used over PEs x cycles: all cycles "
              "(memory stalls included) or, where shown, compute-only cycles (stalls excluded, as "
              "SCALE-Sim reports it).", ""]
    return "\n".join(lines)


def render_html(result: dict[str, Any], images: dict[str, bytes]) -> str:
    return html_page(result["title"], render_markdown(result, []), images)


def html_page(title: str, markdown: str, images: dict[str, bytes]) -> str:
    """A self-contained HTML page from the report's markdown (headings, paragraphs and
    tables) with the PNG images inlined as base64."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    table: list[list[str]] = []
    pre: list[str] | None = None
    for line in markdown.splitlines()[1:]:
        if line.startswith("```"):
            if pre is None:
                pre = []
            else:
                body.append(f"<pre>{html.escape(chr(10).join(pre))}</pre>")
                pre = None
            continue
        if pre is not None:
            pre.append(line)
            continue
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if all(set(c) <= set("-") for c in cells):
                continue
            table.append(cells)
            continue
        if table:
            body.append(_html_table(table))
            table = []
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip() and not line.startswith("!["):
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    if table:
        body.append(_html_table(table))
    for name, data in images.items():
        b64 = base64.b64encode(data).decode("ascii")
        body.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{b64}">'
                    f"<figcaption>{html.escape(name)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
            + html.escape(title) + f"</title><style>{style}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- plots -------------------------------------------------------------------------------
# Each plot is a function of the result returning a matplotlib Figure (no pyplot state);
# render_plots saves them as PNG.
def unit_colors(units: list[str]) -> dict[str, str]:
    """One distinct colour per compute unit (matplotlib's tab10 cycle)."""
    from matplotlib import colormaps

    tab = colormaps["tab10"].colors
    return {u: _hex(tab[i % len(tab)]) for i, u in enumerate(units)}


def _hex(rgb: Any) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb[:3])


def _figure(w: float, h: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig, fig.subplots()


def fig_energy_components(result: dict[str, Any]) -> Any:
    """Energy per component, stacked by action."""
    comps = result["energy_pj"]["components"]
    fig, ax = _figure(7, 4)
    names = list(comps)
    actions = sorted({a for acts in comps.values() for a in acts})
    bottom = [0.0] * len(names)
    for a in actions:
        vals = [comps[c].get(a, 0.0) * 1e-12 for c in names]
        ax.bar(names, vals, bottom=bottom, label=a)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("energy (J)")
    ax.set_title("energy by component and action")
    ax.legend(fontsize=7, ncol=2)
    return fig


def fig_energy_layers(result: dict[str, Any]) -> Any:
    layers = result["layers"]
    fig, ax = _figure(7, max(3, 0.35 * len(layers) + 1))
    ax.barh([l["name"] for l in layers][::-1], [l["energy_pj"] * 1e-12 for l in layers][::-1], color="#4c72b0")
    ax.set_xlabel("energy (J)")
    ax.set_title("energy by layer")
    return fig


STALL_COLORS = {"buffer_stall": "#b0b0b0", "dram_stall": "#8c2d04"}


def bar_labels(ax: Any, bars: Any, labels: list[str], *, horizontal: bool = False) -> None:
    """Write each bar's value at its end (``labels``, one per bar)."""
    ax.bar_label(bars, labels=labels, fontsize=6, padding=2)
    if horizontal:
        ax.set_xlim(0, ax.get_xlim()[1] * 1.15)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)


def fig_latency_layers(result: dict[str, Any]) -> Any:
    """Latency per layer, stacked by cause: the time each unit sets and the buffer and
    DRAM stalls (``cycles_by_cause``), labelled with the layer's latency."""
    from matplotlib.patches import Patch

    layers = result["layers"][::-1]
    keys = causes_of(result)
    colors = unit_colors(list(result["arch"]["units"])) | STALL_COLORS
    fig, ax = _figure(8, max(3, 0.35 * len(layers) + 1.2))
    top = max((l["latency_s"] for l in layers), default=0.0)
    scale, unit = next(((f, u) for f, u in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))
                        if top >= f), (1e-9, "ns"))
    clock = result["clock_hz"] * scale  # cycles / clock = time in ``unit``
    left = [0.0] * len(layers)
    bars = None
    for k in keys:
        vals = [l.get("cycles_by_cause", {}).get(k, 0) / clock for l in layers]
        bars = ax.barh([l["name"] for l in layers], vals, left=left, color=colors.get(k, "#888888"),
                       gid=f"cause:{k}")
        left = [a + b for a, b in zip(left, vals)]
    if bars is not None:
        bar_labels(ax, bars, [si(l["latency_s"], "s") for l in layers], horizontal=True)
    ax.set_xlabel(f"latency ({unit})")
    ax.set_title("latency by layer: unit compute vs memory stalls")
    ax.legend(handles=[Patch(facecolor=colors.get(k, "#888888"), label=k.replace("_", " "))
                       for k in keys], fontsize=7, loc="lower right")
    return fig


def fig_energy_levels(result: dict[str, Any]) -> Any:
    """Memory energy per level, stacked by tensor role, labelled with each level's total."""
    lv = result["energy_pj"].get("levels", {})
    names = list(lv)
    fig, ax = _figure(6, 3.8)
    bottom = [0.0] * len(names)
    bars = None
    for role, color in (("input", "#4c72b0"), ("output", "#dd8452"), ("intermediate", "#55a868")):
        vals = [lv[n].get(role, 0.0) * 1e-12 for n in names]
        if any(vals):
            bars = ax.bar(names, vals, bottom=bottom, color=color, label=role, gid=f"role:{role}")
            bottom = [a + b for a, b in zip(bottom, vals)]
    if bars is not None:
        bar_labels(ax, bars, [si(b, "J") for b in bottom])
    ax.set_ylabel("energy (J)")
    ax.set_title("memory energy by level and tensor role")
    ax.legend(fontsize=7)
    return fig


def fig_utilization(result: dict[str, Any]) -> Any:
    """Utilization of the Einsums that take the most time, coloured by unit."""
    from matplotlib.patches import Patch

    es = sorted(result["einsums"], key=lambda e: -e["cycles"])[:25]
    units = list(result["arch"]["units"])
    colors = unit_colors(units)
    fig, ax = _figure(8, max(3, 0.3 * len(es) + 1))
    ax.barh([f"{e['layer']}:{e['einsum']}" for e in es][::-1], [e["utilization"] for e in es][::-1],
            color=[colors.get(e["unit"], "#888888") for e in es][::-1])
    ax.set_xlim(0, 1)
    ax.set_xlabel("utilization (PE-cycles / PEs x the Einsum's cycles)")
    ax.set_title("utilization of the longest Einsums")
    ax.legend(handles=[Patch(facecolor=colors[u], label=u) for u in units], fontsize=7)
    return fig


def roofline_points(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The roofline's points: one per fused group and unit it computes on.

    ``ops`` are the actions the group's Einsums ran on the unit, ``ops_per_s`` those over
    the group's time, ``intensity`` those per DRAM byte the simulator counted while the
    group ran (None: no DRAM traffic), ``roof`` the unit's bound there: min(peak ops/s of
    the unit, intensity x DRAM bandwidth). Cycles, ops and bytes all cover every instance.
    """
    arch = result["arch"]
    bw = arch["dram_bytes_per_s"]
    out = []
    for g in result["groups"]:
        if g["cycles"] <= 0:
            continue
        seconds = g["cycles"] / result["clock_hz"]
        for u, ops in sorted(g["ops_by_unit"].items()):
            if ops <= 0:
                continue
            x = ops / g["dram_bytes"] if g["dram_bytes"] else None
            peak = arch["peak_ops_per_s"][u]
            out.append({"label": f"{g['layer']}/{g['group']}", "unit": u, "ops": ops, "intensity": x,
                        "ops_per_s": ops / seconds, "roof": min(peak, x * bw) if x else peak})
    return out


def fig_roofline(result: dict[str, Any]) -> Any:
    """One roof per compute unit (its peak ops/s, the DRAM bandwidth slope) and one labelled
    point per fused group and unit (:func:`roofline_points`)."""
    import numpy as np

    arch = result["arch"]
    bw = arch["dram_bytes_per_s"]
    units = list(arch["units"])
    colors = unit_colors(units)
    pts = roofline_points(result)
    ridges = [arch["peak_ops_per_s"][u] / bw for u in units]
    finite = [p["intensity"] for p in pts if p["intensity"]]
    lo = min(finite + ridges) / 8
    hi = max(finite + ridges) * 8
    fig, ax = _figure(10, 6.5)
    grid = np.logspace(np.log10(lo), np.log10(hi), 200)
    for i, u in enumerate(units):
        peak = arch["peak_ops_per_s"][u]
        ax.plot(grid, np.minimum(peak, grid * bw), ("-", "--", ":", "-.")[i % 4], color=colors[u], lw=1.5,
                gid=f"roof:{u}",
                label=f"{u} roof: {si(peak, 'ops/s')}, DRAM {si(bw, 'B/s')}")
        mine = [p for p in pts if p["unit"] == u]
        xs = [p["intensity"] or hi for p in mine]
        ys = [p["ops_per_s"] for p in mine]
        ax.scatter(xs, ys, s=18, color=colors[u], gid=f"points:{u}", label=f"groups on {u}", zorder=3)
        same: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label
        for p, x, y in zip(mine, xs, ys):
            same.setdefault((float(f"{x:.4g}"), float(f"{y:.4g}")), []).append(p["label"])
        for (x, y), labels in same.items():
            ax.annotate(", ".join(labels), (x, y), xytext=(3, 2), textcoords="offset points", fontsize=5,
                        color="#333333")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi * 1.5)
    ax.set_xlabel("operational intensity (ops / DRAM byte); no DRAM traffic: right edge")
    ax.set_ylabel("achieved ops/s")
    ax.set_title("roofline: each fused group (layer/group) on each unit it uses")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def fig_traffic(result: dict[str, Any]) -> Any:
    tr = result["traffic"]
    fig, ax = _figure(6, 3.8)
    lv = list(tr)
    ax.bar([f"{l} read" for l in lv], [tr[l]["read_bytes"] for l in lv], color="#4c72b0")
    ax.bar([f"{l} write" for l in lv], [tr[l]["write_bytes"] for l in lv], color="#dd8452")
    ax.set_yscale("log")
    ax.set_ylabel("bytes")
    ax.set_title("traffic per memory level")
    ax.tick_params(axis="x", rotation=30)
    return fig


FIGURES = {"latency-layers.png": fig_latency_layers, "energy-levels.png": fig_energy_levels,
           "energy-components.png": fig_energy_components, "energy-layers.png": fig_energy_layers,
           "utilization.png": fig_utilization, "roofline.png": fig_roofline, "traffic.png": fig_traffic}


def png(fig: Any) -> bytes:
    """A figure as deterministic PNG bytes (no software or date metadata)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def render_plots(result: dict[str, Any]) -> dict[str, bytes]:
    return {name: png(make(result)) for name, make in FIGURES.items()}
