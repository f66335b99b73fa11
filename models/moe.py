"""MoE layer variants: swap a preset's mixture-of-experts layer for true top-k dispatch.

A preset with MoE (``m3vit``) describes each MoE layer as one ``moe`` layer, the
dense-masked cascade (every expert on every token, unselected experts scored 0), which
computes the right values but counts X/K times the expert MACs of a sparse layer.
``workload.moe`` selects how the layer is computed::

    workload:
      model: m3vit
      moe: {variant: moe-topk, gating: edge-moe}

=========  ==========================================================================
variant    what runs
=========  ==========================================================================
moe        the dense-masked cascade (the default: the preset as written)
moe-topk   top-k dispatch: tokens gathered per expert, expert MLPs on them only,
           scatter-accumulate (``einsum/library/moe-topk.yaml``); option ``gating``
=========  ==========================================================================

``gating`` (``moe-topk`` only) names the order of softmax and top-k, which the two
sources differ on: ``m3vit`` (the default) is M^3ViT's noisy top-k gate at inference,
top-k of the logits then a softmax over the K kept (what ``moe`` computes); ``edge-moe``
is Edge-MoE's released code, a softmax over all experts then the K largest probabilities,
not renormalised. The layer keeps its shapes (tokens T, width D, experts X, hidden H) and
its number of experts per token K. A bad variant or option is a :class:`ConfigError`
whose ``ypath`` names it; nothing is adjusted silently.
"""

from __future__ import annotations

from typing import Any, Mapping

from einsum.errors import ConfigError

MOE_VARIANTS = ("moe", "moe-topk")
GATING = {"m3vit": 0, "edge-moe": 1}  # -> moe-topk's param softmax_first
OPTIONS = {"gating": "moe-topk"}


def parse_moe(sec: Any) -> tuple[str, dict[str, Any]]:
    """``workload.moe``: a variant name or ``{variant: NAME, OPTION: value}``; returns
    (variant, options) after checking both."""
    if isinstance(sec, str):
        variant, opts = sec, {}
    elif isinstance(sec, dict):
        opts = {k: v for k, v in sec.items() if k != "variant"}
        variant = sec.get("variant")
        if not isinstance(variant, str):
            raise ConfigError(f"expected {{variant: NAME, ...options}} with NAME one of "
                              f"{', '.join(MOE_VARIANTS)}")
    else:
        raise ConfigError(f"expected a variant name ({', '.join(MOE_VARIANTS)}) or {{variant: NAME, ...}}")
    if variant not in MOE_VARIANTS:
        raise ConfigError(f"unknown MoE variant {variant!r} (variants: {', '.join(MOE_VARIANTS)})",
                          ypath=("variant",) if isinstance(sec, dict) else ())
    for k, v in opts.items():
        if k not in OPTIONS:
            raise ConfigError(f"unknown MoE option {k!r} (options: {', '.join(OPTIONS)})", ypath=(str(k),))
        if variant != OPTIONS[k]:
            raise ConfigError(f"option {k} is for {OPTIONS[k]}, not {variant} ({variant} takes no options)",
                              ypath=(k,))
        if v not in GATING:
            raise ConfigError(f"expected one of {', '.join(GATING)}, got {v!r}", ypath=(k,))
    return variant, dict(opts)


def swap_moe(layer: Mapping[str, Any], variant: str, options: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The layer ``layer`` (a ``moe`` layer of a preset) computed as ``variant``."""
    if layer["cascade"] != "moe":
        raise ConfigError(f"layer {layer['name']!r} uses {layer['cascade']}, not moe; only a moe layer "
                          "can take an MoE variant")
    if variant == "moe":
        return dict(layer)
    from einsum.load import load_cascade

    dense = load_cascade("moe", ranks=dict(layer["ranks"]), params=dict(layer["params"]))
    (k,) = dense.params.values()  # the dense cascade's one param: experts per token
    ranks = {r: dense.ranks[r].size for r in ("T", "D", "X", "H")}
    ranks["K"] = int(k)
    gating = (options or {}).get("gating", "m3vit")
    return {"name": layer["name"], "cascade": "moe-topk", "ranks": ranks,
            "params": {"softmax_first": GATING[gating]}, "repeat": int(layer.get("repeat", 1))}
