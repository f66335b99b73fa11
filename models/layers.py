"""Layer lists of imported models: the same dicts a preset's ``layers`` holds.

The importers (:mod:`models.onnx_import`, :mod:`models.hf`, :mod:`models.topology`) lower
a model to ``{name, cascade, ranks, params, repeat}`` layers with these helpers, so an
imported model runs exactly as the same layers written in a preset YAML would.

Element-wise layers (``add``, ``mul``, ``relu``, ``gelu``, ``silu``) are ``T x D``: ``D``
is the last dimension of the output and ``T`` the product of the others. Attention binds
the variant of :func:`models.attention.bind_variant` per head; a causal model's softmax
variants bind their ``-causal`` cascades (same ranks, keys ``p <= m``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Mapping

from einsum.analysis import op_counts
from einsum.errors import ConfigError, EinarrayWarning
from einsum.load import load_cascade

from .attention import bind_variant, infer_grid

ELEMENTWISE = ("add", "mul", "relu", "gelu", "silu")
CAUSAL_FORM = {"softmax-3pass": "softmax-3pass-causal", "softmax-2pass": "softmax-2pass-causal",
               "softmax-1pass": "softmax-1pass-causal", "performer": "performer-causal",
               "linear": "linear-causal"}
_CAUSAL = set(CAUSAL_FORM.values()) | {"retention", "retention-recurrent", "sliding-window-causal"}


def layer(name: str, cascade: str, ranks: Mapping[str, int], params: Mapping[str, float] | None = None,
          repeat: int = 1) -> dict[str, Any]:
    return {"name": name, "cascade": cascade, "ranks": {k: int(v) for k, v in ranks.items()},
            "params": dict(params or {}), "repeat": int(repeat)}


def gemm(name: str, M: int, K: int, N: int, repeat: int = 1) -> dict[str, Any]:
    """``C[m,n] = A[m,k] B[k,n]``, ``repeat`` times."""
    return layer(name, "gemm", {"M": M, "K": K, "N": N}, repeat=repeat)


def elementwise(name: str, cascade: str, shape: Iterable[int], repeat: int = 1) -> dict[str, Any]:
    """One element-wise layer over a tensor of ``shape`` (``T`` = all but the last dim)."""
    if cascade not in ELEMENTWISE:
        raise ValueError(f"{cascade} is not an element-wise cascade ({', '.join(ELEMENTWISE)})")
    shape = tuple(int(s) for s in shape) or (1,)
    return layer(name, cascade, {"T": math.prod(shape[:-1]), "D": shape[-1]}, repeat=repeat)


def norm(name: str, cascade: str, T: int, D: int, eps: float, repeat: int = 1) -> dict[str, Any]:
    """``layernorm`` or ``rmsnorm`` over ``D`` features of ``T`` tokens."""
    return layer(name, cascade, {"T": T, "D": D}, {"eps": float(eps)}, repeat)


def attention(name: str, variant: str, options: Mapping[str, Any] | None, *, tokens: int, keys: int,
              head_dim: int, heads: int, repeat: int, scale: float | None = None,
              causal: bool = False, grid: tuple[int, int] | None = None,
              value_dim: int | None = None) -> dict[str, Any]:
    """The attention core of ``repeat`` heads (of ``heads`` per block) as one layer.

    ``keys`` differs from ``tokens`` for cross-attention, which only the softmax variants
    (separate query and key ranks) bind. A causal model takes the variant's ``-causal``
    cascade where the library has one and warns where it has none. A bad option raises a
    :class:`ConfigError` whose ``ypath`` is the option."""
    opts = dict(options or {})
    if grid is None and variant in ("halo", "neighborhood-2d", "gmm-mask"):
        grid = infer_grid(tokens)
    b = bind_variant(variant, tokens=tokens, grid=grid or (1, tokens), head_dim=head_dim,
                     options=opts, heads=heads)
    cascade, ranks, params = b.cascade, dict(b.ranks), dict(b.params)
    if b.extra_projections or b.qkv_heads is not None:
        what = ", ".join(f"{s} ({rows} rows x {h} heads)" for s, rows, h in b.extra_projections) or \
            f"a QKV projection {b.qkv_heads} heads wide"
        warnings.warn(f"attention {name}: {variant} needs {what}; an imported model keeps the projections "
                      "of its own graph, so they are not costed as the variant would have them",
                      EinarrayWarning, stacklevel=2)
    if causal and cascade in CAUSAL_FORM:
        cascade = CAUSAL_FORM[cascade]
        if cascade == "performer-causal":
            ranks.pop("P", None)
    elif causal and cascade not in _CAUSAL:
        warnings.warn(f"attention {name}: the {cascade} cascade has no causal mask, so every query "
                      f"attends all {keys} keys (a causal model's attention does about half that work)",
                      EinarrayWarning, stacklevel=2)
    if keys != tokens:
        if "P" not in ranks:
            raise ConfigError(f"cross-attention ({tokens} queries, {keys} keys) needs a variant with "
                              f"separate query and key ranks (softmax-3pass, softmax-2pass, softmax-1pass); "
                              f"{variant} attends a sequence to itself")
        ranks["P"] = keys
        if "P0" in ranks:
            from .attention import key_chunk
            ranks["P0"] = key_chunk(keys, int(opts.get("chunk", 256)))
    if value_dim is not None and "F" in ranks:
        ranks["F"] = value_dim
    if scale is not None and "scale" in params:
        params["scale"] = float(scale)
    # one instance computes b.heads query heads (gqa: those sharing one key/value head)
    return layer(name, cascade, ranks, params, repeat // b.heads)


def layer_macs(lay: Mapping[str, Any]) -> int:
    """Multiply-accumulates of a layer: its cascade's sums of products, times ``repeat``."""
    c = load_cascade(lay["cascade"], ranks=dict(lay["ranks"]), params=dict(lay["params"]))
    return int(lay["repeat"]) * int(sum(oc.counts.get("mac", 0) for oc in op_counts(c).values()))


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name#2``, ``name#3``, ... if it is taken; records the result in ``used``."""
    out, k = name, 1
    while out in used:
        k += 1
        out = f"{name}#{k}"
    used.add(out)
    return out


def check_layers(layers: list[dict[str, Any]], file: str, where: Mapping[str, str] | None = None) -> None:
    """Load every layer's cascade at its shapes; a failure is a :class:`ConfigError` in
    ``file`` naming the layer (and ``where[name]``, the part of the file it came from)."""
    for lay in layers:
        try:
            load_cascade(lay["cascade"], ranks=dict(lay["ranks"]), params=dict(lay["params"]))
        except ConfigError as exc:
            at = (where or {}).get(lay["name"], f"layer {lay['name']!r}")
            raise ConfigError(f"{at} ({lay['cascade']} with ranks {lay['ranks']}): {exc.message}",
                              file) from None


def model(name: str, source: str, description: str, layers: list[dict[str, Any]], file: str,
          **extra: Any) -> dict[str, Any]:
    """An imported model in :func:`models.load_model`'s shape (batch 1, no sweep); ``extra``
    (``attention``, ``skipped``, ...) goes to the run's workload summary."""
    if not layers:
        raise ConfigError("the model has no layer with work to simulate", file)
    return {"name": name, "description": description, "source": source, "batch": 1,
            "layers": layers, "sweep": [], "file": file, "summary": extra}
