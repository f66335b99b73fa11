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

Options (``workload.attention: {variant: NAME, OPTION: value}``), each for its variants:

=====================  ==========================  ==============================================
variant                option (default)            valid values
=====================  ==========================  ==============================================
halo                   block (8), halo (3)         block <= both grid sides; halo >= 0     
neighborhood-2d        kernel (7), dilation (1)    odd kernel (NATTEN); kernel x dilation <= side
linformer              proj_len (64)               at most the number of tokens
softmax-1pass          chunk (256)                 array width the key chunk is fitted to
gmm-mask               gaussians (4)               positive integer
retention              gamma (0.96875)             0 < gamma <= 1
retention-recurrent    gamma (0.96875)             0 < gamma <= 1
performer              features (256)              positive integer (random features R)
performer-causal       features (256)              positive integer (random features R)
sliding-window-causal  window (64)                 at most the number of tokens
gqa                    kv_heads (1)                divides the number of heads (1: multi-query)
longformer             window (64), dilation (1),  even window (the paper's w: w/2 keys each
                       global_tokens (1)           side), window/2 x dilation < tokens; global
                                                   tokens >= 0 and at most the tokens
reformer               chunk (64), rounds (2),     chunk at most the tokens; rounds >= 1; even
                       buckets (2*ceil(T/chunk))   buckets >= 2
=====================  ==========================  ==============================================

``gqa`` binds one key/value head and the query heads that share it per instance (the layer
repeats it ``kv_heads`` times) and shrinks the QKV projection to ``heads + 2 * kv_heads``
heads. The causal variants (``*-causal``, ``retention-recurrent``) mask future tokens, which
changes what a bidirectional ViT computes; they are here to cost the kernels.

