"""The ``architectures`` study: a conv layer and an attention layer on the two Timeloop-class
architectures shipped with einarray, with the per-level breakdown.

Architectures: ``eyeriss-like`` (168 PEs in 12 x 14, three scratchpads per PE, a 108 KB global
buffer; Chen, Emer, Sze, ISCA 2016 / JSSC 2017; energies in MAC-equivalents, ISCA 2016's costs
relative to one MAC) and ``simba-like`` (four chiplets of 16 PEs of 64 MACs on a package mesh;
Shao et al., MICRO 2019; pJ from the component library). Their files state their sources and
assumptions (``mapping/arch/``).

Layers (every Einsum is one sum of products, so each maps alone; :data:`LAYERS`):

* conv: AlexNet CONV3 (256 -> 384 channels, 13 x 13, 3 x 3; the layer of the Eyeriss papers) and
  ResNet-50 conv3_x's 3 x 3 (128 -> 128, 28 x 28; the layer of ``examples/simba/``);
* attention: one BERT-Base layer's multi-head attention at 512 tokens (12 heads of 64): the Q/K/V
  projection (a 512 x 768 x 2304 GEMM), the scores S = Q K^T per head, the weighted values
  O = A V per head and the output projection (512 x 768 x 768). The softmax between S and A has
  no unit on these arrays (no exp or divide): S leaves the array for DRAM and A comes back, and
  that traffic is counted in the two Einsums; the softmax itself is simulated on simba-like with
  an assumed vector unit (:data:`VECTOR`, ``arch.vector``), its intermediates through DRAM, and
  the whole attention core (S, the softmax, A V) on eyeriss-like with an assumed vector unit
  (:data:`EYERISS_VECTOR`, hand nests), fused (S, the softmax's intermediates and A kept in the
  global buffer a tile at a time, ``mapping.on_chip``) and not;
* vit-core: ViT-Base/16's S = Q K^T and A V at 224 px (197 tokens, 12 heads of 64). 197 is
  prime, so no loop nest can split it: the mapping pads both token ranks to 200 = 2^3 x 5^2
  (``mapping.pad``), and the padding's fetches and MACs are counted like the others; the rows
  give the useful MACs and utilization beside the executed ones.

An Einsum's tensors take the names the arch keeps by ``mapping.tensors`` (the activations are
``Inputs``, the weights, keys or values ``Weights``, the results ``Outputs``).

Mappings: every (layer, arch) pair is searched by :func:`mapping.nest_search.search_nest`
(objective EDP, the budget and seed of :data:`SEARCH`) from the layer's trivial mapping (every
loop in DRAM) or, for the three hand mappings shipped in ``examples/`` (Eyeriss's row-stationary
CONV3; on Simba, CONV3 partitioned across the chiplets by output channel and the attention
scores by head), from that mapping, which also appears as its own row. The found mappings are written as complete configs to
``reports/architectures/configs/`` (``einarray simulate`` runs them); regenerating the study
without ``--search`` simulates those configs again.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from .common import REPORTS

REPO = REPORTS.parent
NAME = "architectures"
CONFIGS = REPORTS / NAME / "configs"
ARCHS = ["eyeriss-like", "simba-like"]
SEARCH = {"objective": "edp", "budget": {"eyeriss-like": 20000, "simba-like": 3000}, "seed": 0}

_CONV = "../../../examples/eyeriss/conv2d.yaml"  # paths from CONFIGS
_LAYERS = "../../../examples/layers"
_GEMM = {"A": "Inputs", "B": "Weights", "C": "Outputs"}
#: layer -> its group, workload section (a cascade and its ranks), tensor binding, hand mappings by arch
LAYERS: dict[str, dict[str, Any]] = {
    "alexnet-conv3": {"group": "conv", "workload": {"cascade": _CONV, "ranks": {}}, "tensors": None,
                      "hand": {"eyeriss-like": "examples/eyeriss/alexnet-conv3.yaml"}},
    "resnet50-conv3": {"group": "conv", "workload": {"cascade": _CONV, "ranks": {
                           "K": 128, "C": 128, "P": 28, "Q": 28, "R": 3, "S": 3}}, "tensors": None,
                       "hand": {"simba-like": "examples/simba/resnet50-conv3.yaml"}},
    "bert-qkv": {"group": "attention", "workload": {"cascade": "gemm", "ranks": {"M": 512, "K": 768, "N": 2304}},
                 "tensors": _GEMM},
    "bert-qk": {"group": "attention", "workload": {"cascade": f"{_LAYERS}/attention-qk.yaml", "ranks": {}},
                "tensors": {"Q": "Inputs", "K": "Weights", "S": "Outputs"},
                "hand": {"simba-like": "examples/simba/bert-qk.yaml"}},
    "bert-av": {"group": "attention", "workload": {"cascade": f"{_LAYERS}/attention-av.yaml", "ranks": {}},
                "tensors": {"A": "Inputs", "V": "Weights", "O": "Outputs"}},
    "bert-out": {"group": "attention", "workload": {"cascade": "gemm", "ranks": {"M": 512, "K": 768, "N": 768}},
                 "tensors": _GEMM},
    # ViT-Base/16 at 224 px: 197 tokens, a prime, padded to 200 = 2^3 5^2 so the loops factor
    "vit-qk": {"group": "vit-core", "workload": {"cascade": f"{_LAYERS}/attention-qk.yaml",
                                                 "ranks": {"M": 197, "P": 197}},
               "tensors": {"Q": "Inputs", "K": "Weights", "S": "Outputs"}, "pad": {"M": 200, "P": 200}},
    "vit-av": {"group": "vit-core", "workload": {"cascade": f"{_LAYERS}/attention-av.yaml",
                                                 "ranks": {"M": 197, "P": 197}},
               "tensors": {"A": "Inputs", "V": "Weights", "O": "Outputs"}, "pad": {"M": 200, "P": 200}},
}
#: the tensors of the attention Einsums that exist only because the softmax runs off the array
SCORES = {"bert-qk": "S", "bert-av": "A"}
#: an assumed vector unit for the softmax between S and A on simba-like (the paper's chiplets have
#: none; einarray's assumption): 16 lanes per chiplet at its global buffer, 16-bit floating point,
#: each operation's energy a component of the library at simba-like's 16 nm, 0.8 V (comparator and
#: fpadd: Horowitz ISSCC 2014, 45 nm; exp and div: FuseMax's 45 nm figures; all scaled by
#: Stillmaker-Baas 2017); an exp takes 6 lane-cycles, as on FuseMax's 1-D array
_NODE = {"node_nm": 16, "vdd": 0.8}
VECTOR = {"name": "Vector", "level": "GlobalBuffer", "lanes": 16, "cycles": {"exp": 6},
          "energy": {"max": {"class": "comparator", "word_bits": 16, **_NODE},
                     "add": {"class": "fpadd", "word_bits": 16, **_NODE},
                     "exp": {"class": "exp", **_NODE}, "div": {"class": "div", **_NODE}}}
SOFTMAX = {"case": "bert-softmax@simba-like-vector", "cascade": f"{_LAYERS}/attention-softmax.yaml"}
#: BERT-Base's attention core fused on eyeriss-like with an assumed vector unit: 16 lanes at the
#: global buffer, operation energies FuseMax's 45 nm figures relative to its MAC (17.16 pJ; the
#: arch's unit is one MAC): add 8.34, max 0.028, exp 94.65 (6 lane-cycles), divide 36.25 pJ.
#: Hand nests (not searched): every head and 16 query rows a tile, the same nests fused or not
EYERISS_VECTOR = {"name": "Vector", "level": "GlobalBuffer", "lanes": 16, "cycles": {"exp": 6},
                  "energy": {"add": round(8.34 / 17.16, 6), "max": round(0.028 / 17.16, 6),
                             "exp": round(94.65 / 17.16, 6), "div": round(36.25 / 17.16, 6)}}
_QK = {"DRAM": {"temporal": {"H": 12, "M": 32}},
       "GlobalBuffer": {"temporal": {"P": 8, "E": 4}, "spatial": {"X": {"P": 8}, "Y": {"M": 2, "P": 2, "E": 2}}},
       "WeightsSpad": {"temporal": {"M": 8, "E": 2}}, "IfmapSpad": {"temporal": {"E": 4, "P": 4}}}
_AV = {"DRAM": {"temporal": {"H": 12, "M": 32}},
       "GlobalBuffer": {"temporal": {"P": 64}, "spatial": {"X": {"F": 8}, "Y": {"M": 4, "P": 2}}},
       "WeightsSpad": {"temporal": {"M": 4, "F": 2}}, "PsumSpad": {"temporal": {"F": 2}},
       "IfmapSpad": {"temporal": {"F": 2, "P": 4}}}
FUSED = {"case": "bert-attention@eyeriss-like-vector", "cascade": f"{_LAYERS}/attention-3pass.yaml",
         "on_chip": ["S", "GM", "SN", "SD", "A"]}


def _sections(layer: str, arch: str, mapping: dict[str, Any]) -> dict[str, Any]:
    w = dict(LAYERS[layer]["workload"])
    if not w["ranks"]:
        del w["ranks"]
    return {"workload": w, "arch": arch, "mapping": mapping}


def _path(cascade: str) -> str:
    """A cascade written relative to ``configs/`` as an absolute path (the directory may not
    exist yet), or a library name as it is."""
    import os

    return os.path.normpath(CONFIGS / cascade) if cascade.startswith("..") else cascade


def _trivial(layer: str) -> dict[str, Any]:
    """Every loop of the layer's Einsum in the outermost level (DRAM), each level keeping what it
    may: the search's start where there is no hand mapping."""
    from einsum.load import load_cascade
    from mapping.nest_mapping import iterated_ranks

    w = LAYERS[layer]["workload"]
    casc = load_cascade(_path(w["cascade"]), ranks=w["ranks"] or None)
    ranks = iterated_ranks(casc, casc.einsums[0])
    t, pad = LAYERS[layer]["tensors"], LAYERS[layer].get("pad") or {}
    ranks.update(pad)
    return {"version": 1, "nest": {"DRAM": {"temporal": ranks}}, **({"tensors": dict(t)} if t else {}),
            **({"pad": dict(pad)} if pad else {})}


