"""Hugging Face configs lower to a preset's layers: pinned layer lists, MACs against hand
counts (GEMMs M*K*N; attention T*T*(E+F) per query head, the causal cascades computing
every score and multiplying the masked zeros; norms T*D for their sum of squares), the
shipped examples run, and mistakes name the JSON line or the workload key."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from einarray.cli import main
from einarray.flow import load_run, run
from einsum.errors import ConfigError, EinarrayWarning
from models.hf import SUPPORTED, import_hf
from models.layers import layer_macs

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "bert": {"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2,
             "intermediate_size": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
             "max_position_embeddings": 512},
    "roberta": {"model_type": "roberta", "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2,
                "intermediate_size": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-5},
    "vit": {"model_type": "vit", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2,
            "intermediate_size": 64, "image_size": 32, "patch_size": 8, "num_channels": 3,
            "layer_norm_eps": 1e-12},
    "gpt2": {"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, "n_inner": None,
             "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "n_positions": 1024},
    "llama": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2,
              "num_hidden_layers": 2, "intermediate_size": 96, "hidden_act": "silu", "rms_norm_eps": 1e-5,
              "max_position_embeddings": 2048},
    "mistral": {"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 8,
                "num_hidden_layers": 2, "intermediate_size": 96, "hidden_act": "silu", "rms_norm_eps": 1e-5,
                "sliding_window": 4096},
    "t5": {"model_type": "t5", "d_model": 32, "d_kv": 8, "num_heads": 4, "num_layers": 2, "d_ff": 64,
           "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6},
}


def _cfg(tmp_path: Path, data: dict, name: str = "config.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data, indent=2))
    return p


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EinarrayWarning)
        return fn(*a, **kw)


def _rows(m):
    return [(l["name"], l["cascade"], l["ranks"], l["repeat"]) for l in m["layers"]]


@pytest.mark.parametrize("mt", ["bert", "roberta"])
def test_bert_style_encoder(tmp_path, mt):
    T, D, NH, L, I = 16, 32, 4, 2, 64
    m = import_hf(_cfg(tmp_path, TINY[mt]), tokens=T)
    a = {"M": T, "P": T, "E": 8, "F": 8}
    assert _rows(m) == [
        ("embed.add", "add", {"T": T, "D": D}, 2), ("embed.norm", "layernorm", {"T": T, "D": D}, 1),
        ("attn.qkv", "gemm", {"M": T, "K": D, "N": 3 * D}, L),
        ("attn.softmax-3pass", "softmax-3pass", a, L * NH),
        ("attn.out", "gemm", {"M": T, "K": D, "N": D}, L), ("attn.residual", "add", {"T": T, "D": D}, L),
        ("attn.norm", "layernorm", {"T": T, "D": D}, L),
        ("ffn.fc1", "gemm", {"M": T, "K": D, "N": I}, L), ("ffn.gelu", "gelu", {"T": T, "D": I}, L),
        ("ffn.fc2", "gemm", {"M": T, "K": I, "N": D}, L), ("ffn.residual", "add", {"T": T, "D": D}, L),
        ("ffn.norm", "layernorm", {"T": T, "D": D}, L)]
    assert m["layers"][3]["params"] == {"scale": pytest.approx(8 ** -0.5)}


def _hand(mt: str) -> int:
    """MACs of the TINY configs by hand."""
    if mt in ("bert", "roberta"):
        T, D, NH, E, L, I = 16, 32, 4, 8, 2, 64
        return L * (T * D * 3 * D + NH * T * T * 2 * E + T * D * D + 2 * T * D * I) + (2 * L + 1) * T * D
    if mt == "vit":
        T, n, D, NH, E, L, I = 17, 16, 32, 2, 16, 2, 64
        return n * 3 * 8 * 8 * D + L * (T * D * 3 * D + NH * T * T * 2 * E + T * D * D + 2 * T * D * I) \
            + (2 * L + 1) * T * D
    if mt == "gpt2":
        T, D, NH, E, L, I = 16, 32, 4, 8, 2, 128  # n_inner null: 4 x n_embd
        return L * (T * D * 3 * D + NH * T * T * 2 * E + T * D * D + 2 * T * D * I) + (2 * L + 1) * T * D
    if mt in ("llama", "mistral"):
        T, D, NH, E, L, I = 16, 64, 8, 8, 2, 96
        KV = 2 if mt == "llama" else 8
        return L * (T * D * (NH + 2 * KV) * E + NH * T * T * 2 * E + T * NH * E * D + 3 * T * D * I) \
            + (2 * L + 1) * T * D
    T, D, NH, E, L, I = 16, 32, 4, 8, 2, 64  # t5, gated: wi_0, wi_1, wo
    return L * (T * D * 3 * NH * E + NH * T * T * 2 * E + T * NH * E * D + 3 * T * D * I) + (2 * L + 1) * T * D


@pytest.mark.parametrize("mt", SUPPORTED)
def test_macs_equal_hand_counts(tmp_path, mt):
    m = _quiet(import_hf, _cfg(tmp_path, TINY[mt]), tokens=None if mt == "vit" else 16)
    assert sum(layer_macs(l) for l in m["layers"]) == _hand(mt)


@pytest.mark.parametrize("mt,cascade,ranks,repeat,scale", [
    # GQA: one instance is a key/value head and the 4 query heads sharing it, 2 per block
    ("llama", "gqa", {"M": 16, "P": 16, "H": 4, "R": 4, "E": 8, "F": 8}, 2 * 2, 8 ** -0.5),
    # as many key/value heads as query heads: per-head causal softmax
    ("mistral", "softmax-3pass-causal", {"M": 16, "P": 16, "E": 8, "F": 8}, 2 * 8, 8 ** -0.5),
    ("gpt2", "softmax-3pass-causal", {"M": 16, "P": 16, "E": 8, "F": 8}, 2 * 4, 8 ** -0.5),
    # T5 does not scale its scores
    ("t5", "softmax-3pass", {"M": 16, "P": 16, "E": 8, "F": 8}, 2 * 4, 1.0),
    ("vit", "softmax-3pass", {"M": 17, "P": 17, "E": 16, "F": 16}, 2 * 2, 16 ** -0.5),
])
def test_attention_binding(tmp_path, mt, cascade, ranks, repeat, scale):
    m = _quiet(import_hf, _cfg(tmp_path, TINY[mt]), tokens=None if mt == "vit" else 16)
    (att,) = [l for l in m["layers"] if l["name"].startswith("attn.") and l["cascade"] not in ("gemm", "add", "layernorm",
                                                                                               "rmsnorm")]
    assert (att["cascade"], att["ranks"], att["repeat"]) == (cascade, ranks, repeat)
    assert att["params"]["scale"] == pytest.approx(scale)


def test_llama_swiglu_and_gqa_projection(tmp_path):
    with pytest.warns(EinarrayWarning, match="the gqa cascade has no causal mask"):
        m = import_hf(_cfg(tmp_path, TINY["llama"]), tokens=16)
    rows = {n: (c, r) for n, c, r, _ in _rows(m)}
    assert rows["attn.qkv"] == ("gemm", {"M": 16, "K": 64, "N": (8 + 2 * 2) * 8})
    assert [n for n, *_ in _rows(m)][5:11] == ["ffn.norm", "ffn.gate", "ffn.up", "ffn.silu", "ffn.mul", "ffn.down"]
    assert rows["ffn.silu"] == ("silu", {"T": 16, "D": 96})
    assert rows["ffn.mul"] == ("mul", {"T": 16, "D": 96})
    assert rows["attn.norm"] == ("rmsnorm", {"T": 16, "D": 64})


def test_mistral_window_shorter_than_the_sequence_warns(tmp_path):
    with pytest.warns(EinarrayWarning, match="the 8-token sliding window is not modelled"):
        import_hf(_cfg(tmp_path, {**TINY["mistral"], "sliding_window": 8}), tokens=16)


def test_other_variant_for_a_gqa_model(tmp_path):
    m = _quiet(import_hf, _cfg(tmp_path, TINY["llama"]), tokens=16, attention_variant="softmax-1pass",
               options={"chunk": 8})
    (att,) = [l for l in m["layers"] if l["name"] == "attn.softmax-1pass"]
    assert (att["cascade"], att["ranks"], att["repeat"]) == (
        "softmax-1pass-causal", {"M": 16, "P": 16, "E": 8, "F": 8, "P0": 8}, 2 * 8)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _one_error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("einarray run: error: "), err
    return err.strip()


@pytest.mark.parametrize("config,workload,where,msg", [
    ({"model_type": "falcon", "hidden_size": 8}, "tokens: 8", "config.json:2 model_type",
     f"model_type 'falcon' is not supported (supported: {', '.join(SUPPORTED)})"),
    ({**TINY["bert"], "hidden_act": "mish"}, "tokens: 8", "config.json:7 hidden_act",
     "activation 'mish' is not supported"),
    ({**TINY["bert"], "num_attention_heads": 5}, "tokens: 8", "config.json:3 hidden_size",
     "hidden_size 32 is not a multiple of the 5 attention heads"),
    (TINY["bert"], "batch: 1", "r.yaml:1 workload.tokens", "a bert model needs the sequence length"),
    (TINY["vit"], "tokens: 17", "r.yaml:1 workload.tokens", "a ViT's tokens come from its image_size"),
    (TINY["llama"], "tokens: 8, attention: {variant: gqa, kv_heads: 4}", "r.yaml:1 workload.attention.kv_heads",
     "the model has 2 key/value heads (num_key_value_heads), not 4"),
    (TINY["bert"], "tokens: 0", "r.yaml:1 workload.tokens", "expected a positive integer, got 0"),
])
def test_bad_hf_workloads_are_located(tmp_path, capsys, config, workload, where, msg):
    _cfg(tmp_path, config)
    cfg = _write(tmp_path, "r.yaml", f"workload: {{hf: config.json, {workload}}}\narch: fusemax\n")
    err = _one_error_line(capsys, ["run", str(cfg), "--no-progress"])
    assert f"{tmp_path}/{where}: {msg}" in err, err


def test_invalid_json_names_the_line(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{\n  "model_type": "bert",\n  "hidden_size": 32,,\n}\n')
    with pytest.raises(ConfigError) as ei:
        import_hf(p, tokens=8)
    assert str(ei.value).startswith(f"{p}:3: not valid JSON")


def test_llama_equals_its_layers_as_a_preset(tmp_path):
    _cfg(tmp_path, TINY["llama"])
    m = _quiet(import_hf, tmp_path / "config.json", tokens=16)
    layers = [{k: l[k] for k in ("name", "cascade", "ranks", "params", "repeat")} for l in m["layers"]]
    _write(tmp_path, "hand.yaml", yaml.safe_dump({"model": {"name": "hand", "source": "the import's layers",
                                                            "layers": layers}}, sort_keys=False))
    a = _quiet(lambda: run(load_run(_write(tmp_path, "a.yaml", "workload: {hf: config.json, tokens: 16}\n"
                                                                 "arch: fusemax\n")), progress=False))
    b = _quiet(lambda: run(load_run(_write(tmp_path, "b.yaml", "workload: {model: hand.yaml}\narch: fusemax\n")),
                           progress=False))
    key = lambda r: [(l["name"], l["cycles"], l["macs"]) for l in r["layers"]]  # noqa: E731
    assert key(a) == key(b) and a["cycles"] == b["cycles"]
    assert a["workload"]["attention"] == "gqa"


# The shipped examples, with their MACs counted by hand from the published configs.
# BERT-base, 512 tokens: per block QKV 512*768*2304 + attention 12*512*512*128 + output
# 512*768*768 + FFN 2*512*768*3072 = 4,026,531,840; x 12, plus 25 LayerNorms' 512*768.
# TinyLlama-1.1B, 512 tokens: QKV 512*2048*(32+8)*64 + attention 32*512*512*128 + output
# 512*2048*2048 + gate/up/down 3*512*2048*5632 = 23,622,320,128; x 22, plus 45 RMSNorms' 512*2048.
@pytest.mark.parametrize("example,macs", [
    ("bert-base-hf.yaml", 12 * 4_026_531_840 + 25 * 512 * 768),
    ("tinyllama-hf.yaml", 22 * 23_622_320_128 + 45 * 512 * 2048),
])
def test_shipped_examples_run(example, macs):
    res = _quiet(lambda: run(load_run(ROOT / "examples" / example), progress=False))
    assert sum(l["macs"] for l in res["layers"]) == macs  # batch 1: a layer's MACs x its repeat
    assert res["cycles"] == sum(l["cycles"] for l in res["layers"]) > 0  # layers run one after another
    assert len(res["layers"]) == {"bert-base-hf.yaml": 12, "tinyllama-hf.yaml": 13}[example]


def test_hf_bert_block_has_the_macs_of_the_onnx_bert_layer(tmp_path):
    """Two independent lowerings of one BERT block: the config (fused QKV GEMM) and the graph
    an exporter writes (separate Q, K, V MatMuls, biases, the LayerNorm written out)."""
    og = pytest.importorskip("onnx_graphs")
    from models.onnx_import import import_onnx

    graph = import_onnx(og.bert_layer(tmp_path / "b.onnx", 32, 4, 64), ranks={"batch": 1, "seq": 16})
    hf = import_hf(_cfg(tmp_path, {**TINY["bert"], "num_hidden_layers": 1}), tokens=16)
    embed_norm = 16 * 32
    assert sum(layer_macs(l) for l in hf["layers"]) - embed_norm == sum(layer_macs(l) for l in graph["layers"])


def test_more_tokens_than_positions_warns(tmp_path):
    with pytest.warns(EinarrayWarning, match="1024 tokens is more than the 512 positions"):
        import_hf(_cfg(tmp_path, TINY["bert"]), tokens=1024)


def test_explicit_head_dim(tmp_path):
    # a head_dim that is not hidden_size / heads (as Mistral-Nemo's 128 with d = 5120, 32 heads)
    m = _quiet(import_hf, _cfg(tmp_path, {**TINY["llama"], "head_dim": 16}), tokens=16)
    rows = {n: r for n, _, r, _ in _rows(m)}
    assert rows["attn.qkv"] == {"M": 16, "K": 64, "N": (8 + 2 * 2) * 16}
    assert rows["attn.out"] == {"M": 16, "K": 8 * 16, "N": 64}
    assert rows["attn.gqa"]["E"] == rows["attn.gqa"]["F"] == 16
