"""The FuseMax report generator writes its files with the documented record keys."""

from __future__ import annotations

import json

from sim import fusemax_report


def test_report_subset(tmp_path):
    assert fusemax_report.main(["--out", str(tmp_path), "--models", "BERT", "--lengths", "1024,4096"]) == 0
    recs = json.loads((tmp_path / "results.json").read_text())
    assert len(recs) == 2 * 3
    for r in recs:
        assert {"model", "seq_len", "mapping", "latency_s", "energy_pj", "util_2d", "util_1d"} <= set(r)
        assert r["mapping"] in ("unfused", "flat", "fusemax")
        assert abs(r["latency_s"] / r["closed_form_latency_s"] - 1) < 0.02
    fm = next(r for r in recs if r["mapping"] == "fusemax" and r["seq_len"] == 1024)
    assert abs(fm["closed_form_latency_s"] - 12288 * 154 / 940e6) < 1e-12
    assert abs(fm["util_2d"] - 0.8896) < 1e-3
    md = (tmp_path / "README.md").read_text()
    assert "| BERT | 1K |" in md and "Where and why we differ" in md
    for png in ("utilization.png", "speedup.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_committed_report_is_current(tmp_path):
    """Regenerate all 72 points and compare every number with reports/fusemax/results.json."""
    from pathlib import Path

    from einarray.studies import compare_numbers

    assert fusemax_report.main(["--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / "results.json").read_text())
    committed = json.loads((Path(__file__).parents[2] / "reports" / "fusemax" / "results.json").read_text())
    diffs = compare_numbers(fresh, committed)
    assert not diffs, f"reports/fusemax is stale; run python -m sim.fusemax_report: {diffs[:5]}"


def test_every_option_has_help():
    ap = fusemax_report.build_parser()
    for a in ap._actions:
        assert a.help and a.help.strip(), a.option_strings


def test_regenerating_changes_no_byte(tmp_path, capsys):
    """No wall-clock time or date in the written files: two runs write identical bytes
    (the times go to the terminal)."""
    args = ["--models", "BERT", "--lengths", "1024"]
    assert fusemax_report.main(["--out", str(tmp_path / "a"), *args]) == 0
    assert fusemax_report.main(["--out", str(tmp_path / "b"), *args]) == 0
    assert " s]" in capsys.readouterr().out  # per-point times are printed
    for name in ("results.json", "README.md", "utilization.png", "speedup.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for r in json.loads((tmp_path / "a" / "results.json").read_text()):
        assert not [k for k in r if "wall" in k or "time" in k or "date" in k]


def test_bad_lengths_are_one_error_line(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        fusemax_report.main(["--lengths", "1k"])
    assert e.value.code == 2
    assert "--lengths '1k': expected comma-separated token counts" in capsys.readouterr().err


def test_never_writes_into_a_users_directory(tmp_path, capsys):
    """A directory with other content is refused before any simulation, and left as it was;
    the report's own directory (the committed one has its manifest) is refreshed."""
    from pathlib import Path

    (tmp_path / "README.md").write_text("my notes")
    assert fusemax_report.main(["--out", str(tmp_path), "--models", "BERT", "--lengths", "1024"]) == 2
    err = capsys.readouterr()
    assert "is not an einarray output directory" in err.err and "BERT" not in err.out
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    committed = Path(__file__).parents[2] / "reports" / "fusemax"
    from einsum.outdir import check

    assert check(committed, kind=fusemax_report.KIND).state == "ours"
