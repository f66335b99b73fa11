"""einarray run: whole-model flow, aggregation, determinism, includes, atomic reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from einarray import flow
from einarray.cli import main
from einarray.flow import load_run, run
from einarray.report import write_report
from einsum.errors import ConfigError
from sim.results import simulate

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny():
    spec = load_run(DATA / "vit-tiny-small.yaml")
    return spec, run(spec, progress=False)


def test_model_layers_and_attention_split(tiny):
    spec, _ = tiny
    names = [l.name for l in spec.layers]
    assert names == ["patch-embed", "norm1", "attention.qkv", "attention.softmax-2pass", "attention.proj",
                     "norm2", "mlp", "final-norm", "head"]
    core = spec.layers[3]
    assert core.config.cascade.ranks["M"].size == 65 and core.repeat == 12 * 3  # blocks x heads
    assert spec.layers[0].config.cascade.ranks["M"].size == 64


def test_totals_are_sums_of_layer_simulations(tiny):
    spec, res = tiny
    per = [simulate(flow.default_layer(l).config) for l in spec.layers]  # each layer's derived default
    assert res["cycles"] == sum(int(r["cycles"]) for r in per)
    assert res["energy_pj"]["total"] == pytest.approx(sum(r["energy_pj"]["total"] for r in per), rel=1e-12)
    assert res["latency_s"] == pytest.approx(res["cycles"] / spec.arch.clock_hz, rel=1e-12)
    s = res["summary"]
    assert s["throughput_inf_per_s"] == pytest.approx(1 / res["latency_s"])
    assert s["average_power_w"] == pytest.approx(res["energy_pj"]["total"] * 1e-12 / res["latency_s"])
    assert s["edp"] == pytest.approx(res["energy_pj"]["total"] * res["latency_s"])
    for u, v in res["utilization"].items():
        assert 0.0 <= v["pe_util"] <= 1.0
    # component energies add up to the total
    comp = sum(v for acts in res["energy_pj"]["components"].values() for v in acts.values())
    assert comp + res["energy_pj"]["leakage"] == pytest.approx(res["energy_pj"]["total"], rel=1e-9)
    assert len(res["top_einsums_by_time"]) == 3


def test_report_files_and_byte_identical_json(tmp_path, tiny):
    spec, res = tiny
    a = write_report(res, tmp_path / "a")
    b = write_report(run(load_run(DATA / "vit-tiny-small.yaml"), progress=False), tmp_path / "b")
    for name in ("report.md", "report.html", "report.json", "layers.csv", "energy-components.png",
                 "energy-layers.png", "energy-levels.png", "latency-layers.png", "utilization.png",
                 "roofline.png", "traffic.png"):
        assert (a / name).stat().st_size > 0, name
    assert (a / "report.json").read_bytes() == (b / "report.json").read_bytes()
    html = (a / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    csv = (a / "layers.csv").read_text().splitlines()
    assert len(csv) == 1 + len(spec.layers)
    assert {p.name for p in tmp_path.iterdir()} == {"a", "b"}  # no temporary directories left


def test_single_cascade_with_include(tmp_path, capsys):
    assert main(["run", str(DATA / "with-include.yaml"), "-o", str(tmp_path / "r"), "--no-progress",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["macs"] == 32 ** 3
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["arch"]["name"] == "systolic-16x16"


@pytest.mark.parametrize("name,msg", [
    ("cycle-a.yaml", "cycle-b.yaml:1 include[0]: include cycle: cycle-a.yaml -> cycle-b.yaml -> cycle-a.yaml"),
    ("missing-include.yaml", "missing-include.yaml:3 include[1]: included file 'no-such-file.yaml' not found"),
])
def test_include_errors(tmp_path, capsys, name, msg):
    assert main(["run", str(DATA / name), "-o", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert msg in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("edit,msg", [
    (("attention: softmax-2pass", "attention: softmax-9pass"), "workload.attention: unknown attention variant 'softmax-9pass'"),
    (("layers: {patch-embed", "layers: {patch-embedd"), "workload.layers.patch-embedd: model vit-tiny has no layer 'patch-embedd'"),
    (("report: {title: tiny test run, top: 3}", "report: {title: t, top: 0}"), "report.top: expected a positive integer"),
    (("ranks: {T: 65}", "ranks: {T: -1}"), "workload.ranks.T: a rank size must be a positive integer"),
])
def test_bad_run_configs(tmp_path, capsys, edit, msg):
    text = (DATA / "vit-tiny-small.yaml").read_text().replace(*edit)
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    assert main(["run", str(p), "-o", str(tmp_path / "r"), "--no-progress"]) == 2
    assert msg in capsys.readouterr().err


def test_unwritable_report_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(DATA / "with-include.yaml"), "-o", str(blocker / "sub" / "r"), "--no-progress"]) == 2
    assert f"cannot create the directory: {blocker} is not a directory" in capsys.readouterr().err


def test_interrupt_leaves_no_partial_report(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main(["run", str(DATA / "with-include.yaml"), "-o", str(out), "--no-progress"]) == 0
    before = (out / "report.json").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    import einarray.report as report

    monkeypatch.setattr(report, "render_plots", boom)
    assert main(["run", str(DATA / "with-include.yaml"), "-o", str(out), "--no-progress", "--force"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before  # the old report is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary directory left


def test_compare_with_sweep(tmp_path, capsys):
    assert main(["compare", str(DATA / "with-include.yaml"), "--sweep", "M:16,64", "-o",
                 str(tmp_path / "c"), "--no-progress"]) == 0
    data = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [r["value"] for r in data["rows"]] == [16, 64]
    assert data["rows"][1]["latency_s"] > data["rows"][0]["latency_s"]
    assert (tmp_path / "c" / "compare.png").exists() and (tmp_path / "c" / "compare.md").exists()
    assert main(["compare", str(DATA / "with-include.yaml"), "--sweep", "M:abc"]) == 2


def test_flow_module_has_no_hidden_state():
    assert not hasattr(flow, "_cache")
    with pytest.raises(ConfigError, match="config file not found"):
        load_run(DATA / "nope.yaml")


def test_run_with_search_is_no_worse_than_default(tmp_path):
    base = (DATA / "with-include.yaml").read_text()
    plain = tmp_path / "plain.yaml"
    plain.write_text(base.replace("include: [inc-arch.yaml]", f"include: [{DATA / 'inc-arch.yaml'}]"))
    searched = tmp_path / "searched.yaml"
    searched.write_text(plain.read_text() + "search: {objective: latency, budget: 40, seed: 3}\n")
    a = run(load_run(plain), progress=False)
    b = run(load_run(searched), progress=False)
    assert b["cycles"] <= a["cycles"]
    assert b == run(load_run(searched), progress=False)  # deterministic for a seed


def test_model_search_rejects_constraints(tmp_path, capsys):
    p = tmp_path / "m.yaml"
    p.write_text((DATA / "vit-tiny-small.yaml").read_text() + "search: {budget: 5, constraints: {}}\n")
    assert main(["run", str(p), "--no-progress"]) == 2
    assert "search.constraints: constraints name the Einsums of one cascade" in capsys.readouterr().err


def _one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("einarray run: error: "), err
    return err.strip()


@pytest.mark.parametrize("edit,where,msg", [
    (("ranks: {T: 65}", "ranks: {T: 65}\n  grid: [7, 7]"), ":6 workload.grid",
     "the 7 x 7 patch grid has 49 patches, but the model has 65 tokens"),
    (("ranks: {T: 65}", "ranks: {T: 65, Q: 5}"), ":5 workload.ranks.Q",
     "no layer of model vit-tiny has a rank 'Q' (ranks: D, E, H, K, M, N, NH, S, T)"),
    (("layers: {patch-embed: {M: 64}}", "layers: {patch-embed: {M: 64}, norm1: {M: 3}}"),
     ":6 workload.layers.norm1.M", "layer norm1 has no rank 'M' (ranks: D, T)"),
    (("attention: softmax-2pass", "attention: {variant: halo, block: 0}"), ":4 workload.attention.block",
     "expected a positive integer, got 0"),
    (("attention: softmax-2pass", "attention: {variant: halo, block: 9}"), ":4 workload.attention.block",
     "block 9 is larger than the 8 x 8 patch grid (at most 8)"),
    (("attention: softmax-2pass", "attention: {variant: neighborhood-2d, kernel: 4}"),
     ":4 workload.attention.kernel", "NATTEN requires an odd kernel"),
    (("attention: softmax-2pass", "attention: {variant: neighborhood-2d, kernel: 9}"),
     ":4 workload.attention.kernel", "is larger than the sequence (8 x 8 patch grid)"),
])
def test_bad_model_workloads_are_located(tmp_path, capsys, edit, where, msg):
    text = (DATA / "vit-tiny-small.yaml").read_text()
    assert edit[0] in text
    p = tmp_path / "bad.yaml"
    p.write_text(text.replace(*edit))
    err = _one_error_line(capsys, ["run", str(p), "-o", str(tmp_path / "r"), "--no-progress"])
    assert f"bad.yaml{where}: " in err and msg in err, err
    assert not (tmp_path / "r").exists()


def test_vit_base_grid_must_match_the_tokens(tmp_path, capsys):
    p = tmp_path / "g.yaml"
    p.write_text("workload: {model: vit-base, grid: [13, 13]}\narch: fusemax\n")
    err = _one_error_line(capsys, ["run", str(p), "--no-progress"])
    assert err.endswith("g.yaml:1 workload.grid: the 13 x 13 patch grid has 169 patches, but the model has "
                        "197 tokens (a grid needs 197 patches without a class token, 196 with one)"), err


def test_unknown_command_line_rank_names_the_command_line(capsys):
    err = _one_error_line(capsys, ["run", str(DATA / "vit-tiny-small.yaml"), "--rank", "Q=5", "--no-progress"])
    assert err.endswith("error: command line --rank Q=5: no layer of model vit-tiny has a rank 'Q' "
                        "(ranks: D, E, H, K, M, N, NH, S, T)"), err


def test_an_error_in_a_derived_layer_mapping_names_the_layer(capsys):
    # a 2-byte global buffer fits no tile of the first layer's default mapping
    err = _one_error_line(capsys, ["run", str(DATA / "vit-tiny-small.yaml"), "--no-progress",
                                   "--set", "arch.memory.1.capacity_bytes=2"])
    assert f"{DATA / 'vit-tiny-small.yaml'}:1: layer patch-embed: mapping" in err, err
    assert "exceed GB (2 bytes)" in err, err


def test_a_grid_needs_an_attention_layer(tmp_path, capsys):
    p = tmp_path / "g.yaml"
    p.write_text("workload: {model: bert-base, grid: [4, 4]}\narch: fusemax\n")
    err = _one_error_line(capsys, ["run", str(p), "--no-progress"])
    assert err.endswith("g.yaml:1 workload.grid: model bert-base has no mha layer, so no attention variant "
                        "to give a patch grid to"), err


def test_several_cores_split_only_the_batch_of_a_model():
    """A model layer's repeats are blocks in sequence (and heads a preset does not tell apart
    from them): 2 cores and batch 2 give each core one input's 12 blocks, never 6 of each."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = load_run(DATA / "vit-tiny-small.yaml", sets=["arch.cores=2", "workload.batch=2"])
        qkv = next(l for l in spec.layers if l.name == "attention.qkv")
        assert (qkv.config.instances, qkv.config.parallel) == (24, 2)
        res = simulate(qkv.config)
    assert res["cores"]["partition"] == "instances" and res["cores"]["instances_per_core"] == [12, 12]
    assert [p["cores"] for p in res["cores"]["phases"]] == [2]


def test_several_cores_split_the_heads_of_an_attention_core():
    """ViT-Tiny has 3 heads: on 3 cores each core runs one head of each of the 12 blocks."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = load_run(DATA / "vit-tiny-small.yaml", sets=["arch.cores=3"])
        core = spec.layers[3]
        assert (core.config.instances, core.config.parallel) == (36, 3)
        res = simulate(core.config)
    assert res["cores"]["instances_per_core"] == [12, 12, 12] and res["cores"]["partition"] == "instances"
