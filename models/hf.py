"""Import a Hugging Face model config (``config.json``) as a model's layers.

``workload: {hf: config.json, tokens: 512}`` reads the JSON itself (no ``transformers``)
and lowers the encoder or decoder stack of one input of ``tokens`` tokens, the blocks
folded by ``repeat`` as in a preset:

==================  ===========================================================================
model_type          one block (``repeat`` = number of layers)
==================  ===========================================================================
bert, roberta       post-LN encoder: fused QKV GEMM, attention per head, output GEMM, residual
                    add, LayerNorm, FFN (GEMM, activation, GEMM), residual add, LayerNorm; the
                    embeddings' two adds (position, token type) and LayerNorm before the blocks
vit                 pre-LN encoder over (image_size / patch_size)^2 patches + the class token
                    (``tokens`` comes from the image); patch embedding GEMM, position add
gpt2                pre-LN causal decoder (``n_inner``: 4 x n_embd by default); position add
llama, mistral      pre-RMSNorm causal decoder, QKV GEMM of (heads + 2 kv_heads) heads; grouped
                    queries (``num_key_value_heads < num_attention_heads``) run the ``gqa``
                    cascade with ``kv_heads`` = num_key_value_heads; SwiGLU MLP
t5                  pre-RMSNorm encoder (the encoder stack), unscaled attention (scale 1),
                    ``feed_forward_proj`` relu or gated-gelu
==================  ===========================================================================

Costing: every GEMM is ``gemm`` (biases are part of their GEMM's output and not costed),
residual connections are ``add`` layers, activations ``gelu`` (also for gelu_new and the
tanh forms), ``relu`` or ``silu``. SwiGLU is ``down(silu(gate(x)) * up(x))``: the gate and
up GEMMs, ``silu`` on the gate, the element-wise product ``mul``, the down GEMM. A causal
model's softmax variants bind their ``-causal`` cascades. Left out (say so when comparing):
embedding lookups (table reads), rotary position embeddings, T5's relative position bias,
the attention mask, pooler and task or LM heads.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

from einsum.errors import ConfigError, EinarrayWarning
from einsum.yamlsrc import Source, loads as yaml_loads

from .layers import attention, check_layers, elementwise, gemm, model, norm

SUPPORTED = ("bert", "roberta", "vit", "gpt2", "llama", "mistral", "t5")
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
               "quick_gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}


class _Config:
    """The JSON with the line of every key (JSON is YAML, so the YAML loader finds them)."""

    def __init__(self, path: Path):
        self.file = str(path)
        text = path.read_text(encoding="utf-8")
        try:
            self.data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", self.file, exc.lineno) from None
        if not isinstance(self.data, dict):
            raise ConfigError("expected a JSON object (a Hugging Face config.json)", self.file, 1)
        try:
            self.src = yaml_loads(text, self.file)[1]
        except ConfigError:
            self.src = Source(self.file)

    def error(self, key: str | tuple, msg: str) -> ConfigError:
        path = (key,) if isinstance(key, str) else key
        return self.src.error(path, msg)

    def int(self, key: str, default: Any = ..., *, minimum: int = 1) -> int:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise ConfigError(f"missing {key!r} (a {self.data.get('model_type')} config needs it)",
                                  self.file, 1)
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {v!r}")
        return v

    def num(self, key: str, default: float) -> float:
        v = self.data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise self.error(key, f"expected a non-negative number, got {v!r}")
        return float(v)

    def act(self, key: str, default: str) -> str:
        v = self.data.get(key, default)
        if v not in ACTIVATIONS:
            raise self.error(key, f"activation {v!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
        return ACTIVATIONS[v]


def import_hf(path: str | Path, *, tokens: int | None = None, attention_variant: str | None = None,
              options: Mapping[str, Any] | None = None, grid: tuple[int, int] | None = None) -> dict[str, Any]:
    """Lower the config at ``path`` to a model in :func:`models.load_model`'s shape.

    Workload mistakes (no ``tokens``, a ``kv_heads`` the config contradicts) raise a
    :class:`ConfigError` without a file whose ``ypath`` names the workload key; config
    mistakes name the JSON file, line and key."""
    cfg = _Config(Path(path))
    mt = cfg.data.get("model_type")
    if mt not in SUPPORTED:
        where = cfg.error("model_type", "") if "model_type" in cfg.data else None
        raise ConfigError(f"model_type {mt!r} is not supported (supported: {', '.join(SUPPORTED)})",
                          cfg.file, where.line if where else 1, ("model_type",) if where else ())
    opts = dict(options or {})
    b = _Builder(cfg, mt, attention_variant, opts, grid)
    if mt == "vit":
        if tokens is not None:
            raise ConfigError("a ViT's tokens come from its image_size and patch_size; leave tokens out",
                              ypath=("tokens",))
        b.vit()
    else:
        if tokens is None:
            raise ConfigError(f"a {mt} model needs the sequence length: give workload.tokens", ypath=("tokens",))
        limit = cfg.int({"gpt2": "n_positions", "t5": "n_positions"}.get(mt, "max_position_embeddings"), 0,
                        minimum=0)
        if limit and tokens > limit:
            warnings.warn(f"{cfg.file}: {tokens} tokens is more than the {limit} positions the model was "
                          "trained for", EinarrayWarning, stacklevel=2)
        getattr(b, {"roberta": "bert", "mistral": "llama"}.get(mt, mt))(tokens)
    check_layers(b.layers, cfg.file)
    name = Path(path).parent.name if Path(path).name == "config.json" else Path(path).stem
    return model(name, f"Hugging Face config {Path(path).name} (model_type {mt})",
                 f"{mt} from {Path(path).name}: {b.describe}", b.layers, cfg.file,
                 attention=b.variant, options=b.options)


class _Builder:
    def __init__(self, cfg: _Config, mt: str, variant: str | None, options: dict[str, Any], grid):
        self.cfg, self.mt, self.grid = cfg, mt, grid
        self.variant, self.options = variant or "softmax-3pass", options
        self.variant_given = variant is not None
        self.layers: list[dict[str, Any]] = []
        self.describe = ""

    def add(self, lay: dict[str, Any]) -> None:
        self.layers.append(lay)

    def heads(self, D: int, NH: int, key: str = "hidden_size") -> int:
        if D % NH:
            raise self.cfg.error(key, f"{key} {D} is not a multiple of the {NH} attention heads")
        return D // NH

    def block(self, *, T: int, D: int, NH: int, E: int, L: int, causal: bool, kv: int | None = None,
              scale: float | None = None, norm_kind: str = "layernorm", eps: float, post_ln: bool = False,
              ffn: list[dict[str, Any]]) -> None:
        """One attention sublayer and one FFN sublayer, ``L`` times."""
        kv = kv or NH
        variant, options = self.variant, self.options
        if kv < NH and variant == "gqa":
            given = options.get("kv_heads", kv)
            if given != kv:
                raise ConfigError(f"the model has {kv} key/value heads (num_key_value_heads), not {given}",
                                  ypath=("kv_heads",))
            options = {**options, "kv_heads": kv}
        pre = [] if post_ln else [norm("attn.norm", norm_kind, T, D, eps, L)]
        self.layers += pre + [
            gemm("attn.qkv", T, D, (NH + 2 * kv) * E, L),
            attention(f"attn.{variant}", variant, options, tokens=T, keys=T, head_dim=E, heads=NH,
                      repeat=L * NH, scale=scale, causal=causal, grid=self.grid),
            gemm("attn.out", T, NH * E, D, L),
            elementwise("attn.residual", "add", (T, D), L)]
        if post_ln:
            self.add(norm("attn.norm", norm_kind, T, D, eps, L))
        else:
            self.add(norm("ffn.norm", norm_kind, T, D, eps, L))
        self.layers += ffn + [elementwise("ffn.residual", "add", (T, D), L)]
        if post_ln:
            self.add(norm("ffn.norm", norm_kind, T, D, eps, L))
        self.describe = (f"{L} blocks, {T} tokens, d = {D}, {NH} heads of {E}"
                         + (f" ({kv} key/value heads)" if kv < NH else ""))

    def _ffn(self, T: int, D: int, I: int, L: int, act: str) -> list[dict[str, Any]]:
        return [gemm("ffn.fc1", T, D, I, L), elementwise(f"ffn.{act}", act, (T, I), L),
                gemm("ffn.fc2", T, I, D, L)]

    def bert(self, T: int) -> None:
        c = self.cfg
        D, NH, L, I = c.int("hidden_size"), c.int("num_attention_heads"), c.int("num_hidden_layers"), \
            c.int("intermediate_size")
        eps = c.num("layer_norm_eps", 1e-12)
        self.add(elementwise("embed.add", "add", (T, D), 2))  # + position, + token type
        self.add(norm("embed.norm", "layernorm", T, D, eps))
        self.block(T=T, D=D, NH=NH, E=self.heads(D, NH), L=L, causal=False, eps=eps, post_ln=True,
                   ffn=self._ffn(T, D, I, L, c.act("hidden_act", "gelu")))

    def vit(self) -> None:
        c = self.cfg
        D, NH, L, I = c.int("hidden_size"), c.int("num_attention_heads"), c.int("num_hidden_layers"), \
            c.int("intermediate_size")
        img, patch, C = c.int("image_size", 224), c.int("patch_size", 16), c.int("num_channels", 3)
        if img % patch:
            raise c.error("patch_size", f"patch_size {patch} does not divide image_size {img}")
        g = img // patch
        T = g * g + 1
        self.grid = self.grid or (g, g)
        eps = c.num("layer_norm_eps", 1e-12)
        self.add(gemm("patch-embed", g * g, C * patch * patch, D))
        self.add(elementwise("embed.pos", "add", (T, D)))
        self.block(T=T, D=D, NH=NH, E=self.heads(D, NH), L=L, causal=False, eps=eps,
                   ffn=self._ffn(T, D, I, L, c.act("hidden_act", "gelu")))
        self.add(norm("final-norm", "layernorm", T, D, eps))

    def gpt2(self, T: int) -> None:
        c = self.cfg
        D, NH, L = c.int("n_embd"), c.int("n_head"), c.int("n_layer")
        I = c.int("n_inner", 4 * D)
        eps = c.num("layer_norm_epsilon", 1e-5)
        self.add(elementwise("embed.pos", "add", (T, D)))
        self.block(T=T, D=D, NH=NH, E=self.heads(D, NH, "n_embd"), L=L, causal=True, eps=eps,
                   ffn=self._ffn(T, D, I, L, c.act("activation_function", "gelu_new")))
        self.add(norm("final-norm", "layernorm", T, D, eps))

    def llama(self, T: int) -> None:
        c = self.cfg
        D, NH, L, I = c.int("hidden_size"), c.int("num_attention_heads"), c.int("num_hidden_layers"), \
            c.int("intermediate_size")
        kv = c.int("num_key_value_heads", NH)
        if NH % kv:
            raise c.error("num_key_value_heads", f"{kv} key/value heads do not divide the {NH} attention heads")
        E = c.int("head_dim", 0, minimum=0) or self.heads(D, NH)
        if kv < NH and not self.variant_given:
            self.variant = "gqa"
        window = c.data.get("sliding_window")
        if isinstance(window, int) and not isinstance(window, bool) and 0 < window < T:
            warnings.warn(f"{c.file}: the {window}-token sliding window is not modelled: every query "
                          f"attends all earlier tokens of the {T}", EinarrayWarning, stacklevel=3)
        act = c.act("hidden_act", "silu")
        eps = c.num("rms_norm_eps", 1e-6)
        self.block(T=T, D=D, NH=NH, E=E, L=L, kv=kv, causal=True, norm_kind="rmsnorm", eps=eps,
                   ffn=[gemm("ffn.gate", T, D, I, L), gemm("ffn.up", T, D, I, L),
                        elementwise(f"ffn.{act}", act, (T, I), L), elementwise("ffn.mul", "mul", (T, I), L),
                        gemm("ffn.down", T, I, D, L)])
        self.add(norm("final-norm", "rmsnorm", T, D, eps))

    def t5(self, T: int) -> None:
        c = self.cfg
        D, NH, L, I = c.int("d_model"), c.int("num_heads"), c.int("num_layers"), c.int("d_ff")
        E = c.int("d_kv", D // NH)
        eps = c.num("layer_norm_epsilon", 1e-6)
        proj = c.data.get("feed_forward_proj", "relu")
        gated = isinstance(proj, str) and proj.startswith("gated-")
        act = proj[len("gated-"):] if gated else proj
        if act not in ("relu", "gelu", "gelu_new", "silu"):
            raise c.error("feed_forward_proj", f"feed_forward_proj {proj!r} is not supported (supported: relu, "
                          "gelu, gated-gelu, gated-silu, ...)")
        act = ACTIVATIONS[act]
        ffn = ([gemm("ffn.wi_0", T, D, I, L), gemm("ffn.wi_1", T, D, I, L),
                elementwise(f"ffn.{act}", act, (T, I), L), elementwise("ffn.mul", "mul", (T, I), L)]
               if gated else [gemm("ffn.wi", T, D, I, L), elementwise(f"ffn.{act}", act, (T, I), L)])
        self.block(T=T, D=D, NH=NH, E=E, L=L, causal=False, scale=1.0, norm_kind="rmsnorm", eps=eps,
                   ffn=ffn + [gemm("ffn.wo", T, I, D, L)])
        self.add(norm("final-norm", "rmsnorm", T, D, eps))


__all__ = ["import_hf", "SUPPORTED"]
