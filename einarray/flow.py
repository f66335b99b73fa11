"""The whole flow: one YAML config -> per-layer simulations -> an aggregated result.

A run config has the sections of a ``simulate`` config (``einsum`` or ``workload``,
``arch``, ``mapping``) plus optional ``include``, ``mappings`` and ``report``::

    include: [../arch/my-asic.yaml]       # merged first; this file's sections win
    workload:
      model: vit-base                     # a models/ preset (whole model), or
      attention: {variant: halo, block: 8, halo: 3}   # swap the attention core
      moe: {variant: moe-topk, gating: m3vit}         # MoE presets: top-k dispatch (models.moe)
      batch: 1
      grid: [64, 64]                      # patch grid (default: from the token count)
      ranks: {T: 4096}                    # rank overrides for every layer that has them
      layers: {patch-embed: {M: 4096}}    # rank overrides for one layer
    arch: fusemax                         # shipped name, path, or inline section
    mappings: {attention.softmax-1pass: {...}}   # per-layer mapping sections (optional)
    report: {title: ..., top: 8}

``workload: {onnx: model.onnx}``, ``{hf: config.json, tokens: N}`` or ``{topology: layers.csv}``
imports a model instead of a preset (:mod:`models.importers`).
``workload: {cascade: NAME, ranks: {...}}`` or ``einsum:`` runs a single cascade as one
layer (with ``mapping:``). Layers run one after another; each is simulated with
:func:`sim.results.simulate` (``repeat x batch`` instances), and the totals are sums.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from einsum.errors import ConfigError, format_ypath
from einsum.yamlsrc import Source, YPath, load as load_yaml
from mapping.arch import Arch, ComputeUnit
from mapping.config import config_from_sections, load_section
from mapping.spec import Config
from models import load_model
from models.attention import VARIANTS, check_grid, infer_grid, split_attention
from models.importers import IMPORT_KEYS, import_workload

RUN_KEYS = ("description", "include", "einsum", "workload", "arch", "mapping", "mappings", "report", "search")
MODEL_KEYS = ("model", "attention", "moe", "batch", "grid", "ranks", "layers", "onnx", "onnx_skip_unknown",
              "hf", "tokens", "topology")
REPORT_KEYS = ("title", "top")
SECTIONS = ("einsum", "workload", "arch", "mapping", "mappings", "report", "search")


@dataclass(frozen=True)
class ReportOptions:
    title: str
    top: int = 8


@dataclass(frozen=True)
class LayerSpec:
    name: str
    cascade: str
    repeat: int  # instances per input
    config: Config  # config.mapping_origin says where its mapping came from
    default_choice: Mapping[str, Any] | None = None  # which derived default won (einarray.default_mapping)


@dataclass(frozen=True)
class RunSpec:
    name: str
    source: str
    description: str
    arch: Arch
    layers: tuple[LayerSpec, ...]
    batch: int
    report: ReportOptions
    workload: Mapping[str, Any] = field(default_factory=dict)
    search: tuple[Any, Source, YPath] | None = None  # a `search:` section: map every layer by search


Sections = dict[str, tuple[Any, Source, YPath]]


def _load_tree(path: Path, stack: tuple[Path, ...]) -> tuple[Sections, Source, dict]:
    data, src = load_yaml(path)
    if not isinstance(data, dict):
        raise src.error((), "expected a mapping with workload (or einsum), arch and mapping sections")
    for k in data:
        if k not in RUN_KEYS:
            raise src.error((str(k),), f"unknown section {k!r} (allowed: {', '.join(RUN_KEYS)})")
    merged: Sections = {}
    inc = data.get("include", [])
    if isinstance(inc, str):
        inc = [inc]
    if not isinstance(inc, list) or not all(isinstance(x, str) for x in inc):
        raise src.error(("include",), "expected a path or a list of paths (relative to this file)")
    for i, rel in enumerate(inc):
        ip: YPath = ("include", i) if isinstance(data.get("include"), list) else ("include",)
        p = path.parent / rel
        if not p.is_file():
            raise src.error(ip, f"included file {rel!r} not found (looked for {p})")
        rp = p.resolve()
        if rp in stack:
            chain = " -> ".join(q.name for q in (*stack[stack.index(rp):], rp))
            raise src.error(ip, f"include cycle: {chain}")
        sub, _, _ = _load_tree(p, stack + (rp,))
        merged.update(sub)
    for k in SECTIONS:
        if k in ("mappings", "report", "search"):
            if k in data:
                merged[k] = (copy.deepcopy(data[k]), src, (k,))
            continue
        s = load_section(data, src, k, path.parent)
        if s is not None:
            merged[k] = s
            if k in ("einsum", "workload"):  # one workload: the nearer file replaces the other kind
                merged.pop("workload" if k == "einsum" else "einsum", None)
    return merged, src, data


def load_run(path: str | Path, *, ranks: Mapping[str, int] | None = None,
             sets: list[str] | None = None) -> RunSpec:
    """Load and validate a run config (with includes) into per-layer simulation configs."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config file not found", str(path))
    sections, src, data = _load_tree(p, (p.resolve(),))
    return _from_sections(p, sections, src, data, ranks, sets)


