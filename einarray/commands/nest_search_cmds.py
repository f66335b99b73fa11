"""``einarray search`` of a memory-hierarchy config (an arch with ``hierarchy:``): the mapping
search of :mod:`mapping.nest_search`, each candidate scored by :mod:`sim.nest`.

Its ``search:`` section (every key optional; ``--objective``, ``--budget`` and ``--seed``
override)::

    search:
      objective: energy          # energy | latency | edp (default edp, as for array configs)
      budget: 2000               # scored mappings (default 2000)
      seed: 0                    # seed of the local search (default 0)
      vary: [factors, spatial, orders, keep]   # what the search changes (default all)

Prints the best mapping as a ``mapping:`` section to paste, then its per-level table (or, with
``--json``, the search's figures and the simulated result).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from einarray.tables import emit, note, output_format
from einsum.errors import EinarrayError
from einsum.yamlsrc import load as load_yaml

if TYPE_CHECKING:
    from mapping.nest_mapping import NestConfig

#: what the search minimises, from a sim.nest result
METRICS = {"energy": lambda r: r.energy_pj, "latency": lambda r: r.cycles, "edp": lambda r: r.energy_pj * r.cycles}
OBJECTIVES = tuple(METRICS)
VARY = ("factors", "spatial", "orders", "keep")


def hierarchy_config(path: str, sets: list[str]) -> NestConfig | None:
    """The config at ``path`` as a NestConfig if its arch is a memory hierarchy, else None
    (an array config is left to the array search, not built here)."""
    from mapping.config import load_config, load_section

    p = Path(path)
    if not p.is_file():
        return None
    data, src = load_yaml(p)
    if not isinstance(data, dict) or "arch" not in data:
        return None
    arch = load_section(data, src, "arch", p.parent)
    if arch is None or not isinstance(arch[0], dict) or "hierarchy" not in arch[0]:
        return None
    return load_config(p, sets=sets, allow_hierarchy=True)


def _settings(path: str, args: argparse.Namespace) -> dict[str, Any]:
    data, src = load_yaml(Path(path))
    sec = data.get("search") or {}
    if not isinstance(sec, dict):
        raise src.error(("search",), f"expected {{objective, budget, seed, vary}}, got {sec!r}")
    for k in sec:
        if k not in ("objective", "budget", "seed", "vary"):
            raise src.error(("search", str(k)), f"unknown key {k!r} for a memory-hierarchy arch "
                            "(allowed: objective, budget, seed, vary)")
    out = {"objective": sec.get("objective", "edp"), "budget": sec.get("budget", 2000), "seed": sec.get("seed", 0),
           "vary": sec.get("vary", list(VARY))}
    if out["objective"] not in OBJECTIVES:
        raise src.error(("search", "objective"), f"expected one of {', '.join(OBJECTIVES)}, got {out['objective']!r}")
    for k in ("budget", "seed"):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "budget" else 0):
            raise src.error(("search", k), f"expected a {'positive' if k == 'budget' else 'non-negative'} "
                            f"integer, got {v!r}")
    v = out["vary"]
    if not isinstance(v, list) or not v or any(x not in VARY for x in v):
        raise src.error(("search", "vary"), f"expected a non-empty list of {', '.join(VARY)}, got {v!r}")
    if args.objective is not None:
        if args.objective not in OBJECTIVES:
            raise EinarrayError(f"--objective {args.objective!r}: expected one of {', '.join(OBJECTIVES)}")
        out["objective"] = args.objective
    if args.budget is not None:
        if args.budget < 1:
            raise EinarrayError(f"--budget {args.budget}: expected a positive integer")
        out["budget"] = args.budget
    if args.seed is not None:
        out["seed"] = args.seed
    return out


def _search_cascade(args: argparse.Namespace, cn, s: dict[str, Any], metric, dims) -> int:
    """Each Einsum of a cascade searched on its own (the Einsums run one after another, so the
    cascade's cycles and energy are sums; an Einsum's best mapping for its own EDP need not
    give the cascade's best EDP, which the header says), ``budget`` mappings each."""
    from dataclasses import replace

    from mapping.nest_search import mapping_section, search_nest
    from sim.nest import simulate_nest
    from sim.nest_cascade import cascade_text, simulate_cascade_nest

    from .sim_cmds import nest_table

    found, lines = [], []
    for cfg in cn.configs:
        res = search_nest(cfg, lambda c: metric(simulate_nest(c)), dims=dims, budget=s["budget"], seed=s["seed"])
        found.append(res)
        how = (f"exhaustive over all {res.space:,} legal mappings" if res.exhaustive else
               f"local search, {res.evaluated:,} mappings scored")
        lines.append(f"{cfg.einsum.name}: {how}; {s['objective']} {res.score:.6g} (the config's: {res.given_score:.6g})")
    best = replace(cn, configs=tuple(r.best for r in found))
    total = simulate_cascade_nest(best)
    header = (f"einarray search: {cn.cascade.name} on {cn.arch.name}, objective {s['objective']} per Einsum "
              f"(varying {', '.join(s['vary'])}; seed {s['seed']}, budget {s['budget']} each):\n" + "\n".join(lines)
              + f"\ncascade: {total.cycles:,} cycles, energy {total.energy_pj:.6g} {total.energy_unit}")
    section = {"version": 1, "einsums": {c.einsum.name: mapping_section(c) for c in best.configs},
               **({"on_chip": dict(cn.on_chip)} if cn.on_chip else {})}
    text = mapping_text(section, header)
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps({"objective": s["objective"], "seed": s["seed"], "vary": s["vary"], "budget": s["budget"],
                          "einsums": {c.einsum.name: {"score": r.score, "given_score": r.given_score,
                                                      "evaluated": r.evaluated, "space": r.space,
                                                      "exhaustive": r.exhaustive}
                                      for c, r in zip(cn.configs, found)},
                          "mapping": section, "mapping_yaml": text,
                          "result": total.as_dict()}, indent=2, sort_keys=True))
    elif fmt != "table":
        note(fmt, text.rstrip("\n"))
        emit([nest_table(r) for _, r in total.einsums], fmt)
    else:
        print(text)
        print(cascade_text(total))
    return 0


