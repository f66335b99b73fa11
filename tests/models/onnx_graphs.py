"""Small ONNX graphs built with ``onnx.helper`` (random weights, no downloads) for the
importer's tests: a BERT-style encoder layer, a ViT patch embedding and block, a conv layer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class G:
    """A graph under construction: ``op(...)`` appends a node and returns its output name."""

    def __init__(self, prefix: str = ""):
        self.nodes, self.inits, self.prefix, self.k = [], [], prefix, 0
        self.rng = np.random.default_rng(0)

    def w(self, name: str, *shape: int, value=None) -> str:
        a = np.asarray(value, dtype=np.float32) if value is not None else \
            self.rng.standard_normal(shape).astype(np.float32)
        self.inits.append(numpy_helper.from_array(a, self.prefix + name))
        return self.prefix + name

    def i64(self, name: str, values) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), self.prefix + name))
        return self.prefix + name

    def op(self, op: str, *inputs: str, name: str | None = None, **attrs) -> str:
        self.k += 1
        n = self.prefix + (name or f"{op.lower()}{self.k}")
        self.nodes.append(helper.make_node(op, list(inputs), [n + ":0"], name=n, **attrs))
        return n + ":0"

    def save(self, path: Path, inputs, output: str, opset: int = 17) -> Path:
        out = helper.make_value_info(output, helper.make_tensor_type_proto(TensorProto.FLOAT, shape=None))
        g = helper.make_graph(self.nodes, "g", inputs, [out], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        inferred = onnx.shape_inference.infer_shapes(m)  # gives the output its type, as exporters do
        m.graph.output[0].CopyFrom(inferred.graph.output[0])
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, str(path))
        return path


def _inp(name: str, *dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _heads(g: G, x: str, nh: int, e: int, perm) -> str:
    return g.op("Transpose", g.op("Reshape", x, g.i64(f"shape{g.k}", [0, 0, nh, e])), perm=perm)


def _layernorm_written_out(g: G, x: str, d: int, eps: float) -> str:
    mu = g.op("ReduceMean", x, axes=[-1])
    xc = g.op("Sub", x, mu)
    var = g.op("ReduceMean", g.op("Pow", xc, g.w(f"two{g.k}", value=2.0)), axes=[-1])
    sd = g.op("Sqrt", g.op("Add", var, g.w(f"eps{g.k}", value=eps)))
    y = g.op("Div", xc, sd)
    return g.op("Add", g.op("Mul", y, g.w(f"gamma{g.k}", d)), g.w(f"beta{g.k}", d))


def _gelu_erf(g: G, x: str) -> str:
    e = g.op("Erf", g.op("Div", x, g.w(f"sqrt2_{g.k}", value=math.sqrt(2.0))))
    return g.op("Mul", g.op("Mul", x, g.op("Add", e, g.w(f"one{g.k}", value=1.0))), g.w(f"half{g.k}", value=0.5))


def bert_layer(path: Path, D: int = 32, NH: int = 4, I: int = 64) -> Path:
    """One BERT encoder layer (post-LN) over symbolic [batch, seq] inputs, exported as
    PyTorch does: separate Q/K/V MatMul + bias, per-head Reshape/Transpose, scores / sqrt(E)
    + mask, softmax, context, output projection, residual, LayerNorm written out, FFN with
    the erf GELU formula, residual, LayerNormalization."""
    E = D // NH
    g = G("layer.0/")
    x, mask = "x", "mask"
    proj = {}
    for t in "qkv":
        proj[t] = g.op("Add", g.op("MatMul", x, g.w(f"W{t}", D, D), name=f"attention/{t}"), g.w(f"b{t}", D),
                       name=f"attention/{t}_bias")
    q = _heads(g, proj["q"], NH, E, [0, 2, 1, 3])
    kt = _heads(g, proj["k"], NH, E, [0, 2, 3, 1])
    v = _heads(g, proj["v"], NH, E, [0, 2, 1, 3])
    s = g.op("MatMul", q, kt, name="attention/self/scores")
    s = g.op("Div", s, g.w("scale", value=math.sqrt(E)), name="attention/self/div")
    s = g.op("Add", s, mask, name="attention/self/mask")
    p = g.op("Softmax", s, axis=-1, name="attention/self/softmax")
    ctx = g.op("MatMul", p, v, name="attention/self/context")
    ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), g.i64("merge", [0, 0, D]))
    o = g.op("Add", g.op("MatMul", ctx, g.w("Wo", D, D), name="attention/output"), g.w("bo", D))
    h = _layernorm_written_out(g, g.op("Add", o, x, name="attention/residual"), D, 1e-12)
    f = g.op("Add", g.op("MatMul", h, g.w("W1", D, I), name="ffn/fc1"), g.w("b1", I))
    f = g.op("Add", g.op("MatMul", _gelu_erf(g, f), g.w("W2", I, D), name="ffn/fc2"), g.w("b2", D))
    y = g.op("LayerNormalization", g.op("Add", f, h, name="ffn/residual"), g.w("g2", D), g.w("be2", D),
             axis=-1, epsilon=1e-12, name="ffn/norm")
    return g.save(path, [_inp("x", "batch", "seq", D), _inp("mask", "batch", 1, 1, "seq")], y)


def vit(path: Path, img: int = 32, patch: int = 8, C: int = 3, D: int = 32, NH: int = 2, I: int = 64) -> Path:
    """A ViT: Conv patch embedding, class token, position embedding, one pre-LN block with a
    fused QKV MatMul split by Gather, Gelu (opset 20), and a final LayerNormalization."""
    E, n = D // NH, (img // patch) ** 2
    g = G()
    pe = g.op("Conv", "pixels", g.w("Wp", D, C, patch, patch), g.w("bp", D), strides=[patch, patch],
              name="embeddings/patch")
    pe = g.op("Transpose", g.op("Reshape", pe, g.i64("flat", [0, D, n])), perm=[0, 2, 1])
    t = g.op("Concat", g.w("cls", 1, 1, D), pe, axis=1)
    t = g.op("Add", t, g.w("pos", 1, n + 1, D), name="embeddings/pos")
    h = g.op("LayerNormalization", t, g.w("g1", D), g.w("b1", D), epsilon=1e-6, name="block/norm1")
    qkv = g.op("Add", g.op("MatMul", h, g.w("Wqkv", D, 3 * D), name="block/qkv"), g.w("bqkv", 3 * D))
    qkv = g.op("Transpose", g.op("Reshape", qkv, g.i64("split", [0, 0, 3, NH, E])), perm=[2, 0, 3, 1, 4])
    q, k, v = (g.op("Gather", qkv, g.i64(f"i{j}", j), axis=0) for j in range(3))
    s = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]), name="block/attn/scores"),
             g.w("scale", value=E ** -0.5), name="block/attn/scale")
    ctx = g.op("MatMul", g.op("Softmax", s, axis=-1, name="block/attn/softmax"), v, name="block/attn/context")
    ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), g.i64("merge", [0, 0, D]))
    o = g.op("Add", g.op("MatMul", ctx, g.w("Wo", D, D), name="block/proj"), g.w("bo", D))
    t = g.op("Add", o, t, name="block/residual1")
    h = g.op("LayerNormalization", t, g.w("g2", D), g.w("b2", D), epsilon=1e-6, name="block/norm2")
    f = g.op("Gelu", g.op("Add", g.op("MatMul", h, g.w("W1", D, I), name="block/fc1"), g.w("bf1", I)))
    f = g.op("Add", g.op("MatMul", f, g.w("W2", I, D), name="block/fc2"), g.w("bf2", D))
    t = g.op("Add", f, t, name="block/residual2")
    y = g.op("LayerNormalization", t, g.w("g3", D), g.w("b3", D), epsilon=1e-6, name="norm")
    return g.save(path, [_inp("pixels", 1, C, img, img)], y, opset=20)


def conv_relu(path: Path, C: int = 8, H: int = 16, Co: int = 16, k: int = 3, stride: int = 2,
              pad: int = 1, group: int = 1, bias: bool = True) -> Path:
    """Conv (pads, stride, groups, optional bias) -> Relu."""
    g = G()
    ins = ["img", g.w("W", Co, C // group, k, k)] + ([g.w("b", Co)] if bias else [])
    y = g.op("Conv", *ins, strides=[stride, stride], pads=[pad] * 4, group=group, name="conv")
    y = g.op("Relu", y, name="relu")
    return g.save(path, [_inp("img", 1, C, H, H)], y)


def with_node(path: Path, op: str, name: str) -> Path:
    """A MatMul followed by one node of ``op`` (an operator the importer lacks)."""
    g = G()
    y = g.op("MatMul", "x", g.w("W", 8, 8), name="mm")
    y = g.op(op, y, name=name)
    return g.save(path, [_inp("x", 4, 8)], y)


def _gelu_tanh(g: G, x: str) -> str:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as GPT-2 exports it."""
    inner = g.op("Add", x, g.op("Mul", g.w(f"c{g.k}", value=0.044715), g.op("Pow", x, g.w(f"three{g.k}", value=3.0))))
    t = g.op("Tanh", g.op("Mul", g.w(f"s{g.k}", value=math.sqrt(2 / math.pi)), inner))
    return g.op("Mul", g.op("Mul", g.w(f"h{g.k}", value=0.5), x), g.op("Add", g.w(f"one{g.k}", value=1.0), t))