def load_run_data(data: Mapping[str, Any], name: str, *, base_dir: str | Path = ".",
                  ranks: Mapping[str, int] | None = None, sets: list[str] | None = None) -> RunSpec:
    """A run config given as data (studies, sweeps); ``name`` stands for the file in errors."""
    src = Source(name)
    if not isinstance(data, Mapping):
        raise src.error((), "expected a mapping with workload (or einsum), arch and mapping sections")
    for k in data:
        if k not in RUN_KEYS or k == "include":
            raise src.error((str(k),), f"unknown section {k!r} (allowed: {', '.join(RUN_KEYS[1:])})")
    base = Path(base_dir)
    sections: Sections = {}
    for k in SECTIONS:
        if k in ("mappings", "report", "search"):
            if k in data:
                sections[k] = (copy.deepcopy(data[k]), src, (k,))
            continue
        sec = load_section(dict(data), src, k, base)
        if sec is not None:
            sections[k] = sec
    return _from_sections(base / f"{name}.yaml", sections, src, dict(data), ranks, sets)


def _from_sections(p: Path, sections: Sections, src: Source, data: Mapping[str, Any],
                   ranks: Mapping[str, int] | None, sets: list[str] | None) -> RunSpec:
    rep = _report_options(sections, p)
    desc = " ".join(str(data.get("description", "")).split())
    wl = sections.get("workload")
    if wl is not None and isinstance(wl[0], dict) and any(k in wl[0] for k in ("model",) + IMPORT_KEYS):
        return _model_run(p, sections, src, rep, desc, ranks or {}, sets or [])
    if "mappings" in sections:
        m, msrc, mp = sections["mappings"]
        raise msrc.error(mp, "'mappings' (per layer) is for model workloads; use 'mapping:' here")
    rest = {k: v for k, v in sections.items() if k in ("einsum", "workload", "arch", "mapping")}
    cfg = config_from_sections(rest, src, p.parent, ranks=ranks, sets=sets, source=str(p))
    name = cfg.cascade.name
    layer = LayerSpec(name=name, cascade=name, repeat=cfg.instances, config=cfg)
    return RunSpec(name=p.stem, source=str(p), description=desc, arch=cfg.arch, layers=(layer,),
                   batch=1, report=rep, workload={"cascade": name}, search=_search_section(sections, False))


