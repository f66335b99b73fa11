"""Import an ONNX graph as a model: shape inference, then one layer per operator that computes.

``workload: {onnx: model.onnx, ranks: {seq: 512}}`` reads the graph with the ``onnx``
package (``pip install einarray[onnx]``), binds its symbolic dimensions (``dim_param``
names) to ``ranks``, infers every shape (``onnx.shape_inference``, with data propagation
so shapes computed by Shape/Gather/Concat resolve) and lowers the nodes, in graph order:

=====================================  ====================================================
ONNX                                   layer
=====================================  ====================================================
MatMul (batched, broadcasting), Gemm   ``gemm`` M x K x N; the output's batch dims multiply
                                       ``repeat``; Gemm's C is an ``add`` layer
Conv (1-D/2-D, groups)                 im2col ``gemm``: M = output pixels, K = C_in/g * kh *
                                       kw, N = C_out/g, repeat = batch x groups (SCALE-Sim's
                                       mapping); a bias is an ``add`` layer
MatMul -> [Div/Mul scale] -> [Add      the attention variant (``workload.attention``, default
mask] -> Softmax -> MatMul             softmax-3pass) per head; the graph's scale is kept,
                                       the mask add is part of the softmax
LayerNormalization, or ReduceMean ->   ``layernorm`` (eps from the graph)
Sub -> Pow -> ReduceMean -> Add ->
Sqrt -> Div [-> Mul -> Add]
RMSNormalization                       ``rmsnorm``
Gelu, or the Erf/Tanh formula          ``gelu``
Sigmoid -> Mul by its input            ``silu``
Relu; Add, Sub; Mul, Div by a constant ``relu``; ``add``; ``mul``
MaxPool, AveragePool, Global*Pool      ``maxpool``, ``avgpool`` in im2col form: T = batch x
                                       output pixels, K = window, D = channels
BatchNormalization                     ``mul`` and ``add`` (inference: a scale and a shift
                                       per channel)
Reshape, Transpose, Identity, ...      nothing (data movement; see ``FREE``)
=====================================  ====================================================

A node whose inputs are all constants (initializers, Constant, shapes) is folded: it
costs nothing. Any other operator is an error naming the node, unless
``onnx_skip_unknown: true``, which skips it with a warning and lists it in the run's
``workload.skipped``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Mapping

from einsum.errors import ConfigError, EinarrayWarning

from .layers import attention, check_layers, elementwise, gemm, layer, model, norm, unique_name

FREE = ("Reshape", "Transpose", "Identity", "Constant", "Shape", "Gather", "Squeeze", "Unsqueeze",
        "Flatten", "Cast", "Dropout", "Concat", "Slice", "Expand", "ConstantOfShape", "Range")
LOWERED = ("MatMul", "Gemm", "Conv", "LayerNormalization", "RMSNormalization", "Gelu", "Relu", "Add", "Sub",
           "Mul", "Div", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool", "BatchNormalization")
SUPPORTED = tuple(sorted(FREE + LOWERED))
# operators lowered only as part of a subgraph (attention, a written-out LayerNorm, GELU, SiLU)
IN_SUBGRAPHS = "Softmax in attention, ReduceMean/Pow/Sqrt in a LayerNorm, Erf/Tanh in GELU, Sigmoid in SiLU"
_ARITH = {"Add", "Sub", "Mul", "Div", "Pow", "Erf", "Tanh"}


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - the [onnx] extra is part of [dev]
        raise ConfigError("reading an ONNX model needs the onnx package: pip install 'einarray[onnx]'") from None
    return onnx


class _Graph:
    """Shapes, constants, producers and consumers of an inferred ONNX graph."""

    def __init__(self, g, file: str):
        from onnx import numpy_helper
        import onnx as onnx_pb

        self.file = file
        self.nodes = list(g.node)
        self.index = {id(n): i for i, n in enumerate(self.nodes)}
        self.shape: dict[str, tuple[int, ...] | None] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            if not t.HasField("shape"):
                self.shape[vi.name] = None
                continue
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            self.shape[vi.name] = None if None in dims else tuple(dims)
        self.value: dict[str, Any] = {}  # small constants (scales, eps, exponents) by value
        for init in g.initializer:
            self.shape[init.name] = tuple(init.dims)
            if math.prod(init.dims) <= 64 and init.data_location != onnx_pb.TensorProto.EXTERNAL:
                self.value[init.name] = numpy_helper.to_array(init)
        self.const = {init.name for init in g.initializer}
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        for n in self.nodes:  # constant folding: shapes and constants cost nothing
            ins = [i for i in n.input if i]
            if n.op_type in ("Constant", "Shape", "ConstantOfShape") or (ins and all(i in self.const for i in ins)):
                self.const.update(n.output)
                if n.op_type == "Constant":
                    for a in n.attribute:
                        if a.name == "value":
                            self.value[n.output[0]] = numpy_helper.to_array(a.t)
                        elif a.name in ("value_float", "value_int"):
                            self.value[n.output[0]] = a.f if a.name == "value_float" else a.i

    def name(self, n) -> str:
        return n.name or f"{n.op_type}_{self.index[id(n)]}"

    def error(self, n, msg: str) -> ConfigError:
        return ConfigError(f"node '{self.name(n)}' (op {n.op_type}): {msg}", self.file)

    def dims(self, n, t: str) -> tuple[int, ...]:
        s = self.shape.get(t)
        if s is None:
            raise self.error(n, f"the shape of '{t}' is unknown after shape inference (bind every "
                             "symbolic dimension in workload.ranks)")
        return s

    def scalar(self, t: str) -> float | None:
        """The value of a constant single-element tensor, else None."""
        v = self.value.get(t)
        if v is None:
            p = self.producer.get(t)  # a Cast or Identity of a constant
            if p is not None and p.op_type in ("Cast", "Identity") and p.input:
                return self.scalar(p.input[0])
            return None
        try:
            import numpy as np
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            return None
        return float(a.reshape(-1)[0]) if a.size == 1 else None

    def attr(self, n, name: str, default: Any) -> Any:
        from onnx import helper
        for a in n.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def only_consumer(self, t: str):
        c = self.consumers.get(t, [])
        return c[0] if len(c) == 1 else None

    def other(self, n, t: str) -> str | None:
        """The input of a binary node that is not ``t``."""
        ins = [i for i in n.input if i]
        if len(ins) != 2 or t not in ins:
            return None
        return ins[1] if ins[0] == t else ins[0]


def _bind(m, ranks: Mapping[str, int], file: str, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Replace the graph inputs' symbolic dimensions by the sizes in ``ranks``; those of
    ``overrides`` (the command line's ``--rank``) that name a symbolic dimension win.
    Returns every symbolic dimension's size."""
    params: dict[str, list[str]] = {}
    for vi in m.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                params.setdefault(d.dim_param, []).append(vi.name)
    ranks = {**ranks, **{r: v for r, v in (overrides or {}).items() if r in params or r in ranks}}
    for r in ranks:
        if r not in params:
            raise ConfigError(f"the graph has no symbolic dimension {r!r} (its symbolic dimensions: "
                              f"{', '.join(sorted(params)) or 'none'})", ypath=("ranks", r))
    missing = sorted(set(params) - set(ranks))
    if missing:
        ex = ", ".join(f"{p}: N" for p in missing)
        raise ConfigError(f"{file} has symbolic dimensions {', '.join(missing)} (of input "
                          f"{', '.join(sorted({i for p in missing for i in params[p]}))}); give their sizes "
                          f"as workload.ranks: {{{ex}}} (or on the command line, --rank "
                          f"{missing[0]}=N)", ypath=("ranks",))
    for vi in m.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.dim_value = int(ranks[d.dim_param])
    return {p: int(ranks[p]) for p in sorted(params)}