def _double_buffered(cfg) -> dict[str, Any]:
    """The what-if of every level double buffered: the timeline's cycles, and the levels whose
    doubled tiles (each refilled tile twice) would not fit their capacity."""
    from mapping.nest_mapping import all_double_buffered, level_words
    from sim.nest_timeline import nest_timeline

    db = all_double_buffered(cfg)
    over = [lv.name for i, lv in enumerate(db.arch.levels) if lv.capacity_words is not None
            and level_words(cfg.levels, i, cfg.operands, cfg.levels[i].keep, True) > lv.capacity_words]
    return {"cycles": nest_timeline(db).cycles, "does_not_fit": over}


def _load(doc: dict[str, Any], where: Path) -> Any:
    """A NestConfig from a config document whose paths are relative to ``where``."""
    from einsum.yamlsrc import Source
    from mapping.config import config_from_sections, load_section

    doc = dict(doc, workload=dict(doc["workload"], cascade=_path(doc["workload"]["cascade"])))
    src = Source(str(where / "study.yaml"))
    sections = {k: s for k in ("einsum", "workload", "arch", "mapping")
                if (s := load_section(doc, src, k, where)) is not None}
    return config_from_sections(sections, src, where, allow_hierarchy=True,
                                source=str(where / "study.yaml"))