def _report_options(sections: Sections, p: Path) -> ReportOptions:
    if "report" not in sections:
        return ReportOptions(title=p.stem)
    r, rsrc, rp = sections["report"]
    if not isinstance(r, dict):
        raise rsrc.error(rp, "expected a mapping like {title: ..., top: 8}")
    for k in r:
        if k not in REPORT_KEYS:
            raise rsrc.error(rp + (str(k),), f"unknown key {k!r} (allowed: {', '.join(REPORT_KEYS)})")
    title = r.get("title", p.stem)
    top = r.get("top", 8)
    if not isinstance(title, str):
        raise rsrc.error(rp + ("title",), "expected a string")
    if isinstance(top, bool) or not isinstance(top, int) or top <= 0:
        raise rsrc.error(rp + ("top",), f"expected a positive integer, got {top!r}")
    return ReportOptions(title=title, top=top)


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _model_run(p: Path, sections: Sections, src: Source, rep: ReportOptions, desc: str,
               cli_ranks: Mapping[str, int], sets: list[str]) -> RunSpec:
    # --set workload.KEY applies to the model workload (batch, ranks, layers, ...); the other
    # sets (arch.*, ...) reach every layer's own sections below
    wsets = [s for s in sets if s.split("=", 1)[0].split(".", 1)[0] == "workload"]
    sets = [s for s in sets if s not in wsets]
    if wsets:
        from mapping.config import apply_sets

        sections = dict(sections)
        sections["workload"] = (copy.deepcopy(sections["workload"][0]),) + tuple(sections["workload"][1:])
        apply_sets(sections, wsets)
    w, wsrc, wp = sections["workload"]
    for k in w:
        if k not in MODEL_KEYS:
            raise wsrc.error(wp + (str(k),), f"unknown key {k!r} (allowed: {', '.join(MODEL_KEYS)})")
    if "mapping" in sections:
        m, msrc, mp = sections["mapping"]
        raise msrc.error(mp, "a model workload takes per-layer 'mappings: {LAYER: {...}}', not 'mapping:'")
    imported = import_workload(w, wsrc, wp, p.parent, cli_ranks)  # an ONNX graph, HF config or topology
    if imported is not None:
        model, w = imported
        bound = model.get("summary", {}).get("symbolic_dims", {})  # --rank seq=N bound a graph dimension
        cli_ranks = {r: v for r, v in cli_ranks.items() if r not in bound}
    elif not isinstance(w["model"], str):
        raise wsrc.error(wp + ("model",), "expected the name or path of a models/ preset")
    else:
        mref = w["model"]
        cand = p.parent / mref
        try:
            model = load_model(cand if cand.is_file() else mref)
        except ConfigError as exc:
            if exc.file in (None, mref, str(mref)):
                raise wsrc.error(wp + ("model",), exc.message) from None
            raise
    batch = w.get("batch", model["batch"])
    if not _pos_int(batch):
        raise wsrc.error(wp + ("batch",), f"batch must be a positive integer, got {batch!r}")
    from einsum.load import load_cascade

    layer_ranks = {l["name"]: set(load_cascade(l["cascade"]).ranks) for l in model["layers"]}
    all_ranks = ", ".join(sorted(set().union(*layer_ranks.values())))
    gl_ranks = dict(w.get("ranks", {}) or {})
    for r, v in gl_ranks.items():
        if not _pos_int(v):
            raise wsrc.error(wp + ("ranks", str(r)), f"a rank size must be a positive integer, got {v!r}")
        if not any(r in k for k in layer_ranks.values()):
            raise wsrc.error(wp + ("ranks", str(r)), f"no layer of model {model['name']} has a rank "
                             f"{r!r} (ranks: {all_ranks})")
    for r, v in cli_ranks.items():
        if not any(r in k for k in layer_ranks.values()):
            raise ConfigError(f"no layer of model {model['name']} has a rank {r!r} (ranks: {all_ranks})",
                              "command line", None, (f"--rank {r}={v}",))
    gl_ranks.update(cli_ranks)
    per_layer = w.get("layers", {}) or {}
    names = [l["name"] for l in model["layers"]]
    if not isinstance(per_layer, dict):
        raise wsrc.error(wp + ("layers",), "expected {LAYER: {RANK: size}}")
    for ln, rr in per_layer.items():
        if ln not in names:
            raise wsrc.error(wp + ("layers", str(ln)), f"model {model['name']} has no layer {ln!r} "
                             f"(layers: {', '.join(names)})")
        if not isinstance(rr, dict) or not all(_pos_int(v) for v in rr.values()):
            raise wsrc.error(wp + ("layers", str(ln)), "expected {RANK: positive size}")
        for r in rr:
            if r not in layer_ranks[ln]:
                raise wsrc.error(wp + ("layers", str(ln), str(r)), f"layer {ln} has no rank {r!r} "
                                 f"(ranks: {', '.join(sorted(layer_ranks[ln]))})")
    # attention variant
    att = w.get("attention")
    variant, options = None, {}
    if isinstance(att, str):
        variant = att
    elif isinstance(att, dict):
        options = {k: v for k, v in att.items() if k != "variant"}
        variant = att.get("variant")
        if not isinstance(variant, str):
            raise wsrc.error(wp + ("attention",), "expected {variant: NAME, ...options}")
    elif att is not None:
        raise wsrc.error(wp + ("attention",), "expected a variant name or {variant: NAME, ...}")
    if variant is not None and variant not in VARIANTS:
        raise wsrc.error(wp + ("attention",), f"unknown attention variant {variant!r} "
                         f"(variants: {', '.join(VARIANTS)})")
    moe = None  # MoE variant (models.moe): the preset's moe layers computed another way
    if w.get("moe") is not None:
        from models.moe import parse_moe

        try:
            moe = parse_moe(w["moe"])
        except ConfigError as exc:
            raise wsrc.error(wp + ("moe",) + exc.ypath, exc.message) from None
        if not any(l["cascade"] == "moe" for l in model["layers"]):
            raise wsrc.error(wp + ("moe",), f"model {model['name']} has no moe layer to swap")
    grid = w.get("grid")
    if grid is not None and (not isinstance(grid, list) or len(grid) != 2 or not all(_pos_int(g) for g in grid)):
        raise wsrc.error(wp + ("grid",), "expected [GY, GX], two positive integers")

    layers_in: list[dict[str, Any]] = []
    for lay in model["layers"]:
        known = layer_ranks[lay["name"]]
        ranks = dict(lay["ranks"])
        ranks.update({r: v for r, v in gl_ranks.items() if r in known})
        ranks.update(per_layer.get(lay["name"], {}))
        lay = {**lay, "ranks": ranks}
        if moe is not None and lay["cascade"] == "moe":
            from models.moe import swap_moe

            lay = swap_moe(lay, *moe)
        if lay["cascade"] == "mha" and grid:
            try:
                check_grid(ranks.get("T", load_cascade("mha").ranks["T"].size), tuple(grid))  # type: ignore[arg-type]
            except ConfigError as exc:
                raise wsrc.error(wp + ("grid",), exc.message) from None
        if variant is not None and lay["cascade"] == "mha":
            T = ranks.get("T", load_cascade("mha").ranks["T"].size)
            try:
                g = tuple(grid) if grid else infer_grid(T)
                layers_in.extend(split_attention(lay, variant, grid=g, options=options))  # type: ignore[arg-type]
            except ConfigError as exc:
                raise wsrc.error(wp + ("attention",) + exc.ypath, exc.message) from None
        else:
            layers_in.append(lay)
    if variant is not None and not any(l["cascade"] == "mha" for l in model["layers"]):
        raise wsrc.error(wp + ("attention",), f"model {model['name']} has no mha layer to swap")
    if grid is not None and not any(l["cascade"] == "mha" for l in model["layers"]):
        raise wsrc.error(wp + ("grid",), f"model {model['name']} has no mha layer, so no attention "
                         "variant to give a patch grid to")

    maps = {}
    if "mappings" in sections:
        ms, msrc, mp = sections["mappings"]
        if not isinstance(ms, dict):
            raise msrc.error(mp, "expected {LAYER: mapping section}")
        lnames = [l["name"] for l in layers_in]
        for ln in ms:
            if ln not in lnames:
                raise msrc.error(mp + (str(ln),), f"no layer {ln!r} (layers: {', '.join(lnames)})")
        maps = {ln: (ms[ln], msrc, mp + (ln,)) for ln in ms}
    arch_sec = sections.get("arch")
    if arch_sec is None:
        raise src.error((), "missing the 'arch:' section (inline, a path, or a shipped name)")
    out: list[LayerSpec] = []
    msrc_model = Source(model["file"])
    for lay in layers_in:
        wsec = {"cascade": lay["cascade"], "ranks": dict(lay["ranks"]), "params": dict(lay["params"]),
                "instances": int(lay["repeat"]) * batch}
        secs: Sections = {"workload": (wsec, msrc_model, ("model", "layers", lay["name"])),
                          "arch": arch_sec}
        if lay["name"] in maps:
            secs["mapping"] = maps[lay["name"]]
        try:
            # on several cores only the batch, and the heads of a block where the layer says so
            # (an attention variant's core), run at once: a layer's repeats are blocks in sequence
            cfg = config_from_sections(secs, src, p.parent, sets=sets, source=str(p),
                                       parallel=batch * int(lay.get("parallel", 1)))
        except ConfigError as exc:
            if exc.file == model["file"]:
                raise wsrc.error(wp, f"layer {lay['name']} ({lay['cascade']}): {exc.message}") from None
            if exc.ypath[:1] == ("mapping",):  # the layer's derived mapping: say which layer
                raise ConfigError(f"layer {lay['name']}: {format_ypath(exc.ypath)}: {exc.message}",
                                  exc.file, exc.line) from None
            raise
        out.append(LayerSpec(name=lay["name"], cascade=lay["cascade"], repeat=int(lay["repeat"]), config=cfg))
    arch = out[0].config.arch
    wsum = {"model": model["name"], "attention": variant, "options": options, "batch": batch,
            **({"moe": moe[0], "moe_options": moe[1]} if moe is not None else {}),
            "source": model["source"], **model.get("summary", {})}
    return RunSpec(name=p.stem, source=str(p), description=desc or model["description"], arch=arch,
                   layers=tuple(out), batch=batch, report=rep, workload=wsum,
                   search=_search_section(sections, True))


