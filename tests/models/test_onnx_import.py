"""ONNX import: graphs built with onnx.helper lower to the layers a preset would list.

Each graph's lowered layers are pinned against a hand-written list, its MACs against a
hand count (GEMMs: M*K*N; attention: M*P*(E+F) per head; a LayerNorm's variance: T*D),
and the simulated run equals the same layers written as a preset YAML, layer by layer.
"""

from __future__ import annotations

import math
import warnings

import pytest
import yaml

pytest.importorskip("onnx")

import onnx_graphs as og  # noqa: E402

from einarray.cli import main  # noqa: E402
from einarray.flow import load_run, run  # noqa: E402
from einsum.errors import ConfigError, EinarrayWarning  # noqa: E402
from models.layers import layer_macs  # noqa: E402
from models.onnx_import import SUPPORTED, import_onnx  # noqa: E402


def L(name, cascade, ranks, params=None, repeat=1):
    return {"name": name, "cascade": cascade, "ranks": ranks, "params": params or {}, "repeat": repeat}


def bert_layers(B, T, D, NH, I):
    E = D // NH
    p = "layer.0/"
    out = []
    for t in "qkv":
        out += [L(f"{p}attention/{t}", "gemm", {"M": T, "K": D, "N": D}, repeat=B),
                L(f"{p}attention/{t}_bias", "add", {"T": B * T, "D": D})]
    out += [L(f"{p}attention/self/softmax-3pass", "softmax-3pass", {"M": T, "P": T, "E": E, "F": E},
              {"scale": 1 / math.sqrt(E)}, B * NH),
            L(f"{p}attention/output", "gemm", {"M": T, "K": D, "N": D}, repeat=B),
            L(f"{p}attention/output.bias", "add", {"T": B * T, "D": D}),
            L(f"{p}attention/residual", "add", {"T": B * T, "D": D}),
            L(f"{p}layernorm", "layernorm", {"T": B * T, "D": D}, {"eps": 1e-12}),
            L(f"{p}ffn/fc1", "gemm", {"M": T, "K": D, "N": I}, repeat=B),
            L(f"{p}ffn/fc1.bias", "add", {"T": B * T, "D": I}),
            L(f"{p}gelu", "gelu", {"T": B * T, "D": I}),
            L(f"{p}ffn/fc2", "gemm", {"M": T, "K": I, "N": D}, repeat=B),
            L(f"{p}ffn/fc2.bias", "add", {"T": B * T, "D": D}),
            L(f"{p}ffn/residual", "add", {"T": B * T, "D": D}),
            L(f"{p}ffn/norm", "layernorm", {"T": B * T, "D": D}, {"eps": 1e-12})]
    return out