def _case_name(layer: str, arch: str, origin: str) -> str:
    return f"{layer}@{arch}" + ("-hand" if origin == "hand" else "")


def _cases() -> list[tuple[str, str, str]]:
    """(layer, arch, origin) of every row: each pair searched, plus the hand mappings."""
    out = []
    for arch in ARCHS:
        for layer, spec in LAYERS.items():
            if arch in (spec.get("hand") or {}):
                out.append((layer, arch, "hand"))
            out.append((layer, arch, "searched"))
    return out


def _search(layer: str, arch: str) -> dict[str, Any]:
    """The searched mapping of (layer, arch), from its hand mapping if it has one."""
    from mapping.config import load_config
    from mapping.nest_search import mapping_section, search_nest
    from sim.nest import simulate_nest

    from ..commands.nest_search_cmds import METRICS

    hand = (LAYERS[layer].get("hand") or {}).get(arch)
    if hand:
        start = load_config(REPO / hand, allow_hierarchy=True)
    else:
        start = _load(_sections(layer, arch, _trivial(layer)), CONFIGS)
    edp = METRICS[SEARCH["objective"]]
    res = search_nest(start, lambda c: edp(simulate_nest(c)), budget=SEARCH["budget"][arch], seed=SEARCH["seed"])
    return mapping_section(res.best)