def _search_section(sections: Sections, model: bool) -> tuple[Any, Source, YPath] | None:
    if "search" not in sections:
        return None
    sec, ssrc, sp = sections["search"]
    if not isinstance(sec, dict):
        raise ssrc.error(sp, "expected {objective: latency|energy|edp, budget: N, seed: S}")
    if model and "constraints" in sec:
        raise ssrc.error(sp + ("constraints",), "constraints name the Einsums of one cascade; a model "
                         "run searches every layer with objective, budget and seed only")
    return sections["search"]


def search_layer(lay: LayerSpec, search_sec: tuple[Any, Source, YPath], *,
                 progress: Any = None, lines: bool = False) -> LayerSpec:
    """The layer with the mapping found by ``einarray search`` (see einarray/search/);
    ``progress``: a running rich Progress to show the search's evaluations on, or None;
    ``lines``: say a search that ran here in one plain line on stderr (no terminal).
    An identical layer searched before in this process reuses its mapping
    (:mod:`einarray.search_cache`)."""
    from dataclasses import replace

    from mapping.loader import mapping_from_data

    from .progress import Bar, line
    from .search import search
    from .search.constraints import SearchProblem, parse_search_section
    from .search_cache import searched_mapping
    from .search_eval import SIMULATOR

    from .default_mapping import derive_default, mapping_section

    sec, ssrc, sp = search_sec
    cfg = lay.config
    settings = parse_search_section(sec, ssrc, sp, cfg.cascade, cfg.arch)

    def find() -> dict[str, Any]:
        # seeded with the derived default, so a small budget never does worse than not searching
        seeded = derive_default(cfg)[0] if cfg.mapping_origin == "default" else cfg
        with Bar(progress or False, f"  search of {lay.name}", settings.budget) as sbar:
            res = search(SearchProblem(seeded, settings, mapping_section(seeded) if seeded is not cfg else None,
                                       cfg.source or ""), SIMULATOR, progress=sbar.count, full_results=False)
        if lines:
            line(f"search of {lay.name}: {res.evaluations} candidates simulated in {res.seconds:.1f} s")
        return res.mapping

    found = searched_mapping(cfg, sec, find)  # identical layers are searched once
    msrc = Source(f"search of {lay.name}")
    mapping = mapping_from_data(found, msrc, ("mapping",), cfg.cascade, cfg.arch, cfg.counts)
    return replace(lay, config=replace(cfg, mapping=mapping, mapping_origin="searched"))