def _flow(d: Any) -> str:
    return yaml.safe_dump(d, default_flow_style=True, sort_keys=False, width=10_000).strip()


def _nest_lines(section: dict[str, Any], ind: str) -> list[str]:
    """One Einsum's ``nest`` (a flow-style line per level), ``counting``, ``tensors``, ``pad``."""
    lines = [f"{ind}nest:"] + [f"{ind}  {lv}: {_flow(d)}" for lv, d in section["nest"].items()]
    lines.append(f"{ind}counting: {_flow(section['counting'])}")
    return lines + [f"{ind}{k}: {_flow(section[k])}" for k in ("tensors", "pad") if section.get(k)]


def mapping_text(section: dict[str, Any], header: str) -> str:
    """A ``mapping:`` section with one flow-style line per level, as the examples write it: one
    Einsum's, or a cascade's (``einsums:`` and ``on_chip:``)."""
    lines = [f"# {h}" for h in header.splitlines()] + ["mapping:", "  version: 1"]
    if "einsums" in section:
        lines.append("  einsums:")
        for n, sec in section["einsums"].items():
            lines += [f"    {n}:"] + _nest_lines(sec, "      ")
        if section.get("on_chip"):
            lines.append(f"  on_chip: {_flow(section['on_chip'])}")
    else:
        lines += _nest_lines(section, "  ")
    return "\n".join(lines) + "\n"


def search_hierarchy(args: argparse.Namespace, cfg: NestConfig) -> int:
    from mapping.nest_mapping import CascadeNest
    from mapping.nest_search import Dims, mapping_section, search_nest
    from sim.nest import simulate_nest
    from sim.nest_text import table_text

    from .sim_cmds import nest_table

    for opt, on in (("--partition", args.partition), ("--no-seed", args.no_seed), ("--rank", args.rank),
                    ("--output", args.output)):
        if on:
            raise EinarrayError(f"{opt} applies to array configs, not to a memory-hierarchy arch")
    s = _settings(args.config, args)
    metric = METRICS[s["objective"]]
    dims = Dims(**{k: k in s["vary"] for k in VARY})
    if isinstance(cfg, CascadeNest):
        return _search_cascade(args, cfg, s, metric, dims)
    res = search_nest(cfg, lambda c: metric(simulate_nest(c)), dims=dims, budget=s["budget"], seed=s["seed"])
    best = simulate_nest(res.best)
    how = (f"exhaustive over all {res.space:,} legal mappings" if res.exhaustive else
           f"local search, {res.evaluated:,} mappings scored (seed {s['seed']})")
    header = (f"einarray search: {cfg.cascade.name} on {cfg.arch.name}, objective {s['objective']} "
              f"(varying {', '.join(s['vary'])}): {how}\n"
              f"{s['objective']} {res.score:.6g} (the config's mapping: {res.given_score:.6g}); "
              f"{best.cycles:,} cycles, energy {best.energy_pj:.6g} {best.energy_unit}")
    section = mapping_section(res.best)
    text = mapping_text(section, header)
    fmt = output_format(args)
    if fmt == "json":
        print(json.dumps({"objective": s["objective"], "score": res.score, "given_score": res.given_score,
                          "evaluated": res.evaluated, "space": res.space, "exhaustive": res.exhaustive,
                          "seed": s["seed"], "vary": s["vary"], "mapping": section, "mapping_yaml": text,
                          "result": best.as_dict()}, indent=2, sort_keys=True))
    elif fmt != "table":  # csv and the other data formats: the mapping on stderr, the table on stdout
        note(fmt, text.rstrip("\n"))
        emit([nest_table(best)], fmt)
    else:
        print(text)
        print(table_text(best))
    return 0