def _config_text(layer: str, arch: str, origin: str, mapping: dict[str, Any]) -> str:
    spec = LAYERS[layer]
    hand = (spec.get("hand") or {}).get(arch)
    if origin == "hand":
        how = f"the hand mapping of {hand}"
    else:
        how = (f"found by mapping.nest_search (objective {SEARCH['objective']}, budget {SEARCH['budget'][arch]}, seed "
               f"{SEARCH['seed']}, from " + (f"the hand mapping of {hand})" if hand else "every loop in DRAM)"))
    return _config_file(f"{layer} on {arch}: {how}.", _case_name(layer, arch, origin),
                        _sections(layer, arch, mapping), " --search")


def _config_file(what: str, case: str, doc: dict[str, Any], flag: str = "") -> str:
    """A config written to ``configs/CASE.yaml``: a header saying what it is and how it is run,
    then the document."""
    head = [what, f"Written by `python -m einarray.studies architectures{flag}`; run it with",
            f"  einarray simulate reports/{NAME}/configs/{case}.yaml"]
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)
    return "".join(f"# {h}\n" for h in head) + body


def _vector_cascade(arch: str, vector: dict[str, Any], cascade: str, mapping: dict[str, Any]
                    ) -> tuple[dict[str, Any], Any]:
    """A cascade on a shipped arch given a vector unit: its config document, and its result."""
    from sim.nest_cascade import simulate_cascade_nest

    sec = yaml.safe_load((REPO / "mapping" / "arch" / f"{arch}.yaml").read_text())["arch"]
    doc = {"workload": {"cascade": cascade}, "arch": {**sec, "vector": vector}, "mapping": mapping}
    return doc, simulate_cascade_nest(_load(doc, CONFIGS))


def architectures(progress: bool = False, *, search: bool = False) -> dict[str, Any]:
    """Simulate every case's committed config (``configs/``), or search them afresh."""
    import sys

    from sim.nest import simulate_nest

    rows, written = [], {}
    for layer, arch, origin in _cases():
        name = _case_name(layer, arch, origin)
        spec = LAYERS[layer]
        if origin == "hand":
            from mapping.config import load_config
            from mapping.nest_search import mapping_section

            mapping = mapping_section(load_config(REPO / spec["hand"][arch], allow_hierarchy=True))
        elif search:
            if progress:
                print(f"searching {name} ...", file=sys.stderr, flush=True)
            mapping = _search(layer, arch)
        else:
            mapping = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["mapping"]
        text = _config_text(layer, arch, origin, mapping)
        written[f"{name}.yaml"] = text
        cfg = _load(yaml.safe_load(text), CONFIGS)
        res = simulate_nest(cfg)
        d = res.as_dict()
        dram = res.levels[0]
        db = _double_buffered(cfg)
        row = {"case": name, "layer": layer, "group": spec["group"], "arch": arch, "mapping": origin,
               "macs": res.computes, "cycles": res.cycles, "compute_cycles": res.compute_cycles,
               "bound_cycles": res.bound_cycles, "timeline": res.timeline.as_dict(),
               "double_buffered": db,
               "utilization": res.utilization, "bound_by": res.bound_by, "energy_unit": res.energy_unit,
               "useful_macs": res.useful_computes, "useful_utilization": res.useful_utilization,
               "energy": res.energy_pj, "energy_per_mac": res.energy_pj / res.computes,
               "dram_energy": dram.energy_pj, "dram_words": float(sum(
                   (s.reads + s.fills + s.updates) for s in dram.tensors.values())),
               "level_order": [lv.name for lv in res.levels],  # outermost first (JSON sorts the dicts' keys)
               "energy_by_level": d["energy_pj"]["levels"], "energy_compute": res.mac_energy_pj,
               "energy_networks": d["energy_pj"].get("networks", {}),
               "levels": d["levels"], "networks": d["networks"],
               "area_um2": d["area_um2"]["total"], "tops_per_w": d["tops_per_w"]}
        if layer in SCORES:
            t = SCORES[layer]
            s = dram.tensors[t]
            row["scores_dram_words"] = float(s.reads + s.fills + s.updates)
            row["scores_dram_energy"] = s.energy_pj
        rows.append(row)
    sm, text = _softmax()
    written[f"{SOFTMAX['case']}.yaml"] = text
    fused = {}
    for how in ("unfused", "fused"):
        fused[how], written[f"{FUSED['case']}-{how}.yaml"] = _fused_attention(how == "fused")
    return {"rows": rows, "search": SEARCH, "softmax": sm, "fused_attention": fused, "_configs": written}