def default_layer(lay: LayerSpec) -> LayerSpec:
    """The layer with the derived default mapping when it has no given one
    (:func:`einarray.default_mapping.derive_default`)."""
    from dataclasses import replace

    from .default_mapping import derive_default

    cfg, choice = derive_default(lay.config)
    if choice is None:
        return lay
    return replace(lay, config=cfg, default_choice=choice.as_dict())


# ----------------------------------------------------------------------------------
def run(spec: RunSpec, *, progress: Any = True,
        simulate: Callable[[Config], dict] | None = None) -> dict[str, Any]:
    """Simulate every layer and aggregate; returns the data of ``report.json``.

    ``progress``: True for a bar of layers on the terminal (:mod:`einarray.progress`), False
    for none, or a running rich Progress to show the layers on."""
    from .progress import Bar, plain_lines

    if simulate is None:
        from sim.results import simulate as simulate  # noqa: PLW0127
    results: list[tuple[LayerSpec, dict]] = []
    if spec.search is not None:  # the distinct layers on every core first, reused below
        from .search_cache import prefetch

        prefetch(spec.layers, spec.search, progress=progress)
    with Bar(progress, f"simulating {spec.name}", len(spec.layers)) as bar:
        for lay in spec.layers:
            if spec.search is not None:
                bar.describe(f"searching a mapping for {lay.name}")
                lay = search_layer(lay, spec.search, progress=bar.progress,
                                   lines=bar.progress is None and plain_lines(progress))
            elif lay.config.mapping_origin == "default":
                bar.describe(f"deriving the default mapping of {lay.name}")
                lay = default_layer(lay)
            bar.describe(f"simulating {lay.name}")
            results.append((lay, simulate(lay.config)))
            bar.advance()
    return aggregate(spec, results)


def _units(arch: Arch) -> dict[str, int]:
    return {n: u.lanes for n, u in arch.units.items()}