``longformer`` adds the global tokens' own projections (Beltagy et al. 2020): K_g and V_g
of every token (``.kv-global``, 2 x heads wide) and Q_g of the ``global_tokens`` rows only
(``.q-global``); which positions are global is data (the cascade's index input ``GI``), so
only their number shapes the cost (1 by default: the class token). ``reformer`` shares
queries and keys (Kitaev et al. 2020), so its projection GEMM is 2 x heads wide (QK and V);
its default bucket count follows the Reformer's guidance of about two buckets per chunk
of the sequence, 2 * ceil(tokens / chunk), always even.

A bad option, or one of another variant, is a :class:`ConfigError` naming it; nothing is
adjusted silently. A halo block or a key chunk that does not divide the grid or the tokens
leaves a partial last block or chunk, computed and costed as such (:mod:`einsum.ragged`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from einsum.errors import ConfigError

GLOBAL = ("softmax-3pass", "softmax-2pass", "softmax-1pass", "retention", "linear", "linformer",
          "edge-moe-softmax", "performer", "performer-causal", "retention-recurrent", "linear-causal",
          "sliding-window-causal", "gqa", "longformer", "reformer")
LOCAL = ("halo", "neighborhood-2d", "gmm-mask")
VARIANTS = GLOBAL + LOCAL
# option -> (the variant, or the variants, that take it, what a valid value is)
OPTION_OF = {"block": ("halo", "a positive integer"), "halo": ("halo", "a non-negative integer"),
             "kernel": ("neighborhood-2d", "a positive odd integer"),
             "dilation": (("neighborhood-2d", "longformer"), "a positive integer"),
             "proj_len": ("linformer", "a positive integer"),
             "chunk": (("softmax-1pass", "reformer"), "a positive integer"),
             "gaussians": ("gmm-mask", "a positive integer"),
             "gamma": (("retention", "retention-recurrent"), "a number in (0, 1]"),
             "features": (("performer", "performer-causal"), "a positive integer"),
             "window": (("sliding-window-causal", "longformer"), "a positive integer"),
             "kv_heads": ("gqa", "a positive integer"),
             "global_tokens": ("longformer", "a non-negative integer"),
             "rounds": ("reformer", "a positive integer"),
             "buckets": ("reformer", "a positive even integer")}
OPTIONS = set(OPTION_OF)


@dataclass(frozen=True)
class Binding:
    cascade: str
    ranks: Mapping[str, int]
    params: Mapping[str, float]
    tokens: int  # query tokens the variant attends over
    heads: int = 1  # query heads one instance computes (the layer repeats it heads // this)
    kv_heads: int | None = None  # key/value heads of the layer (None: one per query head)
    qkv_heads: int | None = None  # heads' worth of outputs of the QKV GEMM (None: heads + 2 kv)
    # further projection GEMMs: (name suffix, rows, heads' worth of outputs)
    extra_projections: tuple[tuple[str, int, int], ...] = ()


def key_chunk(tokens: int, width: int = 256) -> int:
    """The chunk P0 of the 1-pass cascade's keys: the ``width`` of the array the chunk is
    spread over (a chunk fills one pass of it, the block size of FlashAttention and
    FuseMax), or all the keys when there are fewer. The last chunk is partial when the
    width does not divide the tokens (:mod:`einsum.ragged`), so the keys take
    ``ceil(tokens / width)`` passes, the fewest any chunk gives. So 4096 tokens give 256,
    197 give 197 (one pass at 197/256 occupancy), 1031 give 256 (four whole chunks and
    one of 7 keys: five passes, as one chunk of 1031 would take, with a running state of
    256 keys instead of 1031)."""
    return max(1, min(tokens, width))


def _check_option(variant: str, k: str, v: Any) -> None:
    owner, valid = OPTION_OF[k]
    if variant not in _owners(owner):
        mine = sorted(o for o, (w, _) in OPTION_OF.items() if variant in _owners(w))
        raise ConfigError(f"option {k} is for {' and '.join(_owners(owner))}, not {variant} "
                          f"({variant} takes {', '.join(mine) if mine else 'no options'})", ypath=(k,))
    if k == "gamma":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v <= 1
    else:
        ok = isinstance(v, int) and not isinstance(v, bool) and (v >= 0 if k in ("halo", "global_tokens")
                                                                 else v > 0)
        ok = ok and (k != "kernel" or v % 2 == 1) and (k != "buckets" or v % 2 == 0)
    if not ok:
        why = " (NATTEN requires an odd kernel)" if k == "kernel" and _pos_int(v) else ""
        why = " (argmax over [xR; -xR] gives an even number)" if k == "buckets" and _pos_int(v) else why
        raise ConfigError(f"expected {valid}, got {v!r}{why}", ypath=(k,))


def _owners(w: str | tuple[str, ...]) -> tuple[str, ...]:
    return (w,) if isinstance(w, str) else w


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_grid(tokens: int, grid: tuple[int, int]) -> None:
    """A patch grid must cover the tokens: ``gy * gx`` is ``tokens`` (no class token) or
    ``tokens - 1`` (a class token)."""
    gy, gx = grid
    if gy * gx not in (tokens, tokens - 1):
        raise ConfigError(f"the {gy} x {gx} patch grid has {gy * gx} patches, but the model has "
                          f"{tokens} tokens (a grid needs {tokens} patches without a class token, "
                          f"{tokens - 1} with one)")


def bind_variant(variant: str, *, tokens: int, grid: tuple[int, int], head_dim: int,
                 options: Mapping[str, Any] | None = None, heads: int = 1) -> Binding:
    """Ranks and params of ``variant`` for a head of dimension ``head_dim`` (of ``heads``
    heads, which only ``gqa`` groups).

    Options are checked against the variant (each belongs to its variants) and the shapes;
    a bad one raises a :class:`ConfigError` whose ``ypath`` is the option's name."""
    opts = dict(options or {})
    unknown = sorted(set(map(str, opts)) - OPTIONS)
    if unknown:
        raise ConfigError(f"unknown attention option {unknown[0]!r} (options: {', '.join(sorted(OPTIONS))})",
                          ypath=(unknown[0],))
    if variant not in VARIANTS:
        raise ConfigError(f"unknown attention variant {variant!r} (variants: {', '.join(VARIANTS)})")
    for k, v in opts.items():
        _check_option(variant, k, v)
    E = head_dim
    scale = 1.0 / math.sqrt(E)
    gy, gx = grid
    if variant in ("softmax-3pass", "softmax-2pass", "linear", "edge-moe-softmax"):
        ranks = {"M": tokens, "P": tokens, "E": E, "F": E}
        params = {} if variant == "linear" else {"scale": scale}
        return Binding(variant, ranks, params, tokens)
    if variant == "softmax-1pass":
        p0 = key_chunk(tokens, int(opts.get("chunk", 256)))
        return Binding(variant, {"M": tokens, "P": tokens, "E": E, "F": E, "P0": p0},
                       {"scale": scale}, tokens)
    if variant == "retention":
        return Binding(variant, {"M": tokens, "E": E, "F": E},
                       {"scale": scale, "gamma": float(opts.get("gamma", 0.96875))}, tokens)
    if variant in ("performer", "performer-causal"):
        ranks = {"M": tokens, "P": tokens, "E": E, "F": E, "R": opts.get("features", 256)}
        if variant == "performer-causal":
            del ranks["P"]  # an alias of M: self-attention
        return Binding(variant, ranks, {"qk_scale": E ** -0.25}, tokens)
    if variant in ("retention-recurrent", "linear-causal"):
        params = {"scale": scale, "gamma": float(opts.get("gamma", 0.96875))} \
            if variant == "retention-recurrent" else {}
        return Binding(variant, {"M": tokens, "E": E, "F": E}, params, tokens)
    if variant == "sliding-window-causal":
        w = opts.get("window", 64)
        if w > tokens:
            given = "window" in opts
            raise ConfigError(f"{'the window' if given else 'the default window'} {w} is longer than "
                              f"the sequence ({tokens} tokens)" + ("" if given else "; give a window"),
                              ypath=("window",))
        return Binding(variant, {"M": tokens, "W": w, "E": E, "F": E}, {"scale": scale}, tokens)
    if variant == "gqa":
        g = opts.get("kv_heads", 1)
        if heads % g:
            raise ConfigError(f"kv_heads {g} does not divide the {heads} query heads (kv_heads that "
                              f"do: {', '.join(map(str, _divisors(heads)))})", ypath=("kv_heads",))
        r = heads // g  # one instance: one key/value head and the r query heads sharing it
        return Binding(variant, {"M": tokens, "P": tokens, "H": r, "R": r, "E": E, "F": E},
                       {"scale": scale}, tokens, heads=r, kv_heads=g)
    if variant == "longformer":
        return _bind_longformer(opts, tokens, E, scale, heads)
    if variant == "reformer":
        return _bind_reformer(opts, tokens, E, heads)
    if variant == "linformer":
        k = opts.get("proj_len", 64)
        if k > tokens:
            given = "proj_len" in opts
            raise ConfigError(f"{'the projected length' if given else 'the default projected length'} "
                              f"{k} is larger than the sequence ({tokens} tokens)"
                              + ("" if given else "; give a proj_len"), ypath=("proj_len",))
        return Binding(variant, {"M": tokens, "P": tokens, "J": k, "E": E, "F": E},
                       {"scale": scale}, tokens)
    n = gy * gx
    if variant == "halo":
        b = opts.get("block", 8)
        if b > min(gy, gx):  # a block that does not divide a side leaves partial blocks there
            raise ConfigError(f"{'block' if 'block' in opts else 'the default block'} {b} is larger "
                              f"than the {gy} x {gx} patch grid (at most {min(gy, gx)})",
                              ypath=("block",))
        return Binding(variant, {"H": gy, "W": gx, "C": E, "F": E},
                       {"block": b, "halo": opts.get("halo", 3), "scale": scale}, n)
    if variant == "neighborhood-2d":
        k = opts.get("kernel", 7)
        d = opts.get("dilation", 1)
        if k * d > min(gy, gx):
            raise ConfigError(f"the window (kernel {k} x dilation {d} = {k * d} patches) is larger than "
                              f"the sequence ({gy} x {gx} patch grid)",
                              ypath=("kernel" if "kernel" in opts or "dilation" not in opts else "dilation",))
        return Binding(variant, {"H": gy, "W": gx, "KY": k, "KX": k, "E": E, "F": E},
                       {"dil_y": d, "dil_x": d, "scale": scale}, n)
    # gmm-mask
    return Binding(variant, {"GY": gy, "GX": gx, "E": E, "F": E, "G": opts.get("gaussians", 4)},
                   {"scale": scale}, n)


def _bind_longformer(opts: Mapping[str, Any], tokens: int, E: int, scale: float, heads: int) -> Binding:
    w, d, g = opts.get("window", 64), opts.get("dilation", 1), opts.get("global_tokens", 1)
    if w % 2:
        raise ConfigError(f"expected an even window (the paper's w: w/2 keys on each side of the "
                          f"query), got {w}", ypath=("window",))
    if w // 2 * d >= tokens:
        given = "window" in opts or "dilation" not in opts
        raise ConfigError(f"the window reaches {w // 2} x dilation {d} = {w // 2 * d} tokens to each side, "
                          f"past the whole sequence ({tokens} tokens): at most {tokens - 1}",
                          ypath=("window" if given else "dilation",))
    if g > tokens:
        raise ConfigError(f"{g} global tokens are more than the {tokens} tokens", ypath=("global_tokens",))
    extra = (("kv-global", tokens, 2 * heads),) + ((("q-global", g, heads),) if g else ())
    return Binding("longformer", {"M": tokens, "R": w // 2, "G": g, "E": E, "F": E},
                   {"dil": d, "scale": scale}, tokens, extra_projections=extra)


def _bind_reformer(opts: Mapping[str, Any], tokens: int, E: int, heads: int) -> Binding:
    c, n = opts.get("chunk", 64), opts.get("rounds", 2)
    if c > tokens:
        given = "chunk" in opts
        raise ConfigError(f"{'the chunk' if given else 'the default chunk'} {c} is longer than the "
                          f"sequence ({tokens} tokens)" + ("" if given else "; give a chunk"),
                          ypath=("chunk",))
    b = opts.get("buckets", 2 * -(-tokens // c))
    return Binding("reformer", {"M": tokens, "N": n, "B2": b // 2, "C": c, "E": E, "F": E},
                   {"scale": 1.0}, tokens, qkv_heads=2 * heads)


def split_attention(layer: Mapping[str, Any], variant: str, *, grid: tuple[int, int],
                    options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Replace an ``mha`` layer by QKV projection, the variant per head, and output projection."""
    if layer["cascade"] != "mha":
        raise ConfigError(f"layer {layer['name']!r} uses {layer['cascade']}, not mha; "
                          "only an mha layer can take an attention variant")
    from einsum.load import load_cascade

    c = load_cascade("mha", ranks=dict(layer["ranks"]))
    T, D, NH, E = (c.ranks[r].size for r in ("T", "D", "NH", "E"))
    b = bind_variant(variant, tokens=T, grid=grid, head_dim=E, options=options, heads=NH)
    rep = int(layer.get("repeat", 1))
    name = layer["name"]
    kv = NH if b.kv_heads is None else b.kv_heads
    width = NH + 2 * kv if b.qkv_heads is None else b.qkv_heads
    return [
        {"name": f"{name}.qkv", "cascade": "gemm", "ranks": {"M": T, "K": D, "N": width * E},
         "params": {}, "repeat": rep},
        *({"name": f"{name}.{suffix}", "cascade": "gemm", "ranks": {"M": rows, "K": D, "N": h * E},
           "params": {}, "repeat": rep} for suffix, rows, h in b.extra_projections),
        # "parallel": a block's heads are independent (several cores may run them at once);
        # its blocks are not
        {"name": f"{name}.{variant}", "cascade": b.cascade, "ranks": dict(b.ranks),
         "params": dict(b.params), "repeat": rep * NH // b.heads, "parallel": NH // b.heads},
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
