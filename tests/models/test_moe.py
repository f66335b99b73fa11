"""models.moe: the MoE layer of a preset runs as top-k dispatch (``workload.moe``).

MAC counts are checked against closed forms: the gate is T x D x X; the sparse layer's
expert MLPs are 2 x T x K x D x H (each token through its K experts), the dense-masked
one's 2 x T x X x D x H plus the T x X x D score-weighted sum over the experts. Latency is
not compared: it depends on how the simulator charges the gathered expert weights (per
gathered row unless held on chip), which no static count can tie to the sorted slots.
"""

from __future__ import annotations

import pytest

from einarray.flow import load_run_data, run
from einsum.errors import ConfigError
from models import load_model
from models.moe import GATING, parse_moe, swap_moe

T, D, X, H, K, MOE_BLOCKS = 129, 192, 16, 384, 2, 6  # M^3ViT (Edge-MoE's model)


def _moe_layer() -> dict:
    return next(l for l in load_model("m3vit")["layers"] if l["cascade"] == "moe")


@pytest.mark.parametrize("sec,want", [
    ("moe-topk", ("moe-topk", {})),
    ({"variant": "moe-topk", "gating": "edge-moe"}, ("moe-topk", {"gating": "edge-moe"})),
    ({"variant": "moe"}, ("moe", {})),
])
def test_parse(sec, want):
    assert parse_moe(sec) == want


@pytest.mark.parametrize("sec,where,msg", [
    ("moe-sparse", (), "unknown MoE variant 'moe-sparse' (variants: moe, moe-topk)"),
    ({"variant": "moe-topk", "gating": "softmax"}, ("gating",), "expected one of m3vit, edge-moe, got 'softmax'"),
    ({"variant": "moe", "gating": "m3vit"}, ("gating",),
     "option gating is for moe-topk, not moe (moe takes no options)"),
    ({"variant": "moe-topk", "capacity": 4}, ("capacity",), "unknown MoE option 'capacity' (options: gating)"),
    ({"gating": "m3vit"}, (), "expected {variant: NAME, ...options} with NAME one of moe, moe-topk"),
    (3, (), "expected a variant name (moe, moe-topk) or {variant: NAME, ...}"),
])
def test_bad_sections_name_the_option(sec, where, msg):
    with pytest.raises(ConfigError) as ei:
        parse_moe(sec)
    assert ei.value.ypath == where and ei.value.message == msg


@pytest.mark.parametrize("gating", list(GATING))
def test_swap_keeps_the_shapes_and_names_the_gating(gating):
    lay = swap_moe(_moe_layer(), "moe-topk", {"gating": gating})
    assert lay["cascade"] == "moe-topk" and lay["repeat"] == MOE_BLOCKS
    assert lay["ranks"] == {"T": T, "D": D, "X": X, "H": H, "K": K}
    assert lay["params"] == {"softmax_first": GATING[gating]}
    assert swap_moe(_moe_layer(), "moe") == _moe_layer()


def test_only_a_moe_layer_swaps():
    with pytest.raises(ConfigError, match="layer 'mlp' uses mlp, not moe"):
        swap_moe({"name": "mlp", "cascade": "mlp", "ranks": {}, "params": {}}, "moe-topk")


def _moe_run(moe) -> dict:
    wl = {"model": "m3vit"} if moe is None else {"model": "m3vit", "moe": moe}
    spec = load_run_data({"workload": wl, "arch": "zcu102-edge-moe"}, "m3vit-run.yaml")
    res = run(spec, progress=False)
    return next(l for l in res["layers"] if l["name"] == "moe"), spec


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_run_m3vit_with_top_k_dispatch():
    sparse, spec = _moe_run({"variant": "moe-topk", "gating": "edge-moe"})
    dense, _ = _moe_run(None)
    assert sparse["cascade"] == "moe-topk" and dense["cascade"] == "moe"
    assert sparse["instances"] == dense["instances"] == MOE_BLOCKS
    gate = T * D * X
    assert sparse["macs"] == MOE_BLOCKS * (gate + 2 * T * K * D * H)
    assert dense["macs"] == MOE_BLOCKS * (gate + 2 * T * X * D * H + T * X * D)
    assert spec.workload["moe"] == "moe-topk" and spec.workload["moe_options"] == {"gating": "edge-moe"}


def test_a_model_without_moe_is_a_located_error(tmp_path):
    cfg = tmp_path / "vit.yaml"
    cfg.write_text("workload:\n  model: vit-base\n  moe: moe-topk\narch: fusemax\n")
    from einarray.flow import load_run

    with pytest.raises(ConfigError) as ei:
        load_run(cfg)
    assert ei.value.line == 3 and "model vit-base has no moe layer to swap" in ei.value.message


def test_a_bad_option_is_located(tmp_path):
    cfg = tmp_path / "m3.yaml"
    cfg.write_text("workload:\n  model: m3vit\n  moe: {variant: moe-topk, gating: noisy}\narch: zcu102-edge-moe\n")
    from einarray.flow import load_run

    with pytest.raises(ConfigError) as ei:
        load_run(cfg)
    assert ei.value.line == 3 and ei.value.ypath == ("workload", "moe", "gating")
    assert ei.value.message == "expected one of m3vit, edge-moe, got 'noisy'"
