"""models.attention: the linear-time, causal and grouped-query variants bind, run and simulate.

Performer (FAVOR+), causal Performer, RetNet's recurrent form, causal linear attention,
Mistral-style sliding-window attention and grouped-query attention are selectable as
``workload.attention.variant``. Their MAC counts, in ``einarray run`` on a small ViT and in
``einarray simulate`` on the FuseMax arch, are checked against closed forms derived here
from each algorithm (one MAC per multiply-accumulate of a sum of products).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from einarray.cli import main
from einarray.flow import load_run_data, run
from einsum.errors import ConfigError
from mapping.config import load_config
from models.attention import VARIANTS, bind_variant, split_attention
from sim.results import simulate

TINY = Path(__file__).parents[1] / "einarray" / "data" / "vit-tiny-small.yaml"
NEW = ["performer", "performer-causal", "retention-recurrent", "linear-causal",
       "sliding-window-causal", "gqa"]


def test_new_variants_are_selectable():
    assert set(NEW) <= set(VARIANTS)


# -- binding -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant,options,ranks,params,heads,kv", [
    ("performer", {}, {"M": 197, "P": 197, "E": 64, "F": 64, "R": 256}, {"qk_scale": 64 ** -0.25}, 1, None),
    ("performer", {"features": 37}, {"M": 197, "P": 197, "E": 64, "F": 64, "R": 37},
     {"qk_scale": 64 ** -0.25}, 1, None),
    ("performer-causal", {"features": 64}, {"M": 197, "E": 64, "F": 64, "R": 64},
     {"qk_scale": 64 ** -0.25}, 1, None),
    ("retention-recurrent", {"gamma": 0.5}, {"M": 197, "E": 64, "F": 64}, {"scale": 0.125, "gamma": 0.5},
     1, None),
    ("linear-causal", {}, {"M": 197, "E": 64, "F": 64}, {}, 1, None),
    ("sliding-window-causal", {}, {"M": 197, "W": 64, "E": 64, "F": 64}, {"scale": 0.125}, 1, None),
    ("sliding-window-causal", {"window": 197}, {"M": 197, "W": 197, "E": 64, "F": 64}, {"scale": 0.125},
     1, None),
    # one instance: one key/value head and the 12 / kv_heads query heads that share it
    ("gqa", {}, {"M": 197, "P": 197, "H": 12, "R": 12, "E": 64, "F": 64}, {"scale": 0.125}, 12, 1),
    ("gqa", {"kv_heads": 4}, {"M": 197, "P": 197, "H": 3, "R": 3, "E": 64, "F": 64}, {"scale": 0.125}, 3, 4),
    ("gqa", {"kv_heads": 12}, {"M": 197, "P": 197, "H": 1, "R": 1, "E": 64, "F": 64}, {"scale": 0.125}, 1, 12),
])
def test_good_options_bind(variant, options, ranks, params, heads, kv):
    b = bind_variant(variant, tokens=197, grid=(14, 14), head_dim=64, options=options, heads=12)
    assert b.cascade == variant and dict(b.ranks) == ranks and dict(b.params) == params
    assert b.tokens == 197 and b.heads == heads and b.kv_heads == kv


@pytest.mark.parametrize("variant,options,where,msg", [
    ("sliding-window-causal", {"window": 198}, "window",
     "the window 198 is longer than the sequence (197 tokens)"),
    ("sliding-window-causal", {"window": 0}, "window", "expected a positive integer, got 0"),
    ("gqa", {"kv_heads": 5}, "kv_heads",
     "kv_heads 5 does not divide the 12 query heads (kv_heads that do: 1, 2, 3, 4, 6, 12)"),
    ("gqa", {"kv_heads": 2.0}, "kv_heads", "expected a positive integer, got 2.0"),
    ("performer", {"features": 0}, "features", "expected a positive integer, got 0"),
    ("performer-causal", {"features": True}, "features", "expected a positive integer, got True"),
    ("retention-recurrent", {"gamma": 0}, "gamma", "expected a number in (0, 1], got 0"),
    ("linear-causal", {"gamma": 0.5}, "gamma",
     "option gamma is for retention and retention-recurrent, not linear-causal "
     "(linear-causal takes no options)"),
    ("gqa", {"features": 8}, "features",
     "option features is for performer and performer-causal, not gqa (gqa takes kv_heads)"),
    ("retention", {"window": 8}, "window",
     "option window is for sliding-window-causal and longformer, not retention (retention takes gamma)"),
])
def test_bad_options_name_the_option(variant, options, where, msg):
    with pytest.raises(ConfigError) as ei:
        bind_variant(variant, tokens=197, grid=(14, 14), head_dim=64, options=options, heads=12)
    assert ei.value.ypath == (where,) and ei.value.message == msg


def test_default_window_longer_than_the_sequence():
    with pytest.raises(ConfigError) as ei:
        bind_variant("sliding-window-causal", tokens=50, grid=(7, 7), head_dim=64)
    assert ei.value.message == "the default window 64 is longer than the sequence (50 tokens); give a window"


def _mha_layer(repeat: int = 12) -> dict:
    return {"name": "attention", "cascade": "mha", "repeat": repeat, "params": {},
            "ranks": {"T": 197, "D": 768, "NH": 12, "E": 64}}


@pytest.mark.parametrize("kv_heads", [1, 3, 12])
def test_gqa_split_shrinks_the_kv_projection(kv_heads):
    """Q has 12 heads, K and V kv_heads each: the QKV GEMM is (12 + 2 kv) x 64 wide, and the
    core runs once per key/value head of each block."""
    qkv, core, proj = split_attention(_mha_layer(), "gqa", grid=(14, 14), options={"kv_heads": kv_heads})
    assert qkv["ranks"] == {"M": 197, "K": 768, "N": (12 + 2 * kv_heads) * 64} and qkv["repeat"] == 12
    assert core["cascade"] == "gqa" and core["repeat"] == 12 * kv_heads
    assert core["ranks"]["H"] == core["ranks"]["R"] == 12 // kv_heads
    assert proj["ranks"] == {"M": 197, "K": 768, "N": 768} and proj["repeat"] == 12


@pytest.mark.parametrize("variant", [v for v in NEW if v != "gqa"])
def test_other_new_variants_split_per_head(variant):
    qkv, core, _ = split_attention(_mha_layer(), variant, grid=(14, 14))
    assert qkv["ranks"]["N"] == 3 * 12 * 64 and core["repeat"] == 12 * 12


# -- einarray run on a small ViT -------------------------------------------------------------
T, E, NH, BLOCKS = 65, 64, 3, 12  # vit-tiny-small: 65 tokens, 3 heads of 64, 12 blocks
R_DEFAULT, W_DEFAULT = 256, 64


def _core_macs(variant: str, kv_heads: int = 1) -> tuple[int, int]:
    """(MACs of one core instance, instances) on vit-tiny-small, by hand."""
    t, e, f, r, w = T, E, E, R_DEFAULT, W_DEFAULT
    features = 2 * t * r * e + 2 * t * e  # W q and W k (R x E each), |q|^2 and |k|^2
    per_head = {
        # + phi(K)^T V (P R F), phi(Q) KV (M R F), phi(Q) KS (M R)
        "performer": features + 2 * t * r * f + t * r,
        # prefix sums are additions; phi(Q) S[m+1] (M R F) and phi(Q) Z[m+1] (M R)
        "performer-causal": features + t * r * f + t * r,
        "retention-recurrent": t * e * f,  # Q_m S_m; the state update is gamma S + k v^T
        "linear-causal": t * e * f + t * e,  # phi(Q) S and phi(Q) z
        "sliding-window-causal": 2 * t * w * e,  # Q.K and SN.V over the window
    }
    if variant == "gqa":
        return 2 * t * t * (NH // kv_heads) * e, BLOCKS * kv_heads
    return per_head[variant], BLOCKS * NH


def _tiny(attention) -> dict:
    data = yaml.safe_load(TINY.read_text())
    data["workload"]["attention"] = copy.deepcopy(attention)
    return data


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("variant,options", [(v, {}) for v in NEW] + [("gqa", {"kv_heads": 3})])
def test_run_small_vit(variant, options):
    spec = load_run_data(_tiny({"variant": variant, **options}), "tiny.yaml")
    names = [l.name for l in spec.layers]
    assert names[2:5] == ["attention.qkv", f"attention.{variant}", "attention.proj"]
    res = run(spec, progress=False)
    core = next(l for l in res["layers"] if l["name"] == f"attention.{variant}")
    macs, inst = _core_macs(variant, options.get("kv_heads", 1))
    assert core["instances"] == inst and core["macs"] == macs * inst
    qkv = next(l for l in res["layers"] if l["name"] == "attention.qkv")
    kv = options.get("kv_heads", 1) if variant == "gqa" else NH
    assert qkv["macs"] == BLOCKS * T * 192 * (NH + 2 * kv) * E  # D = 192
    assert res["cycles"] == sum(l["cycles"] for l in res["layers"]) > 0


def test_run_cli_writes_a_report(tmp_path):
    cfg = tmp_path / "tiny-gqa.yaml"
    cfg.write_text(TINY.read_text().replace("attention: softmax-2pass", "attention: {variant: gqa, kv_heads: 1}"))
    out = tmp_path / "r"
    assert main(["run", str(cfg), "-o", str(out), "--no-progress"]) == 0
    rep = yaml.safe_load((out / "report.json").read_text())
    assert [l["name"] for l in rep["layers"]][2:5] == ["attention.qkv", "attention.gqa", "attention.proj"]


@pytest.mark.parametrize("attention,where,msg", [
    ("{variant: gqa, kv_heads: 2}", "workload.attention.kv_heads",
     "kv_heads 2 does not divide the 3 query heads (kv_heads that do: 1, 3)"),
    ("{variant: sliding-window-causal, window: 66}", "workload.attention.window",
     "the window 66 is longer than the sequence (65 tokens)"),
    ("{variant: performer, features: -1}", "workload.attention.features",
     "expected a positive integer, got -1"),
])
def test_run_config_errors_are_located(tmp_path, capsys, attention, where, msg):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TINY.read_text().replace("attention: softmax-2pass", f"attention: {attention}"))
    assert main(["run", str(cfg), "-o", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"einarray run: error: {cfg}:4 {where}: {msg}"
    assert not (tmp_path / "r").exists()


# -- einarray simulate on fusemax ----------------------------------------------------------
M, P, E8, R16 = 37, 53, 8, 16
SIM_CASES = {
    # name: (ranks, MACs by hand)
    "performer": ({"M": M, "P": P, "E": E8, "F": E8, "R": R16},
                  R16 * E8 * (M + P) + E8 * (M + P) + R16 * E8 * (M + P) + M * R16),
    "performer-causal": ({"M": M, "E": E8, "F": E8, "R": R16},
                         2 * R16 * E8 * M + 2 * E8 * M + M * R16 * E8 + M * R16),
    "retention-recurrent": ({"M": M, "E": E8, "F": E8}, M * E8 * E8),
    "linear-causal": ({"M": M, "E": E8, "F": E8}, M * E8 * E8 + M * E8),
    "sliding-window-causal": ({"M": M, "W": 5, "E": E8, "F": E8}, 2 * M * 5 * E8),
    "gqa": ({"M": M, "P": P, "H": 6, "R": 3, "E": E8, "F": E8}, 2 * M * P * 6 * E8),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NEW)
def test_simulate_on_fusemax(tmp_path, capsys, name):
    from sim.functional import check_functional

    from einarray.default_mapping import derive_default

    ranks, macs = SIM_CASES[name]
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump({"workload": {"cascade": name, "ranks": ranks}, "arch": "fusemax"}))
    assert main(["simulate", str(cfg_path), "--json"]) == 0
    res = yaml.safe_load(capsys.readouterr().out)
    assert sum(d["actions"].get("mac", 0) for d in res["einsums"].values()) == macs
    assert res["cycles"] >= macs / (256 * 256)  # at most one MAC per PE per cycle
    derived, _ = derive_default(load_config(cfg_path))  # what simulate maps a bare cascade with
    assert res["cycles"] == simulate(derived)["cycles"]
    fr = check_functional(derived)  # the mapped cascade, tile by tile, equals the reference
    assert fr.ok, (fr.worst_tensor, fr.max_abs_err)
