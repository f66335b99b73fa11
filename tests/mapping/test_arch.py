"""Architecture specs: shipped configs and located validation errors."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import yaml

from einsum.errors import ConfigError
from mapping.arch import arch_names, load_arch

BASE = """arch:
  version: 1
  name: t
  clock_hz: 1.0e9
  array2d:
    rows: 8
    cols: 8
    ops: {mac: 1, add: 1}
  memory:
    - {name: DRAM, word_bits: 16, read_bw: 4, write_bw: 4}
    - {name: GB, capacity_bytes: 65536, word_bits: 16, read_bw: 64, write_bw: 64}
  energy:
    array2d: {mac: 1.0, add: 0.5}
    DRAM: {read: 10.0, write: 12.0}
"""


def test_shipped_archs_load():
    names = arch_names()
    for n in ("fusemax", "fusemax-baseline", "tpu-v1", "systolic-16x16", "systolic-32x32", "zcu102-edge-moe"):
        assert n in names
        a = load_arch(n)
        assert a.levels[0].capacity_bytes is None and a.levels[1].capacity_bytes > 0


def test_fusemax_numbers():
    a = load_arch("fusemax")
    u2, u1 = a.units["array2d"], a.units["array1d"]
    assert (u2.rows, u2.cols, u2.rf_entries, u1.cols, u1.rf_entries) == (256, 256, 16, 256, 32)
    assert set(u2.ops) >= {"mac", "add", "max"} and set(u1.ops) >= {"mac", "add", "div"}
    assert a.levels[1].capacity_bytes == 16 * 2 ** 20 and a.clock_hz == 940e6
    # 400 GiB/s at 940 MHz in 16-bit words, exactly
    assert a.levels[0].read_bw == Fraction(400 * 2 ** 30, 940_000_000 * 2)
    # DRAM 249.6 pJ per 64-bit access = 62.4 pJ per 16-bit word
    assert a.energy["DRAM"]["read"] == pytest.approx(249.6 / 4)
    assert a.energy["array2d"]["mac"] == 17.16 and a.energy["array1d"]["div"] == 36.25
    assert a.total_area_um2 == pytest.approx(65536 * 1545 + 256 * 1545 + 94.2e6)
    tpu = load_arch("tpu-v1")
    assert (tpu.units["array2d"].rows, tpu.units["array2d"].cols) == (256, 256)
    z = load_arch("zcu102-edge-moe")
    assert z.units["array2d"].lanes == 256 and z.units["array1d"].lanes == 32 and z.clock_hz == 300e6


@pytest.mark.parametrize("old,new,where,what", [
    ("rows: 8", "rows: -8", "arch.array2d.rows", "> 0"),
    ("read_bw: 4,", "read_bw: 0,", "arch.memory[0].read_bw", "> 0"),
    ("ops: {mac: 1, add: 1}", "ops: {mac: 1, fma: 1}", "arch.array2d.ops.fma", "unknown op"),
    ("  clock_hz: 1.0e9\n", "  clock_hz: 1.0e9\n  clocks: 2\n", "arch.clocks", "unknown key"),
    ("name: GB,", "name: DRAM,", "arch.memory[1].name", "duplicate"),
    ("DRAM: {read: 10.0, write: 12.0}", "L3: {read: 10.0, write: 12.0}", "arch.energy.L3", "unknown key"),
    ("capacity_bytes: 65536, ", "", "arch.memory[1]", "capacity_bytes"),
    ("ops: {mac: 1, add: 1}", "ops: {mac: 1, add: 1}\n    systolic: {psum_in_array: 1}",
     "arch.array2d.systolic.psum_in_array", "true or false"),
    ("ops: {mac: 1, add: 1}", "ops: {mac: 1, add: 1}\n    systolic: {model: broadcast, psum_in_array: true}",
     "arch.array2d.systolic.psum_in_array", "applies to model: systolic"),
])
def test_arch_errors_are_located(tmp_path, old, new, where, what):
    p = tmp_path / "a.yaml"
    assert old in BASE
    p.write_text(BASE.replace(old, new))
    with pytest.raises(ConfigError) as ei:
        load_arch(p)
    msg = str(ei.value)
    assert re.match(rf"^{re.escape(str(p))}:\d+ {re.escape(where)}", msg), msg
    assert what in msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", ["fusemax", "fusemax-baseline", "tpu-v1", "systolic-16x16", "systolic-32x32",
                                  "zcu102-edge-moe"])
def test_shipped_archs_simulate_a_gemm(tmp_path, name):
    from mapping.config import load_config
    from sim.results import simulate
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"workload": {"cascade": "gemm", "ranks": {"M": 96, "N": 80, "K": 72}},
                                 "arch": name}))
    cfg = load_config(p)
    r = simulate(cfg)
    u = cfg.arch.units["array2d"]
    assert r["einsums"]["C"]["actions"]["mac"] == 96 * 80 * 72
    assert r["cycles"] >= 96 * 80 * 72 / (u.lanes * u.macs_per_pe)
    assert 0 < r["utilization"]["array2d"]["mac_util"] <= 1


def test_systolic_32x32_runs_an_attention_cascade(tmp_path):
    # its vector unit (32 lanes, exp 4 and div 5 cycles per element) runs the softmax;
    # the PEs' multiplier applies QK's scale in place
    from mapping.config import load_config
    from sim.functional import check_functional
    from sim.results import simulate
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"workload": {"cascade": "softmax-3pass"}, "arch": "systolic-32x32"}))
    cfg = load_config(p)
    r = simulate(cfg)
    e = r["einsums"]
    n = 128 * 128  # score elements
    assert {k: v["unit"] for k, v in e.items()} == {"QK": "array2d", "GM": "array1d", "SN": "array1d",
                                                    "SD": "array1d", "A": "array1d", "AV": "array2d"}
    assert e["SN"]["cycles"] == n * (4 + 1) / 32 and e["A"]["cycles"] == n * 5 / 32
    assert e["GM"]["cycles"] == e["SD"]["cycles"] == n / 32
    # QK: 4 x 4 output folds of 64 MACs, fill/drain once (R + C - 2), the scale over 1024 PEs
    assert e["QK"]["cycles"] == 16 * 64 + 62 + n / 1024
    assert check_functional(cfg).ok


def test_psum_in_array_defaults_on_and_needs_an_accumulator_per_fold():
    a = load_arch("fusemax")
    u = a.units["array2d"]
    assert u.psum_in_array and u.rf_entries == 16
    assert u.psum_chains("os", 16) and not u.psum_chains("os", 17) and not u.psum_chains("ws", 1)
    p = yaml.safe_load(BASE)
    p["arch"]["array2d"]["systolic"] = {"psum_in_array": False}
    from einsum.yamlsrc import loads
    from mapping.arch import arch_from_data
    data, src = loads(yaml.safe_dump(p), "a.yaml")
    assert not arch_from_data(data["arch"], src).units["array2d"].psum_chains("os", 1)