def _fused_attention(fused: bool) -> tuple[dict[str, Any], str]:
    """BERT-Base's attention core (S = Q K^T, the softmax, A V) on eyeriss-like with the assumed
    :data:`EYERISS_VECTOR` unit and the hand nests ``_QK`` / ``_AV``; ``fused`` keeps S, the
    softmax's intermediates and A in the global buffer a tile (a head, 16 query rows) at a time."""
    m: dict[str, Any] = {"version": 1, "einsums": {
        "S": {"nest": _QK, "tensors": {"Q": "Inputs", "K": "Weights", "S": "Outputs"}},
        "O": {"nest": _AV, "tensors": {"A": "Inputs", "V": "Weights", "O": "Outputs"}}}}
    if fused:
        m["on_chip"] = {t: "GlobalBuffer" for t in FUSED["on_chip"]}
    doc, res = _vector_cascade("eyeriss-like", EYERISS_VECTOR, FUSED["cascade"], m)
    per = {n: {"cycles": r.cycles, "energy": r.energy_pj, "dram_energy": r.levels[0].energy_pj,
               "utilization": getattr(r, "utilization", None)} for n, r in res.einsums}
    out = {"cycles": res.cycles, "energy": res.energy_pj, "order": [n for n, _ in res.einsums], "einsums": per,
           "dram_energy": sum(e["dram_energy"] for e in per.values()), "energy_unit": res.energy_unit}
    how = "fused: S, GM, SN, SD and A kept in the global buffer a tile at a time" if fused else \
        "unfused: every intermediate through DRAM"
    return out, _config_file(f"BERT-Base's attention core on eyeriss-like with an assumed vector unit, {how} "
                             "(einarray/studies/architectures.py EYERISS_VECTOR, _QK, _AV).",
                             f"{FUSED['case']}-{'fused' if fused else 'unfused'}", doc)


