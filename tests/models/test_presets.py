"""Workload presets: every preset loads, every layer's cascade loads with its shapes,
and bad presets give one located error."""

from __future__ import annotations

from pathlib import Path

import pytest

import models
from einsum.errors import ConfigError
from einsum.load import library_names
from models import layer_cascade, load_model, model_names
from models.attention import OPTIONS, bind_variant, check_grid

EXPECTED = {"vit-tiny", "vit-small", "vit-base", "m3vit", "bert-base", "trxl", "t5", "xlm",
            "nat-mini", "halonet-h0"}


def test_shipped_presets():
    assert EXPECTED <= set(model_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_loads_and_every_layer_cascade_loads(name):
    m = load_model(name)
    assert m["name"] == name and m["source"].strip() and m["layers"]
    lib = set(library_names())
    for layer in m["layers"]:
        assert layer["cascade"] in lib
        assert layer["repeat"] >= 1
        for point in [None, *m["sweep"]]:
            c = layer_cascade(layer, point)
            for r, n in layer["ranks"].items():
                if not point or r not in point:
                    assert c.ranks[r].size == n, (layer["name"], r)
            for k, v in layer["params"].items():
                assert c.params[k] == v


def _layer(m, name):
    return next(l for l in m["layers"] if l["name"] == name)


@pytest.mark.parametrize("name,d,heads", [("vit-tiny", 192, 3), ("vit-small", 384, 6),
                                          ("vit-base", 768, 12)])
def test_vit_shapes(name, d, heads):
    m = load_model(name)
    att = layer_cascade(_layer(m, "attention"))
    assert (att.ranks["T"].size, att.ranks["S"].size, att.ranks["D"].size) == (197, 197, d)
    assert (att.ranks["NH"].size, att.ranks["E"].size) == (heads, 64)
    assert _layer(m, "attention")["repeat"] == 12
    mlp = layer_cascade(_layer(m, "mlp"))
    assert mlp.ranks["H"].size == 4 * d
    pe = layer_cascade(_layer(m, "patch-embed"))
    assert (pe.ranks["M"].size, pe.ranks["K"].size) == (196, 16 * 16 * 3)


def test_m3vit_shapes():
    m = load_model("m3vit")
    moe = layer_cascade(_layer(m, "moe"))
    assert {r: moe.ranks[r].size for r in ("T", "D", "X", "Y", "H")} == \
        {"T": 129, "D": 192, "X": 16, "Y": 16, "H": 384}
    assert moe.params["topk"] == 2
    assert _layer(m, "moe")["repeat"] + _layer(m, "mlp")["repeat"] == 12
    assert layer_cascade(_layer(m, "mlp")).ranks["H"].size == 768
    att = _layer(m, "attention")
    assert att["cascade"] == "edge-moe-softmax" and att["repeat"] == 3 * 12
    assert layer_cascade(att).ranks["M"].size == 129
    assert layer_cascade(_layer(m, "patch-embed")).ranks["M"].size == (128 // 16) * (256 // 16)


@pytest.mark.parametrize("name,heads,dh", [("bert-base", 12, 64), ("trxl", 16, 64),
                                           ("t5", 8, 64), ("xlm", 16, 128)])
def test_fusemax_workloads_sweep_1k_to_1m(name, heads, dh):
    m = load_model(name)
    assert m["batch"] == 64
    (att,) = m["layers"]
    assert att["repeat"] == heads
    lengths = [p["M"] for p in m["sweep"]]
    assert lengths == [1024 * 4**i for i in range(6)] and lengths[-1] == 2**20
    c = layer_cascade(att, m["sweep"][-1])
    assert (c.ranks["M"].size, c.ranks["P"].size, c.ranks["E"].size) == (2**20, 2**20, dh)


def test_nat_and_halo_kernels():
    nat = load_model("nat-mini")
    atts = [l for l in nat["layers"] if l["cascade"] == "neighborhood-2d"]
    assert [layer_cascade(l).ranks["H"].size for l in atts] == [56, 28, 14, 7]
    assert all(layer_cascade(l).ranks["KY"].size == layer_cascade(l).ranks["KX"].size == 7
               for l in atts)
    halo = load_model("halonet-h0")
    hl = [l for l in halo["layers"] if l["cascade"] == "halo"]
    assert all(l["params"]["block"] == 8 and l["params"]["halo"] == 3 for l in hl)
    assert [layer_cascade(l).ranks["KY"].size for l in hl] == [14] * 4


# -- bad presets ----------------------------------------------------------------------
GOOD = """model:
  name: tiny
  source: test
  layers:
    - name: a
      cascade: softmax-1pass
      ranks: {M: 64, P: 64, P0: 16}
"""


def _err(tmp_path: Path, text: str) -> str:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_model(p)
    return str(ei.value)


def test_good_minimal_preset(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text(GOOD)
    m = load_model(p)
    assert m["batch"] == 1 and m["sweep"] == [] and m["layers"][0]["repeat"] == 1


@pytest.mark.parametrize("text,where,msg", [
    (GOOD.replace("  source: test\n", ""), ":1 model", "missing required key 'source'"),
    (GOOD.replace("  source: test", "  source: test\n  colour: red"), ":4 model.colour", "unknown key 'colour'"),
    (GOOD.replace("softmax-1pass", "softmax-4pass"), ":6 model.layers[0].cascade", "unknown cascade 'softmax-4pass'"),
    (GOOD.replace("P0: 16", "P0: 16, Q: 3"), ":7 model.layers[0].ranks.Q", "cascade softmax-1pass has no rank 'Q'"),
    (GOOD.replace("M: 64", "M: -4"), ":7 model.layers[0].ranks.M", "must be a positive integer, got -4"),
    (GOOD.replace("P0: 16", "P0: 24, P1: 2"), ":7 model.layers[0].ranks",
     "P=64 in chunks of P0=24 needs P1 = ceil(64/24) = 3, not 2"),
    (GOOD + "      repeat: 0\n", ":8 model.layers[0].repeat", "repeat must be a positive integer"),
    (GOOD + "      params: {temperature: 2}\n", ":8 model.layers[0].params.temperature",
     "cascade softmax-1pass has no param 'temperature'"),
    (GOOD + "    - name: a\n      cascade: gemm\n", ":8 model.layers[1].name", "duplicate layer name 'a'"),
    (GOOD + "  sweep:\n    - {Z: 8}\n", ":9 model.sweep[0].Z", "no layer's cascade has a rank 'Z'"),
    (GOOD + "  sweep:\n    - {P: 40, P1: 2}\n", ":9 model.sweep[0]",
     "P=40 in chunks of P0=16 needs P1 = ceil(40/16) = 3, not 2"),
    (GOOD.replace("  source: test", "  source: test\n  batch: 2.5"), ":4 model.batch", "batch must be a positive integer"),
    ("layers: []\n", ":1", "expected exactly one top-level 'model:' section"),
    (GOOD.replace("ranks: {M: 64", "ranks: {M: 64, M: 32"), ":7", "duplicate key 'M'"),
])
def test_bad_preset_messages(tmp_path, text, where, msg):
    err = _err(tmp_path, text)
    assert "bad.yaml" + where in err, err
    assert msg in err, err


def test_unknown_preset_name():
    with pytest.raises(ConfigError, match="no file and no model preset named 'vit-huge'"):
        load_model("vit-huge")


def test_models_dir_has_only_valid_presets():
    for p in sorted(models.MODELS_DIR.glob("*.yaml")):
        load_model(p)


# -- attention variant options --------------------------------------------------------
@pytest.mark.parametrize("variant,grid,options,where,msg", [
    ("halo", (14, 14), {"block": 0}, "block", "expected a positive integer, got 0"),
    ("halo", (14, 14), {"block": "8"}, "block", "expected a positive integer, got '8'"),
    ("halo", (7, 9), {"block": 8}, "block",
     "block 8 is larger than the 7 x 9 patch grid (at most 7)"),
    ("halo", (5, 14), {}, "block",
     "the default block 8 is larger than the 5 x 14 patch grid (at most 5)"),
    ("halo", (14, 14), {"block": 7, "halo": -1}, "halo", "expected a non-negative integer, got -1"),
    ("halo", (14, 14), {"block": 7, "kernel": 3}, "kernel",
     "option kernel is for neighborhood-2d, not halo (halo takes block, halo)"),
    ("neighborhood-2d", (14, 14), {"kernel": 4}, "kernel",
     "expected a positive odd integer, got 4 (NATTEN requires an odd kernel)"),
    ("neighborhood-2d", (14, 14), {"kernel": True}, "kernel", "expected a positive odd integer, got True"),
    ("neighborhood-2d", (14, 14), {"kernel": 7, "dilation": 0}, "dilation", "expected a positive integer, got 0"),
    ("neighborhood-2d", (7, 9), {"kernel": 9}, "kernel",
     "the window (kernel 9 x dilation 1 = 9 patches) is larger than the sequence (7 x 9 patch grid)"),
    ("neighborhood-2d", (14, 14), {"dilation": 3}, "dilation",
     "the window (kernel 7 x dilation 3 = 21 patches) is larger than the sequence (14 x 14 patch grid)"),
    ("linformer", (14, 14), {"proj_len": 300}, "proj_len",
     "the projected length 300 is larger than the sequence (197 tokens)"),
    ("linformer", (14, 14), {"proj_len": 2.5}, "proj_len", "expected a positive integer, got 2.5"),
    ("softmax-1pass", (14, 14), {"chunk": 0}, "chunk", "expected a positive integer, got 0"),
    ("gmm-mask", (14, 14), {"gaussians": -1}, "gaussians", "expected a positive integer, got -1"),
    ("retention", (14, 14), {"gamma": 1.5}, "gamma", "expected a number in (0, 1], got 1.5"),
    ("retention", (14, 14), {"gamma": float("nan")}, "gamma", "expected a number in (0, 1], got nan"),
    ("linear", (14, 14), {"block": 8}, "block",
     "option block is for halo, not linear (linear takes no options)"),
    ("halo", (14, 14), {"block": 7, "size": 3}, "size",
     f"unknown attention option 'size' (options: {', '.join(sorted(OPTIONS))})"),
])
def test_bad_attention_options_name_the_option(variant, grid, options, where, msg):
    with pytest.raises(ConfigError) as ei:
        bind_variant(variant, tokens=197, grid=grid, head_dim=64, options=options)
    assert ei.value.ypath == (where,) and ei.value.message == msg


def test_default_projected_length_longer_than_the_sequence():
    with pytest.raises(ConfigError, match=r"the default projected length 64 is larger than the sequence "
                                          r"\(50 tokens\); give a proj_len"):
        bind_variant("linformer", tokens=50, grid=(7, 7), head_dim=64)


@pytest.mark.parametrize("variant,options,ranks,params", [
    ("halo", {"block": 7, "halo": 0}, {"H": 14, "W": 14, "C": 64, "F": 64}, {"block": 7, "halo": 0}),
    ("neighborhood-2d", {"kernel": 7, "dilation": 2}, {"H": 14, "W": 14, "KY": 7, "KX": 7, "E": 64, "F": 64},
     {"dil_y": 2, "dil_x": 2}),
    ("linformer", {"proj_len": 197}, {"M": 197, "P": 197, "J": 197, "E": 64, "F": 64}, {}),
    ("retention", {"gamma": 1}, {"M": 197, "E": 64, "F": 64}, {"gamma": 1.0}),
    ("gmm-mask", {"gaussians": 2}, {"GY": 14, "GX": 14, "E": 64, "F": 64, "G": 2}, {}),
])
def test_good_attention_options_bind(variant, options, ranks, params):
    b = bind_variant(variant, tokens=197, grid=(14, 14), head_dim=64, options=options)
    assert dict(b.ranks) == ranks
    assert {k: b.params[k] for k in params} == params and b.params["scale"] == 0.125


@pytest.mark.parametrize("tokens,grid,ok", [(197, (14, 14), True), (196, (14, 14), True),
                                            (197, (13, 13), False), (4096, (64, 64), True),
                                            (4096, (32, 128), True), (4096, (62, 66), False)])
def test_check_grid(tokens, grid, ok):
    if ok:
        check_grid(tokens, grid)
    else:
        with pytest.raises(ConfigError, match=f"patch grid has {grid[0] * grid[1]} patches, but the model "
                                              f"has {tokens} tokens"):
            check_grid(tokens, grid)