def aggregate(spec: RunSpec, results: list[tuple[LayerSpec, dict]]) -> dict[str, Any]:
    arch = spec.arch
    clock = arch.clock_hz
    cycles = sum(int(r["cycles"]) for _, r in results)
    latency = cycles / clock
    units = _units(arch)
    # utilization two ways: over all cycles (memory stalls included) and over the cycles the
    # layers would take without memory stalls (SCALE-Sim's denominator), see sim/results.py
    compute_only = sum(float(r["compute_only_cycles"]) for _, r in results)
    util: dict[str, dict[str, float]] = {}
    for u, lanes in units.items():
        busy = sum(r["utilization"].get(u, {}).get("busy_cycles", 0.0) for _, r in results)
        pe = sum(r["utilization"].get(u, {}).get("pe_util", 0.0) * r["cycles"] for _, r in results)
        mac = sum(r["utilization"].get(u, {}).get("mac_util", 0.0) * r["cycles"] for _, r in results)
        util[u] = {"busy": busy / cycles if cycles else 0.0, "pe_util": pe / cycles if cycles else 0.0,
                   "mac_util": mac / cycles if cycles else 0.0, "busy_cycles": busy,
                   "pe_util_compute": pe / compute_only if compute_only else 0.0,
                   "mac_util_compute": mac / compute_only if compute_only else 0.0}
    energy_components: dict[str, dict[str, float]] = {}
    for _, r in results:
        for comp, acts in r["energy_pj"]["components"].items():
            d = energy_components.setdefault(comp, {})
            for a, v in acts.items():
                d[a] = d.get(a, 0.0) + v
    energy = {k: sum(r["energy_pj"][k] for _, r in results) for k in ("total", "compute", "memory", "leakage")}
    energy["components"] = energy_components
    energy["levels"] = _energy_by_level_and_role(r for _, r in results)
    traffic: dict[str, dict[str, Any]] = {}
    for _, r in results:
        for lvl, t in r["traffic"].items():
            d = traffic.setdefault(lvl, {"reads": 0, "writes": 0, "read_bytes": 0.0, "write_bytes": 0.0,
                                          "bytes": 0.0, "peak_read_bw": t["peak_read_bw"],
                                          "peak_write_bw": t["peak_write_bw"]})
            for k in ("reads", "writes", "read_bytes", "write_bytes", "bytes"):
                d[k] += t[k]
    for lvl, d in traffic.items():
        d["read_bw"] = d["reads"] / cycles if cycles else 0.0
        d["write_bw"] = d["writes"] / cycles if cycles else 0.0
    layers = []
    einsums = []
    groups: list[dict[str, Any]] = []
    for lay, r in results:
        e_tot = r["energy_pj"]["total"]
        dram = next(iter(r["traffic"].values()))
        layers.append({
            "name": lay.name, "cascade": lay.cascade, "repeat": lay.repeat, "instances": r["instances"],
            "cycles": int(r["cycles"]), "latency_s": r["latency_s"], "energy_pj": e_tot,
            "edp": r["edp"], "dram_bytes": dram["bytes"],
            "utilization": {u: r["utilization"].get(u, {}).get("pe_util", 0.0) for u in units},
            "utilization_compute": {u: r["utilization"].get(u, {}).get("pe_util_compute", 0.0) for u in units},
            "compute_only_cycles": float(r["compute_only_cycles"]),
            "cycles_by_cause": dict(r["cycles_by_cause"]),
            "macs": _macs(lay.config) * r["instances"],
            **layer_mapping_record(lay),
        })
        for n, e in r["einsums"].items():
            if not e["points"]:
                continue
            lanes = units.get(e["unit"], 1)
            einsums.append({
                "layer": lay.name, "einsum": n, "unit": e["unit"], "group": e["group"],
                "cycles": float(e["cycles"]), "energy_pj": float(e["energy_pj"]),
                "pe_cycles": float(e["pe_cycles"]), "points": int(e["points"]),
                "utilization": float(e["pe_cycles"]) / (float(e["cycles"]) * lanes) if e["cycles"] else 0.0,
                "ops": int(sum(e["actions"].values())),
            })
        for gname, g in r.get("groups", {}).items():
            members = [n for n in g["einsums"] if r["einsums"].get(n, {}).get("points")]
            if not members:
                continue
            ops_by_unit: dict[str, int] = {}
            for n in members:
                u = r["einsums"][n]["unit"]
                ops_by_unit[u] = ops_by_unit.get(u, 0) + int(sum(r["einsums"][n]["actions"].values()))
            # cycles, ops and DRAM bytes all cover the group's whole run (every instance)
            groups.append({
                "layer": lay.name, "group": gname, "einsums": members, "cycles": float(g["cycles"]),
                "ops": sum(ops_by_unit.values()), "ops_by_unit": ops_by_unit,
                "dram_bytes": float(g["dram_bytes"]),
            })
    macs = sum(l["macs"] for l in layers)
    dram_lvl = arch.levels[0].name
    summary = {
        "latency_s": latency,
        "throughput_inf_per_s": spec.batch / latency if latency else 0.0,
        "energy_per_inference_pj": energy["total"] / spec.batch,
        "average_power_w": energy["total"] * 1e-12 / latency if latency else 0.0,
        "dram_bytes": traffic.get(dram_lvl, {}).get("bytes", 0.0),
        "edp": energy["total"] * latency,
        "macs": macs,
        "utilization": {u: v["pe_util"] for u, v in util.items()},
        "utilization_compute": {u: v["pe_util_compute"] for u, v in util.items()},
        "utilization_denominator": {
            "utilization": "busy PE-cycles / (PEs x all cycles, memory stalls included)",
            "utilization_compute": "busy PE-cycles / (PEs x compute-only cycles, without memory stalls; "
                                   "SCALE-Sim's definition)"},
        "binding": binding_summary(layers),
        **efficiency(macs, energy["total"], latency, arch.total_area_um2),
    }
    top = spec.report.top
    return {
        "name": spec.name, "title": spec.report.title, "config": spec.source,
        "description": spec.description, "workload": dict(spec.workload), "batch": spec.batch,
        "arch": {"name": arch.name, "clock_hz": clock, "units": units,
                 "levels": [lv.name for lv in arch.levels],
                 "cores": arch.cores.count,
                 "peak_macs_per_s": sum(u.lanes * u.macs_per_pe for u in arch.units.values()) * clock
                 * arch.cores.count,
                 "peak_ops_per_s": {n: _peak_ops_per_cycle(n, u, results) * clock * arch.cores.count
                                    for n, u in arch.units.items()},
                 "dram_bytes_per_s": _dram_bytes_per_cycle(arch) * clock},
        "cycles": cycles, "latency_s": latency, "clock_hz": clock, "utilization": util,
        "traffic": traffic, "energy_pj": energy, "edp": energy["total"] * latency,
        "summary": summary, "layers": layers,
        "top_einsums_by_time": sorted(einsums, key=lambda e: (-e["cycles"], e["layer"], e["einsum"]))[:top],
        "top_einsums_by_energy": sorted(einsums, key=lambda e: (-e["energy_pj"], e["layer"], e["einsum"]))[:top],
        "einsums": einsums,
        "groups": groups,
        "layer_results": {lay.name: r for lay, r in results},
    }


