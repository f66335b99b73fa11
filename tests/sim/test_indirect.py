"""Cost of indirect access in the simulator (sim.engine with mapping.footprint.indirect_*):
gathered rows and scattered rows in whole backing-store accesses against closed forms,
a held source charged once, the JSON's ``indirect`` section, and the functional mode on
tiled indexed cascades."""

from __future__ import annotations

import json

import numpy as np
import pytest

from einarray.cli import main
from sim.functional import check_functional
from sim.results import simulate

from sim_helpers import cfg_file, config_from, gemm_arch  # noqa: F401 (cfg_file: a fixture)

G, J, P, E = 8, 4, 64, 16
GT, ET = 2, 8  # tiles of G and E

GATHER = {"version": 1, "name": "gather", "ranks": {"G": G, "J": J, "P": P, "E": E},
          "inputs": {"IDX": "[G, J] in P", "K": ["P", "E"]}, "outputs": ["KG"],
          "expressions": ["KG[g, j, e] = K[IDX[g, j], e]"]}

T, K, X, D = 8, 2, 4, 6
TT, DT = 4, 3

SCATTER = {"version": 1, "name": "scatter", "ranks": {"T": T, "K": K, "X": X, "D": D},
           "inputs": {"IDX": "[T, K] in X", "W": ["T", "K"], "V": ["T", "D"]}, "outputs": ["Y"],
           "expressions": ["Y[IDX[t, k], d] += W[t, k] * V[t, d]"]}


def _arch(access_bits: int | None) -> dict:
    a = gemm_arch(4, 4)
    a["array1d"] = {"width": 4, "ops": {"add": 1, "mul": 1, "max": 1}}
    a["energy"]["array1d"] = {"add": 0.5, "mul": 0.5, "max": 0.25}
    if access_bits is not None:
        a["memory"][0]["access_bits"] = access_bits
    return a


def _gather_cfg(access_bits, hold=False):
    grp = {"name": "g", "einsums": ["KG"], "tiles": {"GB": {"G": GT, "E": ET}}, "loop_order": ["G", "E"]}
    if hold:
        grp["hold"] = ["K"]
    return {"einsum": GATHER, "arch": _arch(access_bits),
            "mapping": {"version": 1, "einsums": {"KG": {"unit": "array1d"}}, "groups": [grp]}}


def _scatter_cfg(access_bits, hold=False):
    grp = {"name": "s", "einsums": ["Y"], "tiles": {"GB": {"T": TT, "D": DT}},
           "loop_order": ["D", "T"] if hold else ["T", "D"]}
    if hold:
        grp["hold"] = ["Y"]
    return {"einsum": SCATTER, "arch": _arch(access_bits),
            "mapping": {"version": 1, "einsums": {"Y": {"unit": "array1d"}}, "groups": [grp]}}


