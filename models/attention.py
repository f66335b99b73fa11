"""Attention variants: bind a library attention cascade to a model's shapes.

A ViT preset describes attention as one ``mha`` layer (projections, softmax attention,
output projection). ``einarray run`` can swap the attention core for any variant of the
library; :func:`split_attention` turns the ``mha`` layer into a QKV projection GEMM, the
variant applied per head, and the output projection GEMM. :func:`bind_variant` maps the
model's shapes (tokens, patch grid, head dimension) onto the variant's ranks.

Local variants (HaloNet blocks, neighbourhood attention, the GMM mask) work on the patch
grid, so they attend over the ``gy x gx`` patch tokens and leave the class token out
(the class token of such backbones is pooled separately, as in NAT and HaloNet, which
have none); global variants attend over all tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from einsum.errors import ConfigError

GLOBAL = ("softmax-3pass", "softmax-2pass", "softmax-1pass", "retention", "linear", "linformer",
          "edge-moe-softmax")
LOCAL = ("halo", "neighborhood-2d", "gmm-mask")
VARIANTS = GLOBAL + LOCAL
OPTIONS = {"block", "halo", "kernel", "dilation", "proj_len", "chunk", "gaussians", "gamma"}


@dataclass(frozen=True)
class Binding:
    cascade: str
    ranks: Mapping[str, int]
    params: Mapping[str, float]
    tokens: int  # query tokens the variant attends over


def _largest_divisor_at_most(n: int, k: int) -> int:
    return max(d for d in range(1, min(n, k) + 1) if n % d == 0)


def bind_variant(variant: str, *, tokens: int, grid: tuple[int, int], head_dim: int,
                 options: Mapping[str, Any] | None = None) -> Binding:
    """Ranks and params of ``variant`` for a head of dimension ``head_dim``."""
    opts = dict(options or {})
    unknown = set(opts) - OPTIONS
    if unknown:
        raise ConfigError(f"unknown attention option(s) {', '.join(sorted(unknown))} "
                          f"(options: {', '.join(sorted(OPTIONS))})")
    if variant not in VARIANTS:
        raise ConfigError(f"unknown attention variant {variant!r} (variants: {', '.join(VARIANTS)})")
    E = head_dim
    scale = 1.0 / math.sqrt(E)
    gy, gx = grid
    if variant in ("softmax-3pass", "softmax-2pass", "linear", "edge-moe-softmax"):
        ranks = {"M": tokens, "P": tokens, "E": E, "F": E}
        params = {} if variant == "linear" else {"scale": scale}
        return Binding(variant, ranks, params, tokens)
    if variant == "softmax-1pass":
        p0 = _largest_divisor_at_most(tokens, int(opts.get("chunk", 256)))
        return Binding(variant, {"M": tokens, "P": tokens, "E": E, "F": E, "P0": p0},
                       {"scale": scale}, tokens)
    if variant == "retention":
        return Binding(variant, {"M": tokens, "E": E, "F": E},
                       {"scale": scale, "gamma": float(opts.get("gamma", 0.96875))}, tokens)
    if variant == "linformer":
        k = int(opts.get("proj_len", 64))
        return Binding(variant, {"M": tokens, "P": tokens, "J": min(k, tokens), "E": E, "F": E},
                       {"scale": scale}, tokens)
    n = gy * gx
    if variant == "halo":
        b = int(opts.get("block", 8))
        if gy % b or gx % b:
            b = _largest_divisor_at_most(math.gcd(gy, gx), b)
        return Binding(variant, {"H": gy, "W": gx, "C": E, "F": E},
                       {"block": b, "halo": int(opts.get("halo", 3)), "scale": scale}, n)
    if variant == "neighborhood-2d":
        k = int(opts.get("kernel", 7))
        d = int(opts.get("dilation", 1))
        if k * d > min(gy, gx):
            raise ConfigError(f"neighborhood-2d: kernel {k} x dilation {d} = {k * d} exceeds the "
                              f"{gy} x {gx} patch grid")
        return Binding(variant, {"H": gy, "W": gx, "KY": k, "KX": k, "E": E, "F": E},
                       {"dil_y": d, "dil_x": d, "scale": scale}, n)
    # gmm-mask
    return Binding(variant, {"GY": gy, "GX": gx, "E": E, "F": E, "G": int(opts.get("gaussians", 4))},
                   {"scale": scale}, n)


def split_attention(layer: Mapping[str, Any], variant: str, *, grid: tuple[int, int],
                    options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Replace an ``mha`` layer by QKV projection, the variant per head, and output projection."""
    if layer["cascade"] != "mha":
        raise ConfigError(f"layer {layer['name']!r} uses {layer['cascade']}, not mha; "
                          "only an mha layer can take an attention variant")
    from einsum.load import load_cascade

    c = load_cascade("mha", ranks=dict(layer["ranks"]))
    T, D, NH, E = (c.ranks[r].size for r in ("T", "D", "NH", "E"))
    b = bind_variant(variant, tokens=T, grid=grid, head_dim=E, options=options)
    rep = int(layer.get("repeat", 1))
    name = layer["name"]
    return [
        {"name": f"{name}.qkv", "cascade": "gemm", "ranks": {"M": T, "K": D, "N": 3 * NH * E},
         "params": {}, "repeat": rep},
        {"name": f"{name}.{variant}", "cascade": b.cascade, "ranks": dict(b.ranks),
         "params": dict(b.params), "repeat": rep * NH},
        {"name": f"{name}.proj", "cascade": "gemm", "ranks": {"M": T, "K": NH * E, "N": D},
         "params": {}, "repeat": rep},
    ]


def infer_grid(tokens: int) -> tuple[int, int]:
    """The square patch grid of a ViT with ``tokens`` tokens (with or without a class token)."""
    for n in (tokens - 1, tokens):
        r = math.isqrt(n)
        if r * r == n and r > 0:
            return (r, r)
    raise ConfigError(f"{tokens} tokens are not a square patch grid (plus a class token); "
                      "give workload.grid: [GY, GX]")