def _energy_by_level_and_role(results: Any) -> dict[str, dict[str, float]]:
    """Memory energy (pJ) per memory level and tensor role (input, output, intermediate),
    summed over the layers' per-tensor split (``energy_pj.tensors`` of sim/results.py,
    which sums to each layer's memory energy), as ZigZag breaks energy down per operand
    and level."""
    out: dict[str, dict[str, float]] = {}
    for r in results:
        for t in r["energy_pj"].get("tensors", {}).values():
            for lvl, pj in t["levels"].items():
                d = out.setdefault(lvl, {})
                d[t["role"]] = d.get(t["role"], 0.0) + pj
    return out


def efficiency(macs: int, energy_pj: float, latency_s: float, area_um2: float | None) -> dict[str, Any]:
    """Achieved efficiency, counting a MAC as two operations (the TOPS convention):
    ``tops_per_w`` = 2 MACs / energy; with an arch area, ``area_mm2`` and ``tops_per_mm2``
    = 2 MACs / latency / area. Both are achieved over the whole run, not peak figures."""
    out: dict[str, Any] = {"tops_per_w": 2 * macs / (energy_pj * 1e-12) / 1e12 if energy_pj else 0.0}
    if area_um2:
        out["area_mm2"] = area_um2 * 1e-6
        out["tops_per_mm2"] = 2 * macs / latency_s / 1e12 / (area_um2 * 1e-6) if latency_s else 0.0
    return out


def layer_mapping_record(lay: LayerSpec) -> dict[str, Any]:
    """Where a layer's mapping came from and the mapping itself, complete (report.json):
    ``mapping_origin`` (default | searched | given), ``mapping_policy`` (for a default: which
    derived candidate won), ``binding`` ({unit: Einsums that compute on it}) and ``mapping``
    (a ``mapping:`` section that reproduces the run)."""
    from .default_mapping import mapping_policy, mapping_section

    cfg = lay.config
    binding: dict[str, list[str]] = {}
    for e in cfg.cascade.einsums:
        em = cfg.mapping.einsums[e.name]
        if not em.free:
            binding.setdefault(em.unit, []).append(e.name)
    origin = cfg.mapping_origin
    policy = mapping_policy(origin, lay.default_choice)
    from .loopnest import loop_nest

    how = origin if policy == origin else f"{origin}, {policy}"
    return {"mapping_origin": origin, "mapping_policy": policy, "default_choice": lay.default_choice,
            "binding": binding, "mapping": mapping_section(cfg),
            "loop_nest": loop_nest(cfg, title=f"layer {lay.name}: {cfg.cascade.name} on {cfg.arch.name}",
                                   origin=f"mapping: {how}")}