def mlp_forms(path: Path, T: int = 6, D: int = 16, I: int = 24) -> Path:
    """Gemm (transB) + bias -> tanh GELU -> Gemm; x * Sigmoid(x); a lone Softmax."""
    g = G()
    h = g.op("Gemm", "x", g.w("W1", I, D), g.w("b1", I), transB=1, name="fc1")
    h = _gelu_tanh(g, h)
    h = g.op("Gemm", h, g.w("W2", I, D), name="fc2")
    h = g.op("Mul", h, g.op("Sigmoid", h, name="act/sigmoid"), name="act/mul")
    y = g.op("Softmax", h, axis=-1, name="probs")
    return g.save(path, [_inp("x", T, D)], y)


def cnn(path: Path, C: int = 3, H: int = 16, F: int = 8, classes: int = 10) -> Path:
    """Conv -> BatchNormalization -> Relu -> MaxPool 3x3/2 -> Conv 1x1 -> GlobalAveragePool ->
    Flatten -> Gemm: a ResNet stem and head in miniature."""
    g = G()
    y = g.op("Conv", "img", g.w("W1", F, C, 3, 3), pads=[1] * 4, name="stem/conv")
    y = g.op("BatchNormalization", y, g.w("s", F), g.w("b", F), g.w("m", F), g.w("v", F, value=np.ones(F)),
             name="stem/bn")
    y = g.op("MaxPool", g.op("Relu", y, name="stem/relu"), kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4,
             name="stem/pool")
    y = g.op("Conv", y, g.w("W2", 2 * F, F, 1, 1), name="block/conv")
    y = g.op("Flatten", g.op("GlobalAveragePool", y, name="head/pool"))
    y = g.op("Gemm", y, g.w("Wfc", 2 * F, classes), g.w("bfc", classes), name="head/fc")
    return g.save(path, [_inp("img", 1, C, H, H)], y)
