"""Default units and default tiles of mapping.defaults: an architect's choice, said out loud."""

from __future__ import annotations

import warnings

import pytest
import yaml

from einsum.errors import ConfigError, EinarrayWarning
from mapping.config import load_config


def cfg(tmp_path, doc, **kw):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_config(p, **kw)


@pytest.mark.parametrize("cascade,arch,einsum,op,lanes", [
    ("softmax-3pass", "zcu102-edge-moe", "QK", "mul", "array1d (32 lanes), not on array2d (256 lanes)"),
    ("layernorm", "fusemax", "VAR", "div", "array1d (256 lanes), not on array2d (65536 lanes)"),
])
def test_sum_of_products_off_the_2d_array_warns(tmp_path, cascade, arch, einsum, op, lanes):
    with pytest.warns(EinarrayWarning) as rec:
        c = cfg(tmp_path, {"workload": {"cascade": cascade}, "arch": arch})
    assert c.mapping.einsums[einsum].unit == "array1d"
    msgs = [str(w.message) for w in rec if einsum in str(w.message).split(" ")[0]]
    assert len(msgs) == 1
    assert msgs[0].startswith(f"{einsum} (a sum of products) runs on {lanes}")
    assert f"lacks op '{op}'" in msgs[0] and f"mapping.einsums.{einsum}.unit" in msgs[0]


def test_explicit_unit_does_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EinarrayWarning)
        c = cfg(tmp_path, {"workload": {"cascade": "layernorm"}, "arch": "fusemax",
                           "mapping": {"einsums": {"VAR": {"unit": "array1d"}}}})
    assert c.mapping.einsums["VAR"].unit == "array1d"


def test_no_unit_has_the_op_names_it(tmp_path):
    # systolic-16x16 has no vector unit and its PEs no exp: the error says which op is missing
    with pytest.raises(ConfigError) as ei:
        cfg(tmp_path, {"workload": {"cascade": "softmax-3pass"}, "arch": "systolic-16x16",
                       "mapping": {"einsums": {"QK": {"unit": "array2d"}}}},
            sets=["arch.array2d.ops.mul=1", "arch.energy.array2d.mul=1.0"])
    msg = str(ei.value)
    assert "no unit of arch systolic-16x16 can run GM" not in msg  # GM only needs max: it runs
    assert "no unit of arch systolic-16x16 can run SN" in msg and "needs op 'exp'" in msg
    assert "array2d has mac, add, max, mul" in msg


def test_default_tiles_keep_whole_folds(tmp_path):
    """A conv-sized GEMM (ResNet conv1 as im2col: M = 112*112... here 12100 x 64 x 147) that must
    be tiled keeps its M tile a multiple of the array's 16 rows, so tiling adds no folds."""
    from mapping.config import load_config

    p = tmp_path / "g.yaml"
    p.write_text("workload: {cascade: gemm, ranks: {M: 12100, N: 64, K: 147}}\narch: systolic-16x16\n")
    cfg = load_config(p)
    (lp,) = [lp for lp in cfg.mapping.groups[0].loops if lp.rank == "M"]
    assert lp.tile % 16 == 0 and lp.tile < 12100
    assert sum(-(-lp.extent(i) // 16) for i in range(lp.trips)) == -(-12100 // 16)
