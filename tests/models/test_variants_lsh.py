"""models.attention: ``longformer`` and ``reformer`` as ``workload.attention.variant``.

Bindings, option checks and the projection GEMMs each needs (Longformer's global
projections, the Reformer's shared QK), and their MAC counts in ``einarray run`` on a
small ViT against closed forms counted here from each algorithm's key sets.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from einarray.flow import load_run_data, run
from einsum.errors import ConfigError
from models.attention import VARIANTS, bind_variant, split_attention

TINY = Path(__file__).parents[1] / "einarray" / "data" / "vit-tiny-small.yaml"


def _bind(variant, options=None, tokens=197):
    return bind_variant(variant, tokens=tokens, grid=(14, 14), head_dim=64, options=options or {}, heads=12)


def test_selectable():
    assert {"longformer", "reformer"} <= set(VARIANTS)


@pytest.mark.parametrize("variant,options,ranks,params", [
    ("longformer", {}, {"M": 197, "R": 32, "G": 1, "E": 64, "F": 64}, {"dil": 1, "scale": 0.125}),
    ("longformer", {"window": 10, "dilation": 3, "global_tokens": 0},
     {"M": 197, "R": 5, "G": 0, "E": 64, "F": 64}, {"dil": 3, "scale": 0.125}),
    # buckets default to 2 * ceil(197 / 64) = 8: B2 = 4 rotations per round
    ("reformer", {}, {"M": 197, "N": 2, "B2": 4, "C": 64, "E": 64, "F": 64}, {"scale": 1.0}),
    ("reformer", {"chunk": 32, "rounds": 4, "buckets": 6},
     {"M": 197, "N": 4, "B2": 3, "C": 32, "E": 64, "F": 64}, {"scale": 1.0}),
])
def test_good_options_bind(variant, options, ranks, params):
    b = _bind(variant, options)
    assert b.cascade == variant and dict(b.ranks) == ranks and dict(b.params) == params


@pytest.mark.parametrize("variant,options,where,msg", [
    ("longformer", {"window": 7}, "window",
     "expected an even window (the paper's w: w/2 keys on each side of the query), got 7"),
    ("longformer", {"window": 394}, "window",
     "the window reaches 197 x dilation 1 = 197 tokens to each side, past the whole sequence "
     "(197 tokens): at most 196"),
    ("longformer", {"dilation": 7}, "dilation",
     "the window reaches 32 x dilation 7 = 224 tokens to each side, past the whole sequence "
     "(197 tokens): at most 196"),
    ("longformer", {"global_tokens": 198}, "global_tokens", "198 global tokens are more than the 197 tokens"),
    ("longformer", {"global_tokens": -1}, "global_tokens", "expected a non-negative integer, got -1"),
    ("reformer", {"buckets": 5}, "buckets",
     "expected a positive even integer, got 5 (argmax over [xR; -xR] gives an even number)"),
    ("reformer", {"chunk": 198}, "chunk", "the chunk 198 is longer than the sequence (197 tokens)"),
    ("reformer", {"rounds": 0}, "rounds", "expected a positive integer, got 0"),
    ("reformer", {"window": 8}, "window",
     "option window is for sliding-window-causal and longformer, not reformer "
     "(reformer takes buckets, chunk, rounds)"),
    ("gqa", {"rounds": 2}, "rounds", "option rounds is for reformer, not gqa (gqa takes kv_heads)"),
])
def test_bad_options_name_the_option(variant, options, where, msg):
    with pytest.raises(ConfigError) as ei:
        _bind(variant, options)
    assert ei.value.ypath == (where,) and ei.value.message == msg


def test_default_chunk_longer_than_the_sequence():
    with pytest.raises(ConfigError) as ei:
        _bind("reformer", tokens=50)
    assert ei.value.message == "the default chunk 64 is longer than the sequence (50 tokens); give a chunk"


def _mha_layer() -> dict:
    return {"name": "attention", "cascade": "mha", "repeat": 12, "params": {},
            "ranks": {"T": 197, "D": 768, "NH": 12, "E": 64}}


@pytest.mark.parametrize("g", [0, 1, 5])
def test_longformer_adds_the_global_projections(g):
    """Q_s, K_s, V_s of every token (the usual QKV GEMM); K_g and V_g of every token; Q_g of
    the g global tokens only."""
    layers = split_attention(_mha_layer(), "longformer", grid=(14, 14), options={"global_tokens": g})
    by = {l["name"]: l for l in layers}
    assert [l["name"] for l in layers] == ["attention.qkv", "attention.kv-global"] + \
        (["attention.q-global"] if g else []) + ["attention.longformer", "attention.proj"]
    assert by["attention.qkv"]["ranks"] == {"M": 197, "K": 768, "N": 3 * 768}
    assert by["attention.kv-global"]["ranks"] == {"M": 197, "K": 768, "N": 2 * 768}
    if g:
        assert by["attention.q-global"]["ranks"] == {"M": g, "K": 768, "N": 768}
    assert all(l["repeat"] == 12 for l in layers if l["cascade"] == "gemm")
    assert by["attention.longformer"]["repeat"] == 144


def test_reformer_shares_the_query_key_projection():
    qkv, core, proj = split_attention(_mha_layer(), "reformer", grid=(14, 14))
    assert qkv["ranks"] == {"M": 197, "K": 768, "N": 2 * 768}  # QK and V
    assert core["cascade"] == "reformer" and core["repeat"] == 144


# -- einarray run on a small ViT -------------------------------------------------------------
T, E, NH, BLOCKS = 65, 64, 3, 12  # vit-tiny-small: 65 tokens, 3 heads of 64, 12 blocks


def _longformer_macs(t: int, reach: int, g: int, e: int) -> int:
    """Q.K and A.V over the window keys inside the sequence, the g global keys of every
    query and the g global rows over all t keys (dilation 1)."""
    pairs = sum(1 for m in range(t) for o in range(-reach, reach + 1) if 0 <= m + o < t)
    return 2 * e * (pairs + t * g + g * t)


def _reformer_macs(t: int, n: int, b2: int, c: int, e: int) -> int:
    """Per round: the rotations (t e b2), Q.K and A.V over each query's chunk and the one
    before; |q|^2 (t e); the mixture of the rounds (t f) and its normaliser (t)."""
    reach = sum(1 for s in range(t) for w in range(2 * c) if 0 <= (s // c - 1) * c + w < t)
    return n * (t * e * b2 + 2 * reach * e) + t * e + n * (t * e + t)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("variant,options,macs", [
    ("longformer", {"window": 16, "global_tokens": 2}, _longformer_macs(T, 8, 2, E)),
    ("reformer", {"chunk": 16, "rounds": 3}, _reformer_macs(T, 3, 5, 16, E)),  # buckets 2*ceil(65/16) = 10
])
def test_run_small_vit(variant, options, macs):
    data = yaml.safe_load(TINY.read_text())
    data["workload"]["attention"] = copy.deepcopy({"variant": variant, **options})
    spec = load_run_data(data, "tiny.yaml")
    res = run(spec, progress=False)
    core = next(l for l in res["layers"] if l["name"] == f"attention.{variant}")
    assert core["instances"] == BLOCKS * NH and core["macs"] == macs * BLOCKS * NH
    qkv = next(l for l in res["layers"] if l["name"] == "attention.qkv")
    assert qkv["macs"] == BLOCKS * T * 192 * (2 if variant == "reformer" else 3) * NH * E  # D = 192


@pytest.mark.parametrize("variant,what", [
    ("longformer", "kv-global (65 rows x 6 heads), q-global (1 rows x 3 heads)"),
    ("reformer", "a QKV projection 6 heads wide"),
])
def test_an_imported_model_warns_that_its_projections_stay(variant, what):
    """An imported graph brings its own Q/K/V projections: the core binds, and a warning
    says which projections the variant would need that the graph does not have."""
    from einsum.errors import EinarrayWarning
    from models.layers import attention

    with pytest.warns(EinarrayWarning, match=re.escape(f"attention blk0: {variant} needs {what}; an imported")):
        lay = attention("blk0", variant, {"chunk": 16} if variant == "reformer" else {"window": 16},
                        tokens=65, keys=65, head_dim=64, heads=3, repeat=3)
    assert lay["cascade"] == variant and lay["repeat"] == 3