def import_onnx(path: str | Path, *, ranks: Mapping[str, int] | None = None, attention_variant: str | None = None,
                options: Mapping[str, Any] | None = None, grid: tuple[int, int] | None = None,
                skip_unknown: bool = False, rank_overrides: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Lower the ONNX model at ``path`` to a model in :func:`models.load_model`'s shape.

    ``rank_overrides`` (``einarray run --rank seq=1024``) set symbolic dimensions over
    ``ranks``; names that are not symbolic dimensions are left for the layers' ranks.
    ``summary.symbolic_dims`` records the size each symbolic dimension was bound to.

    Config mistakes (an unbound or unknown symbolic dimension) raise a :class:`ConfigError`
    whose ``ypath`` is under the workload section (``ranks.seq``); graph problems name the
    file and the node. ``summary`` holds ``attention``, ``options`` and ``skipped``."""
    onnx = _onnx()
    file = str(path)
    try:
        m = onnx.load(file, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ConfigError(f"not a readable ONNX model ({type(exc).__name__}: {exc})", file) from None
    bound = _bind(m, dict(ranks or {}), file, rank_overrides)
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise ConfigError(f"shape inference failed: {str(exc).strip().splitlines()[-1]}", file) from None
    g = _Graph(m.graph, file)
    variant = attention_variant or "softmax-3pass"
    low = _Lowering(g, variant, dict(options or {}), grid)
    skipped: list[dict[str, str]] = []

    def unsupported(n, exc: ConfigError) -> None:
        if not skip_unknown:
            raise exc
        skipped.append({"node": g.name(n), "op": n.op_type, "why": exc.message})

    for n in g.nodes:  # subgraphs first (attention, LayerNorm, GELU, SiLU written out)
        if n.op_type in ANCHORS and id(n) not in low.group_of and not _folded(g, n):
            try:
                low.match(n)
            except ConfigError as exc:
                if exc.ypath:
                    raise
                unsupported(n, exc)
                low.done.add(id(n))
    for n in g.nodes:
        if id(n) in low.group_of:
            low.emit_group(n)
            continue
        if id(n) in low.done or _folded(g, n) or n.op_type in FREE:
            continue
        fn = getattr(low, f"op_{n.op_type}", None)
        if fn is None:
            unsupported(n, g.error(n, f"not supported (supported: {', '.join(SUPPORTED)}; {IN_SUBGRAPHS}); "
                                   "workload.onnx_skip_unknown: true skips such nodes"))
            continue
        fn(n)
    if skipped:
        ops = sorted({s["op"] for s in skipped})
        warnings.warn(f"{file}: skipped {len(skipped)} node(s) of unsupported ops {', '.join(ops)} "
                      f"(first: {skipped[0]['node']}); their work is not in the results",
                      EinarrayWarning, stacklevel=2)
    check_layers(low.layers, file, low.where)
    stem = Path(file).stem
    return model(stem, f"ONNX graph {Path(file).name}",
                 f"{stem} imported from ONNX ({len(g.nodes)} nodes, {len(low.layers)} layers)",
                 low.layers, file, attention=variant, options=dict(options or {}), skipped=skipped,
                 symbolic_dims=bound)


def _folded(g: _Graph, n) -> bool:
    """A node computing only constants (shapes, folded weights) costs nothing."""
    return bool(n.output) and all(o in g.const for o in n.output if o)


ANCHORS = ("Softmax", "ReduceMean", "Erf", "Tanh", "Sigmoid")


class _Lowering:
    def __init__(self, g: _Graph, variant: str, options: dict[str, Any], grid):
        self.g, self.variant, self.options, self.grid = g, variant, options, grid
        self.layers: list[dict[str, Any]] = []
        self.where: dict[str, str] = {}
        self.done: set[int] = set()
        self.used: set[str] = set()
        self.group_of: dict[int, int] = {}  # node -> its subgraph's index in self.groups
        self.groups: list[tuple[Any, dict[str, Any]]] = []  # (anchor node, its layer)

    def emit(self, n, lay: dict[str, Any], suffix: str = "") -> None:
        lay["name"] = unique_name(lay["name"] or self.g.name(n) + suffix, self.used)
        self.where[lay["name"]] = f"node '{self.g.name(n)}' (op {n.op_type})"
        self.layers.append(lay)

    def match(self, n) -> None:
        """Lower the subgraph anchored at ``n`` to one layer, run where its first node is."""
        lay, nodes = getattr(self, f"sub_{n.op_type}")(n)
        for x in nodes:
            self.group_of[id(x)] = len(self.groups)
        self.groups.append((n, lay))

    def emit_group(self, n) -> None:
        gi = self.group_of[id(n)]
        anchor, lay = self.groups[gi]
        if lay is not None:
            self.emit(anchor, lay)
            self.groups[gi] = (anchor, None)

    # -- GEMMs ----------------------------------------------------------------------
    def op_MatMul(self, n) -> None:
        a, b = (self.g.dims(n, t) for t in n.input[:2])
        out = self.g.dims(n, n.output[0])
        M = a[-2] if len(a) >= 2 else 1
        K = a[-1]
        N = b[-1] if len(b) >= 2 else 1
        batch = math.prod(out[:-2]) if len(a) >= 2 and len(b) >= 2 else math.prod(out[:-1])
        self.emit(n, gemm("", M, K, N, batch))

    def op_Gemm(self, n) -> None:
        a, b = (self.g.dims(n, t) for t in n.input[:2])
        M, K = (a[1], a[0]) if self.g.attr(n, "transA", 0) else a
        N = b[0] if self.g.attr(n, "transB", 0) else b[1]
        self.emit(n, gemm("", M, K, N))
        if len(n.input) > 2 and n.input[2]:
            self.emit(n, elementwise("", "add", (M, N)), ".bias")

    def op_Conv(self, n) -> None:
        x, w = (self.g.dims(n, t) for t in n.input[:2])
        out = self.g.dims(n, n.output[0])
        if len(x) not in (3, 4):
            raise self.g.error(n, f"only 1-D and 2-D convolutions lower to a GEMM (input {x})")
        groups = int(self.g.attr(n, "group", 1))
        M = math.prod(out[2:])  # output pixels
        K = w[1] * math.prod(w[2:])  # C_in / groups x kernel window
        N = w[0] // groups
        self.emit(n, gemm("", M, K, N, out[0] * groups))
        if len(n.input) > 2 and n.input[2]:
            self.emit(n, elementwise("", "add", (out[0] * M, out[1])), ".bias")

    # -- attention ------------------------------------------------------------------
    def sub_Softmax(self, n):
        g = self.g
        chain, t, scale = [n], n.input[0], 1.0
        while True:  # back through the mask add and the scale to the scores' MatMul
            p = g.producer.get(t)
            if p is None or len(g.consumers.get(t, [])) != 1:
                break
            if p.op_type == "Add":
                chain.append(p)
                t = next((i for i in p.input if i in g.producer and g.producer[i].op_type in ("MatMul", "Div", "Mul")
                          and i not in g.const), p.input[0])
                continue
            side = 1 if p.op_type == "Div" or g.scalar(p.input[0]) is None else 0  # Mul(c, x) or Mul(x, c)
            if p.op_type in ("Div", "Mul") and (c := g.scalar(p.input[side])) is not None and c != 0:
                chain.append(p)
                scale *= 1 / c if p.op_type == "Div" else c
                t = p.input[1 - side]
                continue
            break
        qk = g.producer.get(t)
        probs = n.output[0]
        av = g.only_consumer(probs)
        while av is not None and av.op_type in ("Cast", "Dropout", "Identity"):
            chain.append(av)
            probs = av.output[0]
            av = g.only_consumer(probs)
        if (qk is None or qk.op_type != "MatMul" or any(i in g.const for i in qk.input)
                or av is None or av.op_type != "MatMul" or av.input[0] != probs):
            raise g.error(n, "a softmax is supported as attention: MatMul -> [Div/Mul by a scale] -> "
                          "[Add mask] -> Softmax -> MatMul")
        q, kt = g.dims(qk, qk.input[0]), g.dims(qk, qk.input[1])
        v, out = g.dims(av, av.input[1]), g.dims(av, av.output[0])
        M, E, P, F = q[-2], q[-1], kt[-1], v[-1]
        batch = out[:-2]
        heads = batch[-1] if len(batch) >= 1 else 1
        prefix = _prefix([g.name(x) for x in [qk, *chain, av]])
        try:
            lay = attention(f"{prefix}{self.variant}" if prefix else f"{g.name(n)}.{self.variant}", self.variant, self.options, tokens=M, keys=P,
                            head_dim=E, value_dim=F, heads=heads, repeat=math.prod(batch), scale=scale,
                            grid=self.grid)
        except ConfigError as exc:
            if exc.ypath:
                raise
            raise g.error(n, exc.message) from None
        return lay, [qk, *chain, av]

    # -- normalisation ----------------------------------------------------------------
    def op_LayerNormalization(self, n) -> None:
        x = self.g.dims(n, n.input[0])
        axis = int(self.g.attr(n, "axis", -1)) % len(x)
        self.emit(n, norm("", "layernorm", math.prod(x[:axis]), math.prod(x[axis:]),
                          _f32(self.g.attr(n, "epsilon", 1e-5))))

    def op_RMSNormalization(self, n) -> None:
        x = self.g.dims(n, n.input[0])
        axis = int(self.g.attr(n, "axis", -1)) % len(x)
        self.emit(n, norm("", "rmsnorm", math.prod(x[:axis]), math.prod(x[axis:]),
                          _f32(self.g.attr(n, "epsilon", 1e-5))))

    def sub_ReduceMean(self, n):
        """LayerNorm written out: mean, x - mean, its square's mean + eps, sqrt, divide."""
        g, x = self.g, n.input[0]
        fail = g.error(n, "a ReduceMean is supported as part of a LayerNorm: ReduceMean -> Sub -> "
                       "Pow -> ReduceMean -> Add eps -> Sqrt -> Div [-> Mul gamma -> Add beta]")
        sub = next((c for c in g.consumers.get(n.output[0], []) if c.op_type == "Sub" and c.input[0] == x), None)
        if sub is None:
            raise fail
        d = sub.output[0]
        uses = g.consumers.get(d, [])
        sq = next((c for c in uses if c.op_type == "Pow" and g.scalar(c.input[1]) == 2
                   or c.op_type == "Mul" and c.input[0] == c.input[1] == d), None)
        div = next((c for c in uses if c.op_type == "Div" and c.input[0] == d), None)
        r2 = sq and g.only_consumer(sq.output[0])
        add = r2 and r2.op_type == "ReduceMean" and g.only_consumer(r2.output[0])
        sqrt = add and add.op_type == "Add" and g.only_consumer(add.output[0])
        if not (div and sqrt and sqrt.op_type == "Sqrt" and div.input[1] == sqrt.output[0]):
            raise fail
        eps = g.scalar(g.other(add, r2.output[0]) or "")
        nodes, t = [n, sub, sq, r2, add, sqrt, div], div.output[0]
        for op in ("Mul", "Add"):  # the affine gain and bias
            c = g.only_consumer(t)
            if c is not None and c.op_type == op and g.other(c, t) in g.const:
                nodes.append(c)
                t = c.output[0]
        shape = g.dims(n, x)
        D = math.prod(shape) // math.prod(g.dims(n, n.output[0]))
        return norm(_named(g, nodes, "layernorm"), "layernorm", math.prod(shape) // D, D,
                    _f32(eps if eps is not None else 1e-5)), nodes

    # -- activations ----------------------------------------------------------------
    def op_Gelu(self, n) -> None:
        self.emit(n, elementwise("", "gelu", self.g.dims(n, n.input[0])))

    def sub_Erf(self, n):
        return self.sub_Tanh(n)

    def sub_Tanh(self, n):
        """x * 0.5 * (1 + erf(x / sqrt 2)) or its tanh form, written out as arithmetic nodes."""
        g = self.g
        nodes, leaves, stack = [n], set(), [n.input[0]]
        while stack:  # back to x: single-use arithmetic on x and constants
            t = stack.pop()
            p = g.producer.get(t)
            if t in g.const:
                continue
            if p is not None and p.op_type in _ARITH and len(g.consumers.get(t, [])) == 1:
                nodes.append(p)
                stack.extend(i for i in p.input if i)
            else:
                leaves.add(t)
        if len(leaves) == 1:
            (x,) = leaves
            inner = {o for m in nodes for o in m.output}
            t, uses_x = n.output[0], False
            while (c := g.only_consumer(t)) is not None and c.op_type in _ARITH:
                o = g.other(c, t)
                side = g.producer.get(o) if o else None
                if o in g.const or o in inner:
                    pass
                elif o == x:
                    uses_x = True
                elif (side is not None and side.op_type == "Mul" and x in side.input and len(g.consumers[o]) == 1
                      and g.other(side, x) in g.const):
                    uses_x = True
                    nodes.append(side)
                else:
                    break
                nodes.append(c)
                inner.add(c.output[0])
                t = c.output[0]
            if uses_x:
                return elementwise(_named(g, nodes, "gelu"), "gelu", g.dims(n, x)), nodes
        raise g.error(n, f"{n.op_type} is supported as part of GELU: x * 0.5 * (1 + erf(x / sqrt(2))) "
                      "or its tanh form")

    def sub_Sigmoid(self, n):
        g, x = self.g, n.input[0]
        mul = next((c for c in g.consumers.get(n.output[0], []) if c.op_type == "Mul" and x in c.input), None)
        if mul is None or len(g.consumers[n.output[0]]) != 1:
            raise g.error(n, "a Sigmoid is supported as SiLU: x * Sigmoid(x)")
        return elementwise(_named(g, [n, mul], "silu"), "silu", g.dims(n, x)), [n, mul]

    def op_Relu(self, n) -> None:
        self.emit(n, elementwise("", "relu", self.g.dims(n, n.output[0])))

    def op_Add(self, n) -> None:
        g, name = self.g, ""
        ins = [i for i in n.input if i]
        if len(ins) == 2 and (ins[0] in g.const) != (ins[1] in g.const):  # a bias: name it after its GEMM
            p = g.producer.get(ins[1] if ins[0] in g.const else ins[0])
            if p is not None and p.op_type in ("MatMul", "Gemm", "Conv") and (not n.name or _auto(n.name)):
                name = g.name(p) + ".bias"
        self.emit(n, elementwise(name, "add", g.dims(n, n.output[0])))

    op_Sub = op_Add

    def op_Mul(self, n) -> None:
        self.emit(n, elementwise("", "mul", self.g.dims(n, n.output[0])))

    def op_MaxPool(self, n) -> None:
        x, out = self.g.dims(n, n.input[0]), self.g.dims(n, n.output[0])
        kind = "maxpool" if "Max" in n.op_type else "avgpool"
        window = math.prod(x[2:]) if n.op_type.startswith("Global") else \
            math.prod(self.g.attr(n, "kernel_shape", [1]))
        self.emit(n, layer("", kind, {"T": out[0] * math.prod(out[2:]), "K": window, "D": out[1]}))

    op_AveragePool = op_GlobalMaxPool = op_GlobalAveragePool = op_MaxPool

    def op_BatchNormalization(self, n) -> None:
        out = self.g.dims(n, n.output[0])
        shape = (math.prod(out) // out[1], out[1]) if len(out) > 1 else out
        self.emit(n, elementwise("", "mul", shape), ".scale")
        self.emit(n, elementwise("", "add", shape), ".shift")

    def op_Div(self, n) -> None:
        if n.input[1] not in self.g.const:
            raise self.g.error(n, "a Div is supported by a constant (a multiply by its reciprocal), as a "
                               "LayerNorm's or an attention scale")
        self.op_Mul(n)


def _f32(x: float) -> float:
    """A float32 attribute as the decimal it was written as (1e-12, not 9.99999996e-13)."""
    return float(f"{float(x):.7g}")


def _auto(name: str) -> bool:
    """A node name an exporter made up from the op (``Add_12``, ``/layer/Add_1``, ``add7``)."""
    import re

    return bool(re.fullmatch(r"(.*/)?(add|Add)(_?\d+)?", name))


def _named(g: _Graph, nodes, what: str) -> str:
    """A subgraph's layer name: the nodes' common module path and what it computes."""
    prefix = _prefix([g.name(x) for x in nodes])
    return f"{prefix}{what}" if prefix else f"{g.name(nodes[0])}.{what}"


def _prefix(names: list[str]) -> str:
    """The common ``a/b/`` path of node names (exporters name nodes by module path)."""
    parts = [x.split("/")[:-1] for x in names]
    out: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        out.append(level[0])
    return "/".join(out) + "/" if out else ""


__all__ = ["import_onnx", "SUPPORTED", "FREE"]