def binding_summary(layers: list[dict[str, Any]]) -> str:
    """One line per distinct (origin, policy): which layers ran with which mapping, and for the
    layers with work on more than one unit, which Einsums ran where."""
    parts = []
    seen: dict[tuple[str, str], list[str]] = {}
    for l in layers:
        seen.setdefault((l["mapping_origin"], l["mapping_policy"]), []).append(l["name"])
    for (origin, policy), names in seen.items():
        how = origin if policy == origin else f"{origin}, {policy}"
        parts.append(f"{', '.join(names)}: {how}")
    for l in layers:
        if len(l["binding"]) > 1:
            parts.append(f"{l['name']} binding: " + "; ".join(
                f"{u} {' '.join(ns)}" for u, ns in sorted(l["binding"].items())))
    return " | ".join(parts)


def _macs(cfg: Config) -> int:
    return int(sum(oc.macs for oc in cfg.counts.values()))


def _dram_bytes_per_cycle(arch: Arch) -> float:
    """Peak backing-store bytes per cycle, reads and writes together: one shared channel
    moves at most its faster rate; separate channels add up."""
    d = arch.levels[0]
    words = max(d.read_bw, d.write_bw) if d.shared_rw else d.read_bw + d.write_bw
    return float(words) * d.word_bits / 8


def _peak_ops_per_cycle(name: str, u: ComputeUnit, results: list[tuple[LayerSpec, dict]]) -> float:
    """Peak actions per cycle of a compute unit, the roof of the roofline plot.

    A lane does ``macs_per_pe`` MACs (2-D array) or one action of ``c`` cycles every ``c``
    cycles; a unit that chains element-wise ops (``fuse_elementwise``) does all actions of
    one point in the cycles of its slowest op, so its peak is the densest point among the
    Einsums it ran."""
    per_lane = max([1.0 / op.cycles for op in u.ops.values()] + ([float(u.macs_per_pe)] if u.is_2d else []))
    if u.fuse_elementwise:
        for _, r in results:
            for e in r["einsums"].values():
                if e["unit"] == name and e["points"] and e["actions"]:
                    slowest = max(u.ops[a].cycles for a in e["actions"])
                    per_lane = max(per_lane, sum(e["actions"].values()) / e["points"] / slowest)
    return per_lane * u.lanes


def mappings_from_report(spec: RunSpec, report: str | Path) -> RunSpec:
    """``spec`` with every layer's mapping taken from an earlier run's ``report.json``
    (``layers[].mapping``), matched by layer name, so that run is reproduced exactly even
    if this einarray would derive other defaults. The layers become ``given``; a layer the
    report lacks, or a mapping that no longer fits, is a located error naming the report."""
    import json
    from dataclasses import replace

    from mapping.loader import mapping_from_data

    p = Path(report)
    src = Source(str(p))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("report not found (give the report.json of an earlier einarray run)", str(p)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not a report.json of einarray run: {exc}", str(p)) from None
    rows = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "name" in r for r in rows):
        raise src.error(("layers",), "expected the layers of an einarray run report")
    by_name = {r["name"]: (i, r) for i, r in enumerate(rows)}
    out = []
    for lay in spec.layers:
        if lay.name not in by_name:
            raise src.error(("layers",), f"has no layer {lay.name!r} (its layers: {', '.join(by_name)})")
        i, rec = by_name[lay.name]
        if "mapping" not in rec:
            raise src.error(("layers", i), f"layer {lay.name} has no stored mapping (written by an older einarray)")
        cfg = lay.config
        try:
            m = mapping_from_data(copy.deepcopy(rec["mapping"]), src, ("layers", i, "mapping"), cfg.cascade,
                                  cfg.arch, cfg.counts)
        except ConfigError as exc:
            raise ConfigError(f"layer {lay.name}: {exc.message}", exc.file, exc.line, exc.ypath) from None
        out.append(replace(lay, config=replace(cfg, mapping=m, mapping_origin="given")))
    return replace(spec, layers=tuple(out), search=None)