def _whole(words: int, aw: int) -> int:
    """A row of ``words`` in whole accesses of ``aw`` words."""
    return -(-words // aw) * aw


@pytest.mark.parametrize("access_bits,aw", [(None, 1), (16, 1), (48, 3), (128, 8), (256, 16)])
def test_gathered_rows_cost_whole_accesses(access_bits, aw):
    """Every step reads its GT x J rows of ET words each, rounded up to whole accesses:
    K's DRAM words = G J (E / ET) ceil(ET / aw) aw (no reuse between steps)."""
    r = simulate(config_from(_gather_cfg(access_bits)))
    dram = r["traffic"]["DRAM"]["tensors"]
    want = G * J * (E // ET) * _whole(ET, aw)
    assert dram["K"] == {"reads": want, "writes": 0, "bytes": want * 2.0}
    assert dram["IDX"]["reads"] == G * J  # the index tile changes with G only
    assert dram["KG"]["writes"] == G * J * E
    assert r["indirect"] == {"K": {"kind": "gather", "groups": {"g": "per row"}, "rows": G * J * (E // ET),
                                   "access_words": aw, "dram_reads": want, "dram_writes": 0}}
    # the numbers: 512, 512, 576, 512, 1024 words
    assert want == {1: 512, 3: 576, 8: 512, 16: 1024}[aw]


def test_a_held_gather_source_is_read_once():
    r = simulate(config_from(_gather_cfg(256, hold=True)))
    assert r["traffic"]["DRAM"]["tensors"]["K"]["reads"] == P * E  # the whole K, once
    assert r["indirect"]["K"]["groups"] == {"g": "held on chip"} and r["indirect"]["K"]["rows"] == 0


@pytest.mark.parametrize("access_bits,aw", [(None, 1), (32, 2), (128, 8)])
def test_scattered_rows_are_read_modify_written(access_bits, aw):
    """Every step adds its TT x K rows of DT words into Y: read and written in whole
    accesses, T K (D / DT) ceil(DT / aw) aw words each way."""
    r = simulate(config_from(_scatter_cfg(access_bits)))
    want = T * K * (D // DT) * _whole(DT, aw)
    y = r["traffic"]["DRAM"]["tensors"]["Y"]
    assert (y["reads"], y["writes"]) == (want, want)
    assert r["indirect"]["Y"] == {"kind": "scatter", "groups": {"s": "per row"}, "rows": T * K * (D // DT),
                                  "access_words": aw, "dram_reads": want, "dram_writes": want}
    assert want == {1: 96, 2: 128, 8: 256}[aw]


def test_a_held_scatter_target_is_written_once():
    r = simulate(config_from(_scatter_cfg(64, hold=True)))
    y = r["traffic"]["DRAM"]["tensors"]["Y"]
    assert (y.get("reads", 0), y["writes"]) == (0, X * D)
    assert r["indirect"]["Y"]["groups"] == {"s": "held on chip"}


def test_bad_access_bits_is_a_located_error(cfg_file, capsys):
    doc = _gather_cfg(24)  # not a multiple of the 16-bit word
    assert main(["simulate", str(cfg_file(doc))]) == 2
    err = capsys.readouterr().err
    assert "arch.memory[0].access_bits: access_bits must be a positive multiple of the word (16 bits), " \
           "got 24" in err and "Traceback" not in err


ORDERED = {"version": 1, "name": "ordered", "ranks": {"T": 8, "X": 4, "X2": "X", "K": 2, "D": 3},
           "inputs": {"L": ["T", "X"], "V": ["T", "D"]}, "outputs": ["AM", "S", "Y"],
           "expressions": ["AM[t] = argmax(x) L[t, x]", "IDX[t, k] = argtopk(L[t, x], x, k)",
                           "TV[t, k] = topk(L[t, x], x, k)", "S[t, x2] = sort(L[t, x], x, x2)",
                           "Y[IDX[t, k], d] += TV[t, k] * V[t, d]"]}


def _ordered_cfg():
    a = _arch(None)
    a["array1d"]["ops"]["cmp"] = 1
    a["energy"]["array1d"]["cmp"] = 0.25
    return {"einsum": ORDERED, "arch": a, "mapping": {
        "version": 1, "einsums": {n: {"unit": "array1d"} for n in ("AM", "IDX", "TV", "S", "Y")},
        "groups": [
            {"name": "a", "einsums": ["AM"], "tiles": {"GB": {"T": 2, "X": 2}}, "loop_order": ["T", "X"]},
            {"name": "b", "einsums": ["IDX", "TV", "S"], "tiles": {"GB": {"T": 2, "K": 1, "X2": 2}},
             "loop_order": ["T", "K", "X2"]},
            {"name": "c", "einsums": ["Y"], "tiles": {"GB": {"T": 4, "K": 1, "D": 2}},
             "loop_order": ["T", "K", "D"]}]}}


def test_functional_mode_runs_tiled_orderings_and_scatters():
    """argmax tiled over its reduced index, top-k and sort tiled over their output index,
    a scatter tiled over its iteration: tile by tile equals NumPy."""
    cfg = config_from(_ordered_cfg())
    rng = np.random.default_rng(3)
    L = rng.integers(0, 3, (8, 4)).astype(float)  # ties in every row
    V = rng.standard_normal((8, 3))
    fr = check_functional(cfg, inputs={"L": L, "V": V})
    assert fr.ok, fr
    order = np.argsort(-L, axis=1, kind="stable")[:, :2]
    y = np.zeros((4, 3))
    np.add.at(y, order, np.take_along_axis(L, order, axis=1)[:, :, None] * V[:, None, :])
    np.testing.assert_array_equal(fr.outputs["AM"], np.argmax(L, axis=1))
    np.testing.assert_array_equal(fr.outputs["S"], np.sort(L, axis=1))
    np.testing.assert_allclose(fr.outputs["Y"], y, atol=1e-13)


def test_simulate_cli_names_the_gathered_tensor(cfg_file, capsys):
    path = cfg_file(_gather_cfg(256))
    assert main(["simulate", str(path), "--functional"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "gather of K: costed per row in g; 64 rows in whole 16-word accesses, 1,024 words read" in out
    assert "functional check: OK" in out
    assert main(["simulate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["indirect"]["K"]["dram_reads"] == 1024


SORTED = {"version": 1, "name": "sorted", "ranks": {"S": 12, "J": "S", "X": 3, "D": 4},
          "inputs": {"AE": "[S] in X", "W": ["X", "D"]}, "outputs": ["WG"],
          "expressions": ["ORD[j] = argsort(AE[s], s, j)", "EX[j] = AE[ORD[j]]",
                          "WG[j, d] = W[EX[j], d]"]}


def test_a_gather_through_a_sorted_index_charges_the_run_bound():
    """EX (the key gathered through its own argsort) is non-decreasing, so the 3 tiles of
    4 slots touch at most X + tiles - 1 = 5 expert rows; charged 3 x ceil(5 / 3) = 6 rows
    of D words (24 words, not the 12 x 4 = 48 of an unsorted index), and every random
    sorted index really touches no more."""
    doc = {"einsum": SORTED, "arch": _arch(None), "mapping": {
        "version": 1, "einsums": {n: {"unit": "array1d"} for n in ("ORD", "EX", "WG")},
        "groups": [{"name": "sort", "einsums": ["ORD", "EX"]},
                   {"name": "g", "einsums": ["WG"], "tiles": {"GB": {"J": 4}}, "loop_order": ["J"]}]}}
    doc["arch"]["array1d"]["ops"]["cmp"] = 1
    doc["arch"]["energy"]["array1d"]["cmp"] = 0.25
    r = simulate(config_from(doc))
    assert r["indirect"]["W"]["rows"] == 6 and r["indirect"]["W"]["dram_reads"] == 24
    rng = np.random.default_rng(0)
    for _ in range(200):
        ex = np.sort(rng.integers(0, 3, 12))
        assert sum(len(set(ex[i:i + 4])) for i in range(0, 12, 4)) <= 5