def _softmax() -> tuple[dict[str, Any], str]:
    """BERT-Base's softmax (examples/layers/attention-softmax.yaml) on simba-like with the assumed
    :data:`VECTOR` unit: its four Einsums on the unit, their intermediates through DRAM (the global
    buffers are four instances, so none stays on chip whole). Returns its figures and its config."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's notes on exp/div's unstated supply voltage
        doc, res = _vector_cascade("simba-like", VECTOR, SOFTMAX["cascade"], {"version": 1})
    per = {}
    for n, r in res.einsums:
        dram = r.levels[0]
        per[n] = {"cycles": r.cycles, "compute_cycles": r.compute_cycles, "bound_by": r.bound_by, "ops": r.ops,
                  "energy": r.energy_pj, "vector_energy": r.vector_energy_pj, "dram_energy": dram.energy_pj,
                  "network_energy": sum(nw.energy_pj for nw in r.networks)}
    out = {"case": SOFTMAX["case"], "cycles": res.cycles, "energy": res.energy_pj, "einsums": per,
           "order": [n for n, _ in res.einsums],  # the cascade's (JSON sorts the dicts' keys)
           "dram_energy": sum(e["dram_energy"] for e in per.values()),
           "vector_energy": sum(e["vector_energy"] for e in per.values()),
           "network_energy": sum(e["network_energy"] for e in per.values())}
    return out, _config_file("BERT-Base's softmax (4 Einsums) on simba-like with an assumed vector unit "
                             "(einarray/studies/architectures.py VECTOR).", SOFTMAX["case"], doc)


# -- report ---------------------------------------------------------------------------
def _attention_totals(rows: list[dict[str, Any]], arch: str) -> dict[str, float]:
    att = [r for r in rows if r["arch"] == arch and r["group"] == "attention" and r["mapping"] == "searched"]
    tot = {k: sum(r[k] for r in att) for k in ("macs", "cycles", "energy", "dram_energy", "dram_words")}
    tot["scores_dram_energy"] = sum(r.get("scores_dram_energy", 0.0) for r in att)
    tot["scores_dram_words"] = sum(r.get("scores_dram_words", 0.0) for r in att)
    tot["core_cycles"] = sum(r["cycles"] for r in att if r["layer"] in SCORES)
    tot["core_energy"] = sum(r["energy"] for r in att if r["layer"] in SCORES)
    return tot


def _g(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def architectures_markdown(data: dict[str, Any]) -> str:
    rows = data["rows"]
    out = ["# Architectures: a conv layer and an attention layer on Eyeriss-like and Simba-like", "",
           "Generated by `python -m einarray.studies architectures` (`--search` searches the mappings again); "
           "do not edit by hand. The model is `sim/nest.py` (Timeloop's counting conventions, checked exactly "
           "against Timeloop's tutorial exercises in `tests/sim/test_nest.py`), the search "
           "`mapping/nest_search.py`, the study `einarray/studies/architectures.py`, whose docstring states "
           "the layers and what is not simulated. Each row's config is in `configs/` "
           "(`einarray simulate reports/architectures/configs/CASE.yaml --show-mapping`).", "",
           "Energies are in each arch's unit: **MAC-equivalents** on eyeriss-like (ISCA 2016's costs relative "
           "to one MAC, so no TOPS/W is derived) and **pJ** on simba-like; compare within an arch, not "
           "across. Simba-like's figures were recalled from the paper, not re-read (its arch file says "
           "which). Cycles are the timeline's (`sim/nest_timeline.py`: every refill stepped over the bandwidths "
           "and networks it crosses, a single-buffered level (all of these archs' levels) refilling only once "
           "its tile is done with, the MACs waiting for it), or the bound where that is larger; the bound, "
           "Timeloop's figure, takes every transfer as hidden behind the MACs (compute, or the busiest "
           "level's bandwidth, ports or banks, or a network's busiest link, plus its latency once). The "
           "search ranks mappings by the timeline's EDP. *Double buffered* is the what-if of every level "
           "double buffered, the same mapping (the larger of its timeline and the bound), and says where "
           "the doubled tiles would not fit.", "",
           "## Every layer", "",
           "| arch | layer | mapping | MACs | cycles | the bound | double buffered | utilization | bound by | energy | "
           "energy / MAC | DRAM share |",
           "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        dbl = r["double_buffered"]
        fit = f" (too big for {', '.join(dbl['does_not_fit'])})" if dbl["does_not_fit"] else ""
        out.append(f"| {r['arch']} | {r['layer']} | {r['mapping']} | {r['macs']:,} | {r['cycles']:,} | "
                   f"{r['bound_cycles']:,} | {max(dbl['cycles'], r['bound_cycles']):,}{fit} | "
                   f"{r['utilization']:.1%} | {r['bound_by']} | {_g(r['energy'])} {r['energy_unit']} | "
                   f"{r['energy_per_mac']:.3f} | {r['dram_energy'] / r['energy']:.1%} |")
    out += ["", "## The attention layer", ""]
    for arch in ARCHS:
        t = _attention_totals(rows, arch)
        unit = next(r["energy_unit"] for r in rows if r["arch"] == arch)
        out.append(
            f"- **{arch}**: the four Einsums take {t['cycles']:,} cycles and {_g(t['energy'])} {unit} "
            f"({t['energy'] / t['macs']:.3f} {unit}/MAC) for {t['macs']:,} MACs. The scores S = Q K^T and "
            f"A V are {t['core_cycles'] / t['cycles']:.1%} of the cycles and {t['core_energy'] / t['energy']:.1%} "
            f"of the energy, for {(2 * 12 * 512 * 512 * 64) / t['macs']:.1%} of the MACs: S written to DRAM and "
            f"A read back ({t['scores_dram_words']:,.0f} words, {_g(t['scores_dram_energy'])} {unit}) are "
            f"{t['scores_dram_energy'] / t['energy']:.1%} of the layer's energy, the cost of a softmax "
            "these arrays cannot run.")
    sm = data.get("softmax")
    if sm:
        t = _attention_totals(rows, "simba-like")
        parts = "; ".join(f"{n} {sm['einsums'][n]['cycles']:,} ({sm['einsums'][n]['bound_by']})" for n in sm["order"])
        out.append(
            f"- **simba-like with an assumed vector unit** (16 lanes per chiplet at its global buffer, 16-bit "
            f"floating point, energies from the component library at 16 nm: `VECTOR` in the study, config "
            f"`configs/{sm['case']}.yaml`): the softmax's four Einsums (row max, shifted exponentials, their "
            f"sum, the division) take {sm['cycles']:,} cycles ({parts}) and {_g(sm['energy'])} pJ, of which "
            f"{sm['dram_energy'] / sm['energy']:.1%} is DRAM, {sm['network_energy'] / sm['energy']:.1%} the "
            f"package mesh and {sm['vector_energy'] / sm['energy']:.2%} the operations: every intermediate "
            "(S, the max, the exponentials, their sum, A) goes through DRAM, since the four chiplets' global "
            f"buffers cannot hold one whole. With it the attention layer takes {t['cycles'] + sm['cycles']:,} "
            f"cycles and {_g(t['energy'] + sm['energy'])} pJ: the softmax is "
            f"{sm['energy'] / (t['energy'] + sm['energy']):.1%} of the energy and "
            f"{sm['cycles'] / (t['cycles'] + sm['cycles']):.1%} of the cycles, which is what fusing it "
            "(FuseMax, `reports/fusemax/`) removes.")
    fa = data.get("fused_attention")
    if fa:
        u, f, n = fa["fused"]["energy_unit"], fa["fused"], fa["unfused"]
        out.append(
            f"- **eyeriss-like with an assumed vector unit, fused** (16 lanes at the global buffer, FuseMax's "
            f"operation energies relative to its MAC; hand nests, the same fused or not, a head and 16 query "
            f"rows a tile: `configs/{FUSED['case']}-fused.yaml`): the attention core (S = Q K^T, the softmax, "
            f"A V) takes {n['cycles']:,} cycles either way and {_g(n['energy'])} {u} with every intermediate "
            f"through DRAM, {_g(f['energy'])} {u} fused (x{f['energy'] / n['energy']:.3f}), S, the softmax's "
            f"intermediates and A staying in the global buffer a tile at a time; DRAM is "
            f"{n['dram_energy'] / n['energy']:.1%} of the energy unfused, {f['dram_energy'] / f['energy']:.1%} "
            "fused (what remains: K and V read again for every tile, Q, O).")
    h = next(r for r in rows if r["case"] == "bert-qk@simba-like-hand")
    s = next(r for r in rows if r["case"] == "bert-qk@simba-like")
    chips = s["levels"]["GlobalBuffer"]["utilized"]
    out += ["", "On simba-like every score crosses the package mesh to the DRAM at chiplet (0, 0), 8 words per "
            f"cycle per link: spreading S = Q K^T over the four chiplets by head (the hand row below) leaves "
            f"the MACs {1 - h['compute_cycles'] / h['bound_cycles']:.0%} idle behind the busiest link even by the "
            f"bound ({h['bound_cycles']:,} cycles; {h['cycles']:,} on the timeline, where each chiplet's refills "
            f"also wait), so the search keeps it on {chips} of the 4 chiplets in {s['cycles']:,} cycles "
            f"(bound {s['bound_cycles']:,}) for {s['energy'] / h['energy']:.1%} of the energy.", "",
            "A fused cascade keeps S and A on chip; einarray's cascade engine models that on the "
            "array archs (`reports/fusemax/`), and a hierarchy arch with a vector unit does so with "
            "`mapping.on_chip` (the eyeriss-like case above). The shipped eyeriss-like and simba-like "
            "have no such unit, so their rows send S to DRAM and read A back.", ""]
    out += ["## ViT-Base's attention core: 197 tokens, padded to 200", ""]
    for r in (r for r in rows if r["group"] == "vit-core"):
        out.append(f"- {r['layer']} on {r['arch']}: {r['cycles']:,} cycles, {_g(r['energy'])} {r['energy_unit']}; "
                   f"{r['macs']:,} MACs executed of which {r['useful_macs']:,} are the Einsum's "
                   f"({r['useful_macs'] / r['macs']:.2%}): utilization {r['utilization']:.1%} executed, "
                   f"{r['useful_utilization']:.1%} useful.")
    out += ["", "## Hand mappings and the search", ""]
    for arch in ARCHS:
        for layer, spec in LAYERS.items():
            if arch in (spec.get("hand") or {}):
                h = next(r for r in rows if r["arch"] == arch and r["layer"] == layer and r["mapping"] == "hand")
                s = next(r for r in rows if r["arch"] == arch and r["layer"] == layer and r["mapping"] == "searched")
                out.append(f"- {layer} on {arch}: the hand mapping ({spec['hand'][arch]}) takes {h['cycles']:,} "
                           f"cycles ({h['utilization']:.1%} of the MACs busy, bound by {h['bound_by']}) and "
                           f"{_g(h['energy'])} {h['energy_unit']}; the search from it, {s['cycles']:,} cycles "
                           f"({s['utilization']:.1%}, {s['bound_by']}) and {_g(s['energy'])} (EDP "
                           f"x{(s['energy'] * s['cycles']) / (h['energy'] * h['cycles']):.3f}).")
    out += ["", "## Per level and tensor", "",
            "Per instance, as Timeloop prints them: reads, fills and updates of each tensor at each level "
            "(the first write of an output is not a read; fills count only new data), and the energy over "
            "all utilized instances. `inst` is the utilized instances.", ""]
    for r in rows:
        out += [f"### {r['case']}", "",
                f"{r['macs']:,} MACs, {r['cycles']:,} cycles ({r['bound_by']}), {_g(r['energy'])} {r['energy_unit']}"
                + (f", area {r['area_um2'] / 1e6:.3f} mm^2" if r["area_um2"] else "")
                + (f", {r['tops_per_w']:.3f} TOPS/W" if r["tops_per_w"] else "") + ".", "",
                f"| level | tensor | inst | tile | reads | fills | updates | energy ({r['energy_unit']}) |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        for lv in r["level_order"]:
            d = r["levels"][lv]
            for t, s in d["tensors"].items():
                out.append(f"| {lv} | {t} | {d['utilized']} | {s['tile']:,} | {s['reads']:,.0f} | {s['fills']:,.0f} | "
                           f"{s['updates']:,.0f} | {_g(s['energy_pj'])} |")
        out.append(f"| compute | MAC | | | {r['macs']:,} | | | {_g(r['energy_compute'])} |")
        for nw, d in r["networks"].items():
            out.append(f"| {nw} network | ({d['topology']}, {d['word_hops']:,} word-hops) | | | | | | "
                       f"{_g(d['energy_pj'])} |")
        out.append("")
    return "\n".join(out)


def architectures_plots(data: dict[str, Any]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in data["rows"]]
    fig, axes = plt.subplots(1, len(ARCHS), figsize=(12, 4.5))
    for ax, arch in zip(axes, ARCHS):
        rs = [r for r in rows if r["arch"] == arch]
        labels = [r["layer"] + (" (hand)" if r["mapping"] == "hand" else "") for r in rs]
        parts = list(rs[0]["level_order"]) + ["compute", "networks"]
        bottom = [0.0] * len(rs)
        for part in parts:
            vals = []
            for r in rs:
                if part == "compute":
                    v = r["energy_compute"]
                elif part == "networks":
                    v = sum(r["energy_networks"].values())
                else:
                    v = r["energy_by_level"][part]
                vals.append(v / r["macs"])
            if not any(vals):
                continue
            ax.bar(labels, vals, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_title(arch)
        ax.set_ylabel(f"energy per MAC ({rs[0]['energy_unit']})")
        ax.tick_params(axis="x", rotation=35)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return {"energy.png": buf.getvalue()}
