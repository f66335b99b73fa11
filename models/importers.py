"""``workload:`` sections that bring their own model: an ONNX graph, a Hugging Face config
or a SCALE-Sim topology, lowered to the layers a preset has.

=================================================  ==============================================
workload                                           keys it takes (besides batch, layers, mappings)
=================================================  ==============================================
``{onnx: model.onnx, ranks: {seq: 512}}``          ``ranks`` (sizes of the graph's symbolic dims),
                                                   ``attention``, ``grid``, ``onnx_skip_unknown``
``{hf: config.json, tokens: 512}``                 ``tokens``, ``attention``, ``grid``, ``ranks``
``{topology: layers.csv}``                         ``ranks``
=================================================  ==============================================

Paths are relative to the config file. :func:`import_workload` returns the model (as
:func:`models.load_model` returns a preset) and the workload keys left for the run to apply
(``batch``, ``layers``, and ``ranks`` where the importer does not take them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from einsum.errors import ConfigError
from einsum.yamlsrc import Source, YPath

from .attention import VARIANTS

IMPORT_KEYS = ("onnx", "hf", "topology")
# keys each importer takes (and removes from the workload the run applies)
OWN_KEYS = {"onnx": ("ranks", "attention", "grid", "onnx_skip_unknown"),
            "hf": ("tokens", "attention", "grid"),
            "topology": ()}
ONLY_FOR = {"onnx_skip_unknown": "onnx", "tokens": "hf"}


def import_workload(w: Mapping[str, Any], wsrc: Source, wp: YPath, base_dir: Path,
                    cli_ranks: Mapping[str, int] | None = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The imported model of a workload section and the keys left for the run, or None
    when the section names a preset (``model:``) or a cascade. ``cli_ranks`` (``--rank``)
    that name an ONNX graph's symbolic dimensions bind them over ``workload.ranks``
    (the model's ``summary.symbolic_dims`` says which sizes were used)."""
    kinds = [k for k in ("model",) + IMPORT_KEYS if k in w]
    for k, owner in ONLY_FOR.items():
        if k in w and owner not in kinds:
            raise wsrc.error(wp + (k,), f"{k} is for an imported {owner} model (workload.{owner})")
    if len(kinds) > 1:
        raise wsrc.error(wp + (kinds[1],), f"give one model: {' or '.join(kinds)}")
    if not kinds or kinds[0] == "model":
        return None
    kind = kinds[0]
    ref = w[kind]
    if not isinstance(ref, str) or not ref.strip():
        raise wsrc.error(wp + (kind,), "expected the path of a file (relative to this config)")
    path = (base_dir / ref)
    if not path.is_file():
        raise wsrc.error(wp + (kind,), f"no file {ref!r} (looked for {path})")
    variant, options = _attention(w, wsrc, wp)
    grid = _grid(w, wsrc, wp)
    try:
        if kind == "onnx":
            from .onnx_import import import_onnx

            skip = w.get("onnx_skip_unknown", False)
            if not isinstance(skip, bool):
                raise wsrc.error(wp + ("onnx_skip_unknown",), f"expected true or false, got {skip!r}")
            ranks = w.get("ranks", {}) or {}
            if not isinstance(ranks, dict) or not all(_pos_int(v) for v in ranks.values()):
                raise wsrc.error(wp + ("ranks",), "expected {DIM: positive size} for the graph's "
                                 "symbolic dimensions")
            model = import_onnx(path, ranks=ranks, attention_variant=variant, options=options, grid=grid,
                                skip_unknown=skip, rank_overrides=cli_ranks)
        elif kind == "hf":
            from .hf import import_hf

            tokens = w.get("tokens")
            if tokens is not None and not _pos_int(tokens):
                raise wsrc.error(wp + ("tokens",), f"expected a positive integer, got {tokens!r}")
            model = import_hf(path, tokens=tokens, attention_variant=variant, options=options, grid=grid)
        else:
            from .topology import import_topology

            model = import_topology(path)
    except ConfigError as exc:
        if exc.file is None:  # a mistake in the workload section itself (a rank, an option)
            head: YPath = ("attention",) if exc.ypath and exc.ypath[0] in _option_names() else ()
            raise wsrc.error(wp + head + tuple(exc.ypath), exc.message) from None
        raise
    rest = {k: v for k, v in w.items() if k != kind and k not in OWN_KEYS[kind]}
    return model, rest


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _option_names() -> set[str]:
    from .attention import OPTIONS

    return set(OPTIONS)


def _attention(w: Mapping[str, Any], wsrc: Source, wp: YPath) -> tuple[str | None, dict[str, Any]]:
    att = w.get("attention")
    if att is None:
        return None, {}
    if isinstance(att, str):
        variant, options = att, {}
    elif isinstance(att, dict) and isinstance(att.get("variant"), str):
        variant, options = att["variant"], {k: v for k, v in att.items() if k != "variant"}
    else:
        raise wsrc.error(wp + ("attention",), "expected a variant name or {variant: NAME, ...options}")
    if variant not in VARIANTS:
        raise wsrc.error(wp + ("attention",), f"unknown attention variant {variant!r} "
                         f"(variants: {', '.join(VARIANTS)})")
    return variant, options


def _grid(w: Mapping[str, Any], wsrc: Source, wp: YPath) -> tuple[int, int] | None:
    grid = w.get("grid")
    if grid is None:
        return None
    if not isinstance(grid, list) or len(grid) != 2 or not all(_pos_int(g) for g in grid):
        raise wsrc.error(wp + ("grid",), "expected [GY, GX], two positive integers")
    return (grid[0], grid[1])