def vit_layers(img, patch, C, D, NH, I):
    n, E = (img // patch) ** 2, D // NH
    T = n + 1
    return [L("embeddings/patch", "gemm", {"M": n, "K": C * patch * patch, "N": D}),
            L("embeddings/patch.bias", "add", {"T": n, "D": D}),
            L("embeddings/pos", "add", {"T": T, "D": D}),
            L("block/norm1", "layernorm", {"T": T, "D": D}, {"eps": 1e-6}),
            L("block/qkv", "gemm", {"M": T, "K": D, "N": 3 * D}),
            L("block/qkv.bias", "add", {"T": T, "D": 3 * D}),
            L("block/attn/softmax-3pass", "softmax-3pass", {"M": T, "P": T, "E": E, "F": E},
              {"scale": E ** -0.5}, NH),
            L("block/proj", "gemm", {"M": T, "K": D, "N": D}),
            L("block/proj.bias", "add", {"T": T, "D": D}),
            L("block/residual1", "add", {"T": T, "D": D}),
            L("block/norm2", "layernorm", {"T": T, "D": D}, {"eps": 1e-6}),
            L("block/fc1", "gemm", {"M": T, "K": D, "N": I}),
            L("block/fc1.bias", "add", {"T": T, "D": I}),
            L("gelu27", "gelu", {"T": T, "D": I}),
            L("block/fc2", "gemm", {"M": T, "K": I, "N": D}),
            L("block/fc2.bias", "add", {"T": T, "D": D}),
            L("block/residual2", "add", {"T": T, "D": D}),
            L("norm", "layernorm", {"T": T, "D": D}, {"eps": 1e-6})]


def _same(got, want):
    assert [l["name"] for l in got] == [l["name"] for l in want]
    for g, w in zip(got, want):
        assert (g["cascade"], g["ranks"], g["repeat"]) == (w["cascade"], w["ranks"], w["repeat"]), g["name"]
        assert g["params"] == pytest.approx(w["params"], rel=1e-6), g["name"]


@pytest.mark.parametrize("B,T", [(1, 16), (2, 24)])
def test_bert_layer_lowers_to_its_layers_and_macs(tmp_path, B, T):
    D, NH, I = 32, 4, 64
    m = import_onnx(og.bert_layer(tmp_path / "bert.onnx", D, NH, I), ranks={"batch": B, "seq": T})
    _same(m["layers"], bert_layers(B, T, D, NH, I))
    E = D // NH
    hand = B * (4 * T * D * D           # Q, K, V and output projections
                + NH * T * T * (E + E)  # QK^T and AV per head
                + 2 * T * D * I)        # FFN
    hand += 2 * B * T * D               # two LayerNorms: sum of squares over D per token
    assert sum(layer_macs(l) for l in m["layers"]) == hand
    assert m["summary"]["skipped"] == []


def test_vit_patch_embedding_and_block(tmp_path):
    img, patch, C, D, NH, I = 32, 8, 3, 32, 2, 64
    m = import_onnx(og.vit(tmp_path / "vit.onnx", img, patch, C, D, NH, I))
    _same(m["layers"], vit_layers(img, patch, C, D, NH, I))
    n, T, E = 16, 17, 16
    hand = n * C * patch * patch * D + T * D * 3 * D + NH * T * T * 2 * E + T * D * D + 2 * T * D * I
    assert sum(layer_macs(l) for l in m["layers"]) == hand + 3 * T * D


@pytest.mark.parametrize("C,H,Co,k,stride,pad,group,bias", [
    (8, 16, 16, 3, 2, 1, 1, True),
    (8, 16, 16, 3, 1, 0, 2, False),   # groups: repeat per group, C_in/g and C_out/g
    (3, 15, 8, 5, 2, 2, 1, True),     # odd sizes: floor((15 + 4 - 5) / 2) + 1 = 8
])
def test_conv_is_an_im2col_gemm(tmp_path, C, H, Co, k, stride, pad, group, bias):
    m = import_onnx(og.conv_relu(tmp_path / "c.onnx", C, H, Co, k, stride, pad, group, bias))
    OH = (H + 2 * pad - k) // stride + 1
    conv = m["layers"][0]
    assert conv["cascade"] == "gemm"
    assert conv["ranks"] == {"M": OH * OH, "K": C // group * k * k, "N": Co // group}
    assert conv["repeat"] == group
    assert layer_macs(conv) == OH * OH * Co * (C // group) * k * k
    want = ["gemm"] + (["add"] if bias else []) + ["relu"]
    assert [l["cascade"] for l in m["layers"]] == want
    assert math.prod(m["layers"][-1]["ranks"].values()) == Co * OH * OH  # relu over the output


def test_unsupported_operator_names_the_node(tmp_path):
    p = og.with_node(tmp_path / "model.onnx", "Sin", "encoder/layer.3/ffn/Foo")
    with pytest.raises(ConfigError) as ei:
        import_onnx(p)
    assert str(ei.value) == (f"{p}: node 'encoder/layer.3/ffn/Foo' (op Sin): not supported "
                             f"(supported: {', '.join(SUPPORTED)}; Softmax in attention, ReduceMean/Pow/Sqrt "
                             "in a LayerNorm, Erf/Tanh in GELU, Sigmoid in SiLU); workload.onnx_skip_unknown: "
                             "true skips such nodes")
    assert "Pow" not in SUPPORTED and "MatMul" in SUPPORTED  # Pow only inside a LayerNorm


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_skip_unknown_lists_the_node_in_the_report(tmp_path):
    og.with_node(tmp_path / "model.onnx", "Sin", "encoder/layer.3/ffn/Foo")
    cfg = _write(tmp_path, "r.yaml", "workload: {onnx: model.onnx, onnx_skip_unknown: true}\narch: fusemax\n")
    with pytest.warns(EinarrayWarning, match=r"skipped 1 node\(s\) of unsupported ops Sin"):
        spec = load_run(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EinarrayWarning)
        res = run(spec, progress=False)
    assert [(s["node"], s["op"]) for s in res["workload"]["skipped"]] == [("encoder/layer.3/ffn/Foo", "Sin")]
    assert [l["name"] for l in res["layers"]] == ["mm"]


def _one_error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("einarray run: error: "), err
    return err.strip()


@pytest.mark.parametrize("workload,where,msg", [
    ("{onnx: bert.onnx}", ":1 workload.ranks", "has symbolic dimensions batch, seq (of input mask, x); "
     "give their sizes as workload.ranks: {batch: N, seq: N} (or on the command line, --rank batch=N)"),
    ("{onnx: bert.onnx, ranks: {batch: 1, seq: 8, tokens: 3}}", ":1 workload.ranks.tokens",
     "the graph has no symbolic dimension 'tokens' (its symbolic dimensions: batch, seq)"),
    ("{onnx: missing.onnx}", ":1 workload.onnx", "no file 'missing.onnx'"),
    ("{onnx: bert.onnx, ranks: {batch: 1, seq: 8}, attention: {variant: softmax-1pass, chunk: 0}}",
     ":1 workload.attention.chunk", "expected a positive integer, got 0"),
    ("{onnx: bert.onnx, ranks: {batch: 1, seq: 8}, tokens: 8}", ":1 workload.tokens",
     "tokens is for an imported hf model"),
    ("{onnx: bert.onnx, ranks: {batch: 1, seq: 8}, onnx_skip_unknown: yes please}",
     ":1 workload.onnx_skip_unknown", "expected true or false, got 'yes please'"),
    ("{onnx: bert.onnx, model: vit-tiny}", ":1 workload.onnx", "give one model: model or onnx"),
])
def test_bad_onnx_workloads_are_located(tmp_path, capsys, workload, where, msg):
    og.bert_layer(tmp_path / "bert.onnx")
    cfg = _write(tmp_path, "r.yaml", f"workload: {workload}\narch: fusemax\n")
    err = _one_error_line(capsys, ["run", str(cfg), "--no-progress"])
    assert f"{cfg}{where}: " in err and msg in err, err


def test_command_line_rank_binds_a_symbolic_dimension(tmp_path):
    """``einarray run --rank seq=N`` sizes an ONNX graph's symbolic dimension (over
    workload.ranks); a --rank that is no graph dimension still sizes the layers' ranks."""
    og.bert_layer(tmp_path / "bert.onnx")
    cfg = _write(tmp_path, "r.yaml", "workload: {onnx: bert.onnx, ranks: {batch: 1, seq: 16}}\narch: fusemax\n")
    base = load_run(cfg)
    assert base.workload["symbolic_dims"] == {"batch": 1, "seq": 16}
    spec = load_run(cfg, ranks={"seq": 48})
    assert spec.workload["symbolic_dims"] == {"batch": 1, "seq": 48}
    direct = import_onnx(tmp_path / "bert.onnx", ranks={"batch": 1, "seq": 48})
    got = [{r: i.size for r, i in l.config.cascade.ranks.items() if r in d["ranks"]}
           for l, d in zip(spec.layers, direct["layers"])]
    assert got == [d["ranks"] for d in direct["layers"]] and len(got) == len(direct["layers"])
    assert got != [{r: i.size for r, i in l.config.cascade.ranks.items() if r in d["ranks"]}
                   for l, d in zip(base.layers, direct["layers"])]  # 48 tokens, not 16
    # only on the command line: the missing dimension is given there
    cfg2 = _write(tmp_path, "r2.yaml", "workload: {onnx: bert.onnx, ranks: {batch: 1}}\narch: fusemax\n")
    assert load_run(cfg2, ranks={"seq": 32}).workload["symbolic_dims"] == {"batch": 1, "seq": 32}
    with pytest.raises(ConfigError, match="no layer of model bert has a rank 'nope'"):
        load_run(cfg, ranks={"nope": 3})


def test_unsupported_operator_is_one_error_line(tmp_path, capsys):
    og.with_node(tmp_path / "model.onnx", "Sin", "encoder/layer.3/ffn/Foo")
    cfg = _write(tmp_path, "r.yaml", "workload: {onnx: model.onnx}\narch: fusemax\n")
    err = _one_error_line(capsys, ["run", str(cfg), "--no-progress"])
    assert "model.onnx: node 'encoder/layer.3/ffn/Foo' (op Sin): not supported (supported: Add, AveragePool," in err


def test_attention_variant_is_chosen_by_the_workload(tmp_path):
    p = og.bert_layer(tmp_path / "bert.onnx")
    m = import_onnx(p, ranks={"batch": 1, "seq": 64}, attention_variant="softmax-1pass", options={"chunk": 32})
    att = [l for l in m["layers"] if l["cascade"].startswith("softmax")]
    assert att == [L("layer.0/attention/self/softmax-1pass", "softmax-1pass",
                     {"M": 64, "P": 64, "E": 8, "F": 8, "P0": 32}, {"scale": pytest.approx(8 ** -0.5)}, 4)]


def _run_quiet(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EinarrayWarning)
        return run(load_run(cfg), progress=False)


@pytest.mark.parametrize("graph", ["bert", "conv"])
def test_simulation_equals_the_same_layers_as_a_preset(tmp_path, graph):
    if graph == "bert":
        og.bert_layer(tmp_path / "g.onnx")
        want, wl = bert_layers(1, 16, 32, 4, 64), "{onnx: g.onnx, ranks: {batch: 1, seq: 16}}"
    else:
        og.conv_relu(tmp_path / "g.onnx")
        want, wl = [L("conv", "gemm", {"M": 64, "K": 72, "N": 16}), L("conv.bias", "add", {"T": 64, "D": 16}),
                    L("relu", "relu", {"T": 128, "D": 8})], "{onnx: g.onnx}"
    preset = {"model": {"name": "hand", "source": "written by hand from the graph", "layers": want}}
    _write(tmp_path, "hand.yaml", yaml.safe_dump(preset, sort_keys=False))
    a = _run_quiet(_write(tmp_path, "a.yaml", f"workload: {wl}\narch: fusemax\n"))
    b = _run_quiet(_write(tmp_path, "b.yaml", "workload: {model: hand.yaml}\narch: fusemax\n"))
    key = lambda r: [(l["name"], l["cascade"], l["cycles"], l["macs"]) for l in r["layers"]]  # noqa: E731
    assert key(a) == key(b)
    assert a["cycles"] == b["cycles"] and a["energy_pj"] == b["energy_pj"]
    assert sum(l["macs"] for l in a["layers"]) == sum(layer_macs(l) for l in want)


def test_gemm_tanh_gelu_silu_and_a_lone_softmax(tmp_path):
    p = og.mlp_forms(tmp_path / "m.onnx", T=6, D=16, I=24)
    with pytest.raises(ConfigError, match=r"node 'probs' \(op Softmax\): a softmax is supported as attention"):
        import_onnx(p)
    with pytest.warns(EinarrayWarning, match="skipped 1 node"):
        m = import_onnx(p, skip_unknown=True)
    assert [(l["name"], l["cascade"], l["ranks"]) for l in m["layers"]] == [
        ("fc1", "gemm", {"M": 6, "K": 16, "N": 24}), ("fc1.bias", "add", {"T": 6, "D": 24}),
        ("tanh6.gelu", "gelu", {"T": 6, "D": 24}),  # the 8 nodes of the tanh formula, named by its Tanh
        ("fc2", "gemm", {"M": 6, "K": 24, "N": 16}),
        ("act/silu", "silu", {"T": 6, "D": 16})]
    assert m["summary"]["skipped"][0]["node"] == "probs"
    assert sum(layer_macs(l) for l in m["layers"]) == 6 * 16 * 24 * 2


def test_cnn_stem_pooling_and_head(tmp_path):
    C, H, F, classes = 3, 16, 8, 10
    m = import_onnx(og.cnn(tmp_path / "cnn.onnx", C, H, F, classes))
    P = (H + 2 - 3) // 2 + 1  # 3x3 stride-2 max pool with padding 1: 8 x 8
    assert [(l["name"], l["cascade"], l["ranks"]) for l in m["layers"]] == [
        ("stem/conv", "gemm", {"M": H * H, "K": C * 9, "N": F}),
        ("stem/bn.scale", "mul", {"T": H * H, "D": F}), ("stem/bn.shift", "add", {"T": H * H, "D": F}),
        ("stem/relu", "relu", {"T": F * H, "D": H}),
        ("stem/pool", "maxpool", {"T": P * P, "K": 9, "D": F}),
        ("block/conv", "gemm", {"M": P * P, "K": F, "N": 2 * F}),
        ("head/pool", "avgpool", {"T": 1, "K": P * P, "D": 2 * F}),
        ("head/fc", "gemm", {"M": 1, "K": 2 * F, "N": classes}), ("head/fc.bias", "add", {"T": 1, "D": classes})]
    assert sum(layer_macs(l) for l in m["layers"]) == H * H * C * 9 * F + P * P * F * 2 * F + 2 * F * classes
